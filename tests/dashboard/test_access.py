"""Channels authenticates only at the handshake: the hub re-checks every second, so that a socket goes
within 2 s of its user logging out, being deactivated or losing a topic's permission."""

import time

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission
from django.contrib.sessions.models import Session
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.dashboard import access
from apps.dashboard.hub import CLOSE_NOT_ALLOWED, CLOSE_NOT_LOGGED_IN
from tests.dashboard.conftest import frames_within, next_frame, open_socket, publish, session_cookie, subscribed

pytestmark = pytest.mark.django_db(transaction=True)


async def closed_within(socket, seconds: float) -> tuple[int, float]:
    """The close code that arrives (skipping frames before it) and how long it took."""
    started = time.monotonic()
    while True:
        message = await socket.receive_output(timeout=seconds)
        if message["type"] == "websocket.close":
            return message["code"], time.monotonic() - started


async def test_logging_out_closes_the_socket_within_2_s(superuser):
    cookie = await sync_to_async(session_cookie)(superuser)
    socket = await open_socket(cookie)
    await subscribed(socket, "metrics")

    await Session.objects.all().adelete()  # what logout() does to the session

    code, took = await closed_within(socket, 3)
    assert code == CLOSE_NOT_LOGGED_IN and took <= 2


async def test_deactivating_the_user_closes_the_socket_within_2_s(staff_user):
    socket = await open_socket(await sync_to_async(session_cookie)(staff_user))
    await socket.send_json_to({"type": "ping", "id": 1})
    assert (await socket.receive_json_from())["type"] == "pong"

    staff_user.is_active = False
    await staff_user.asave(update_fields=["is_active"])

    code, took = await closed_within(socket, 3)
    assert code in (CLOSE_NOT_LOGGED_IN, CLOSE_NOT_ALLOWED) and took <= 2  # deactivation also ends the sessions


async def test_losing_staff_status_closes_the_socket_with_4403_within_2_s(staff_user):
    socket = await open_socket(await sync_to_async(session_cookie)(staff_user))
    await socket.send_json_to({"type": "ping", "id": 1})
    assert (await socket.receive_json_from())["type"] == "pong"

    staff_user.is_staff = False
    await staff_user.asave(update_fields=["is_staff"])

    code, took = await closed_within(socket, 3)
    assert code == CLOSE_NOT_ALLOWED and took <= 2


async def test_losing_a_permission_drops_the_topic_within_2_s(staff_user):
    permission = await Permission.objects.aget(codename="view_series")
    await staff_user.user_permissions.aadd(permission)
    socket = await open_socket(await sync_to_async(session_cookie)(staff_user))
    await subscribed(socket, "metrics")

    await staff_user.user_permissions.aremove(permission)

    started = time.monotonic()
    answer = await next_frame(socket, timeout=3, type="subscribed")
    assert answer == {"type": "subscribed", "topics": [], "denied": ["metrics"]}
    assert time.monotonic() - started <= 2
    await publish("metrics", "sample", {"at": 1, "values": {}})
    assert {f.get("topic") for f in await frames_within(socket, 0.3)} <= {None}
    await socket.disconnect()


def test_the_check_is_two_queries_however_many_users_and_sockets(django_user_model, superuser):
    users = [django_user_model.objects.create_user(f"u{n}", is_staff=True) for n in range(5)]
    users[0].user_permissions.add(Permission.objects.get(codename="view_auditevent"))
    users[1].is_active = False
    users[1].save()
    ids = {user.pk for user in users} | {superuser.pk}

    with CaptureQueriesContext(connection) as queries:
        allowed, alive = access.current(ids, {"no-such-session"})

    assert len(queries) == 2
    assert alive == set()
    assert allowed[superuser.pk] == access.TOPICS
    assert allowed[users[0].pk] == {"audit"}
    assert users[1].pk not in allowed
    assert allowed[users[2].pk] == frozenset()
