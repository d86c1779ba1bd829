import pytest
from channels.testing.websocket import WebsocketCommunicator
from django.test import Client

from apps.dashboard.consumers import CLOSE_NOT_ALLOWED, CLOSE_NOT_LOGGED_IN
from opsportal.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://localhost")


def session_cookie(user) -> tuple[bytes, bytes]:
    client = Client()
    client.force_login(user)
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


@pytest.fixture
def staff_cookie(staff_user):
    return session_cookie(staff_user)


@pytest.fixture
def outsider_cookie(outsider):
    return session_cookie(outsider)


async def connect(*headers: tuple[bytes, bytes]) -> tuple[WebsocketCommunicator, bool, int | None]:
    communicator = WebsocketCommunicator(application, "/ws/dashboard/", headers=list(headers))
    connected, _ = await communicator.connect()
    close_code = None
    if connected:
        message = await communicator.receive_output(timeout=1) if not await communicator.receive_nothing(0.2) else None
        if message and message["type"] == "websocket.close":
            close_code = message["code"]
    return communicator, connected, close_code


async def test_an_anonymous_socket_is_closed_with_4401():
    _communicator, connected, code = await connect(ORIGIN)

    assert connected and code == CLOSE_NOT_LOGGED_IN


async def test_a_logged_in_non_staff_socket_is_closed_with_4403(outsider_cookie):
    _communicator, connected, code = await connect(ORIGIN, outsider_cookie)

    assert connected and code == CLOSE_NOT_ALLOWED


async def test_an_inactive_staff_user_is_refused(staff_user, staff_cookie):
    staff_user.is_active = False
    await staff_user.asave(update_fields=["is_active"])

    _communicator, _connected, code = await connect(ORIGIN, staff_cookie)

    assert code in (CLOSE_NOT_LOGGED_IN, CLOSE_NOT_ALLOWED)


async def test_staff_are_accepted_and_answered(staff_cookie):
    communicator, connected, code = await connect(ORIGIN, staff_cookie)
    assert connected and code is None

    await communicator.send_json_to({"type": "ping", "id": 7})
    assert await communicator.receive_json_from() == {"type": "pong", "id": 7}
    await communicator.disconnect()


async def test_a_foreign_origin_is_rejected_before_the_handshake(staff_cookie):
    _communicator, connected, _ = await connect((b"origin", b"http://evil.example"), staff_cookie)

    assert not connected


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "expected an object"),
        ('{"type": 5}', "expected an object"),
        ('{"type": "launch"}', "unknown message type"),
        ('{"type": "subscribe", "topics": ["metrics", "secrets"]}', "unknown topics ['secrets']"),
        ('{"type": "subscribe", "topics": "metrics"}', "must be a list"),
        ('{"type": "unsubscribe", "topics": [1, 2]}', "must be a list"),
        ('{"type": "resync", "topic": "metrics"}', "subscribed to"),
        ('{"type": "resync", "topic": {"a": 1}}', "subscribed to"),
        ('{"type": "subscribe", "topics": ["' + "x" * 10_000 + '"]}', "message too large"),
        ("[" * 100_000, "message too large"),
    ],
)
async def test_bad_client_messages_get_an_error_and_the_socket_stays_open(staff_cookie, frame, error):
    communicator, _, _ = await connect(ORIGIN, staff_cookie)

    await communicator.send_to(text_data=frame)
    assert error in (await communicator.receive_json_from())["error"]
    await communicator.send_json_to({"type": "ping"})
    assert (await communicator.receive_json_from())["type"] == "pong"
    await communicator.disconnect()


async def test_binary_frames_are_refused_politely(staff_cookie):
    communicator, _, _ = await connect(ORIGIN, staff_cookie)

    await communicator.send_to(bytes_data=b"\x00\x01")
    assert "binary" in (await communicator.receive_json_from())["error"]
    await communicator.disconnect()
