"""The embedded broker: a worker never takes a message that is still being written."""

import threading
from pathlib import Path
from queue import Empty

import pytest
from celery import Celery
from kombu import Connection


def channel(folder: Path):
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder), "control_folder": str(folder)}
    connection = Connection(
        "filesystem://localhost/", transport="apps.core.broker:Transport", transport_options=options
    )
    return connection, connection.default_channel


def test_the_embedded_mode_uses_the_whole_message_transport(settings):
    if settings.REDIS_URL:
        pytest.skip("production mode: the broker is Redis (the embedded run checks this)")
    app = Celery("embedded", set_as_current=False)  # as configured, whatever the tests did to the portal's app since
    app.config_from_object("django.conf:settings", namespace="CELERY")

    with app.connection_for_write() as connection:
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
