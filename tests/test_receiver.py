"""The loopback receiver the other tests talk to (tests/receiver.py): it must do what they count on."""

import http.client
import socket
import time

import pytest

from tests.receiver import Answer, Receiver


def post(receiver: Receiver, path: str = "/hook", body: bytes = b"{}", timeout: float = 5, **headers: str):
    connection = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=timeout)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_every_request_is_recorded_with_when_it_arrived(receiver):
    before = time.time()

    assert post(receiver, "/hook?x=1", b'{"a": 1}', **{"Webhook-Id": "k1"}) == (200, b"ok")

    (request,) = receiver.requests()
    assert (request.method, request.path, request.json(), request.key) == ("POST", "/hook?x=1", {"a": 1}, "k1")
    assert request.headers["content-length"] == "8" and request.status == 200
    assert before <= request.at <= time.time()


def test_scripted_answers_come_first_then_the_paths_then_the_default(receiver):
    receiver.always(Answer(404, body=b"no"))
    receiver.always(Answer(body=b"yes"), path="/known")
    receiver.answer(500)

    assert [post(receiver, "/known"), post(receiver, "/known"), post(receiver, "/other")] == [
        (500, b"ok"),
        (200, b"yes"),
        (404, b"no"),
    ]


def test_fail_first_fails_each_key_its_first_tries_only(receiver):
    receiver.fail_first("/hook", 503, tries=2)

    statuses = [post(receiver, **{"Webhook-Id": key})[0] for key in ("a", "a", "b", "a", "b", "b")]

    assert statuses == [503, 503, 503, 200, 503, 200]
    assert receiver.keys("/hook") == {"a": 3, "b": 3}


def test_a_slow_receiver_answers_after_the_delay(receiver):
    receiver.slow(0.3)
    started = time.monotonic()

    assert post(receiver) == (200, b"ok")
    assert time.monotonic() - started >= 0.3


def test_a_hanging_receiver_never_answers_and_stops_at_once(receiver):
    receiver.hang()

    with pytest.raises(TimeoutError):
        post(receiver, timeout=0.3)
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=0.3) as idle:  # TCP: accepted, then nothing
        with pytest.raises(TimeoutError):
            idle.recv(1)
        started = time.monotonic()
        receiver.down()
        assert time.monotonic() - started < 0.5
        assert idle.recv(1) == b"", "stopping closes the connection it held"
    assert [request.status for request in receiver.requests()] == [None]


def test_down_refuses_connections_and_up_serves_on_the_same_port_again(receiver):
    port = receiver.port
    receiver.down()

    with pytest.raises(ConnectionRefusedError):
        post(receiver)

    receiver.up()
    assert (receiver.port, post(receiver)) == (port, (200, b"ok"))
