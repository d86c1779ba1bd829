"""The embedded broker: a worker never takes a message that is still being written."""

import threading
from pathlib import Path
from queue import Empty

from django.conf import settings
from kombu import Connection

from opsportal.celery import app as celery_app


def channel(folder: Path):
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder), "control_folder": str(folder)}
    connection = Connection(
        "filesystem://localhost/", transport="apps.core.broker:Transport", transport_options=options
    )
    return connection, connection.default_channel


def test_the_embedded_mode_uses_the_whole_message_transport():
    assert settings.CELERY_BROKER_TRANSPORT == "apps.core.broker:Transport"
    with celery_app.connection_for_write() as connection:
        assert type(connection.transport).__module__ == "apps.core.broker"


def test_a_reader_polling_while_messages_are_written_gets_each_message_whole(tmp_path):
    writer_connection, writer = channel(tmp_path)
    reader_connection, reader = channel(tmp_path)
    payload = {"body": "x" * 200_000}  # large enough that a write takes several system calls
    received, errors = [], []

    def read() -> None:
        while len(received) < 200 and not errors:
            try:
                received.append(reader._get("tasks"))
            except Empty:
                continue
            except Exception as error:  # an empty or partial file fails to decode
                errors.append(error)

    thread = threading.Thread(target=read)
    thread.start()
    for n in range(200):
        writer._put("tasks", {**payload, "n": n})
    thread.join(timeout=60)
    writer_connection.release()
    reader_connection.release()

    assert errors == []
    assert [message["n"] for message in received] == list(range(200))
    assert list(tmp_path.iterdir()) == []
