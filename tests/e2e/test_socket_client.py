"""static/dashboard/socket.js in a real Chromium, against a scripted WebSocket instead of a server.

Each behaviour the protocol asks of the client, with the browser's clock under
the test's control: a seq gap asks for a resync, old frames are dropped, a
silent socket is given up after 40 s, a restart is retried with growing
delays, a logout is not retried.
"""

import json
from collections.abc import Iterator

import pytest

from tests.e2e.browser import browser_or_skip, chromium
from tests.services import ROOT

pytestmark = pytest.mark.e2e

ORIGIN = "http://dashboard.test"
START_MS = 1_796_100_000_000
# Stands in for the browser's WebSocket: records what the client sends, lets the test speak for the server.
FAKE_SOCKET = """
window.sockets = [];
window.WebSocket = class {
  static OPEN = 1;
  constructor(url) { this.url = url; this.sent = []; this.readyState = 0; window.sockets.push(this); }
  send(text) { this.sent.push(JSON.parse(text)); }
  close() { this.readyState = 3; }
  serverOpens() { this.readyState = 1; this.onopen(); }
  serverSends(message) { this.onmessage({ data: JSON.stringify(message) }); }
  serverCloses(code) { this.readyState = 3; this.onclose({ code }); }
};
"""
PAGE = """<!doctype html><script src="/static/dashboard/socket.js"></script><script>
window.seen = [];
window.live = new LiveSocket("/ws/dashboard/", ["metrics", "alerts"], {
  state: (state, detail) => seen.push(["state", state]),
  subscribed: (topics, denied, first) => seen.push(["subscribed", first]),
  snapshot: (topic, data) => seen.push(["snapshot", topic]),
  frame: (topic, type, data, frame) => seen.push(["frame", topic, frame.seq]),
});
live.open();
</script>"""


@pytest.fixture
def page() -> Iterator:
    browser_or_skip()
    with chromium() as browser:
        page = browser.new_page()
        # Paused: only run_for() moves time, however slowly the machine runs the test.
        page.clock.install(time=START_MS)
        page.clock.pause_at(START_MS + 1000)
        page.add_init_script(FAKE_SOCKET)
        page.route(f"{ORIGIN}/", lambda route: route.fulfill(body=PAGE, content_type="text/html"))
        page.route(
            f"{ORIGIN}/static/**",
            lambda route: route.fulfill(path=ROOT / "static" / route.request.url.split("/static/", 1)[1]),
        )
        page.goto(f"{ORIGIN}/")
        yield page


def server(page, index: int, method: str, *args: object) -> None:
    page.evaluate(f"sockets[{index}].{method}(...{json.dumps(args)})")


def sent(page, index: int) -> list[dict]:
    return page.evaluate(f"sockets[{index}].sent")


def states(page) -> list[str]:
    return [entry[1] for entry in page.evaluate("seen") if entry[0] == "state"]


def go_live(page, index: int = 0) -> None:
    server(page, index, "serverOpens")
    server(page, index, "serverSends", {"type": "subscribed", "topics": ["metrics", "alerts"], "denied": []})
    server(page, index, "serverSends", {"topic": "metrics", "type": "snapshot", "seq": 5, "ts": 1.0, "data": {}})


def test_it_subscribes_on_open_and_is_live_once_subscribed(page):
    assert page.evaluate("sockets[0].url") == "ws://dashboard.test/ws/dashboard/"
    go_live(page)
    assert sent(page, 0) == [{"type": "subscribe", "topics": ["metrics", "alerts"]}]
    assert states(page)[-1] == "live"
    assert page.evaluate("seen").count(["subscribed", True]) == 1


def test_a_seq_gap_sends_one_resync_and_old_frames_are_dropped(page):
    go_live(page)
    for seq in (5, 6, 8, 9):  # 5 is in the snapshot already; 7 never came
        server(page, 0, "serverSends", {"topic": "metrics", "type": "sample", "seq": seq, "ts": 2.0, "data": {}})
    assert [entry[2] for entry in page.evaluate("seen") if entry[0] == "frame"] == [6, 8, 9]
    assert sent(page, 0)[1:] == [{"type": "resync", "topic": "metrics"}]


def test_heartbeats_keep_a_socket_and_40_silent_seconds_drop_it(page):
    go_live(page)
    for _ in range(3):
        page.clock.run_for(15_000)
        server(page, 0, "serverSends", {"type": "heartbeat", "ts": 3.0})
    assert page.evaluate("sockets.length") == 1 and sent(page, 0) == [
        {"type": "subscribe", "topics": ["metrics", "alerts"]}
    ]
    page.clock.run_for(46_000)
    assert "reconnecting" in states(page)
    page.clock.run_for(1_000)  # the first retry waits 0.25-0.5 s
    assert page.evaluate("sockets.length") == 2


def test_a_restart_is_retried_with_growing_delays_and_then_live_again(page):
    go_live(page)
    server(page, 0, "serverCloses", 1012)
    for attempt in range(1, 5):  # each retry waits up to 0.5 s x 2^(attempt - 1), at least half of it
        page.clock.run_for(250 * 2 ** (attempt - 1) - 1)
        assert page.evaluate("sockets.length") == attempt, "retried too early"
        page.clock.run_for(250 * 2 ** (attempt - 1) + 1)
        assert page.evaluate("sockets.length") == attempt + 1
        server(page, attempt, "serverCloses", 1006)  # the server is still down
    page.clock.run_for(8_000)  # the fifth waits at most 0.5 s x 2^4
    go_live(page, 5)
    assert states(page)[-1] == "live"
    assert page.evaluate("seen").count(["subscribed", True]) == 2


def test_a_logout_is_offline_and_not_retried(page):
    go_live(page)
    server(page, 0, "serverCloses", 4401)
    page.clock.run_for(60_000)
    assert states(page)[-1] == "offline"
    assert page.evaluate("sockets.length") == 1
