"""Inbound hooks under load: signed events (verified, stored, alert fired) and heartbeat pings.

One server (bench.settings_full: the portal's settings and middleware plus bench.urls):
gunicorn with the production configuration (opsportal/gunicorn.conf.py, 2 gthread
workers x 4 threads), as README's production layout serves /hooks/, or with
--server uvicorn `manage.py runportal --no-worker`; in production mode: a scratch PostgreSQL
database with its connection pool, Redis (database 12) for the cache and the
channel layer, JSON request logs to a file. No Celery worker: an alert's
notifications would be its work, and no channel is configured, so there are none.

Signed events (POST /hooks/events/<name>/, Standard Webhooks): each request has a
new webhook-id, the current webhook-timestamp and its own HMAC-SHA256 signature,
made by the load generator (its CPU is reported: signing must not be what limits).
Both endpoints map "incident.opened" to alert_fire(key=data.id). Cases, taking
turns for --rounds rounds, --clients closed-loop keep-alive connections each:

- events, new alert: data.id is the webhook-id, so every event raises a new alert;
- events, update open alert: data.id is one of --open-alerts keys, so after the
  first events each one updates an open alert (fire_count + 1, no new alert);
- baseline: the same signed requests to POST /bench/events, a plain view behind the
  same middleware that reads the body and answers 200.

Afterwards the database is read: every event answered 200 must be stored once, the
new-alert endpoint must hold one alert per event, the update endpoint --open-alerts
alerts whose fire counts add up to its events.

Heartbeat pings (GET /hooks/heartbeat/<uuid>, --heartbeats heartbeats, taken in turn):

- paced, open loop: --per-minute pings a minute (default 2,000) for --heartbeat-seconds
  (default 120), due at a steady rate and spread over --clients connections; latency is
  counted from when each ping was due. Goal: the rate sustained (every ping answered 200,
  the last one within 1 s of when it was due: no backlog built up), p99 < 100 ms;
- closed loop, --clients clients for --seconds: the most it takes (for information).

Run on demand, never by the tests:
    .venv/bin/python -m bench.hooks_ingest [--clients 50] [--seconds 10] [--rounds 3]
        [--heartbeat-seconds 120] [--json]
"""

import argparse
import itertools
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # also runs as `python bench/hooks_ingest.py`

from apps.core import standard_webhooks  # plain hmac/base64: no Django in this process
from bench.common import POSTGRES_URL, REDIS_URL, cpu_seconds, figures, gunicorn, machine, progress, runportal
from bench.load import Load, hammer, pace, request_bytes
from tests.faults.harness import Portal, portal
from tests.services import Process, free_port

REDIS_DB = 12
NEW, UPDATE, BASELINE = "events, new alert", "events, update open alert", "baseline: /bench/events"
ENDPOINTS = {NEW: "bench-new", UPDATE: "bench-update"}
MAPPING = {"fire": ["incident.opened"], "key": "data.id", "summary": "data.summary", "severity": "data.severity"}
P99_GOAL_MS = 100.0
MAX_DRAIN_MS = 1000.0  # the last paced ping answered later than this after it was due: a backlog built up
SETUP = """
from apps.core import standard_webhooks
from apps.hooks import heartbeats
from apps.hooks.models import WebhookEndpoint
secrets = {{}}
for name in {endpoints!r}:
    secrets[name] = standard_webhooks.new_secret()
    WebhookEndpoint.objects.create(name=name, secret=secrets[name], mapping={mapping!r})
beats = [heartbeats.heartbeat_create(name=f"bench-{{n}}", period_seconds=60) for n in range({heartbeats})]
print(json.dumps({{"secrets": secrets, "heartbeats": [str(beat.uuid) for beat in beats]}}))
"""


class SignedEvents:
    """Builds one signed delivery per call: a new webhook-id, the current timestamp, its own signature."""

    def __init__(self, host: str, path: str, secret: str, open_alerts: int | None) -> None:
        self.host, self.path, self.open_alerts = host, path, open_alerts
        self.key = standard_webhooks.secret_key(secret)
        self.prefix = f"msg_{uuid.uuid4().hex[:12]}_"
        self.counter = itertools.count()

    def __call__(self) -> bytes:
        n = next(self.counter)
        message_id = f"{self.prefix}{n}"
        key = message_id if self.open_alerts is None else f"open-{n % self.open_alerts}"
        event = {
            "type": "incident.opened",
            "timestamp": int(time.time()),
            "data": {"id": key, "summary": f"Bench incident {key}", "severity": "warning"},
        }
        body = json.dumps(event).encode()
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": standard_webhooks.sign(self.key, message_id, timestamp, body),
        }
        return request_bytes(self.path, self.host, headers, method="POST", body=body)


def heartbeat_pings(host: str, uuids: list[str]) -> Callable[[], bytes]:
    """The success pings of every heartbeat in turn (prepared once: a ping carries nothing new)."""
    pings = itertools.cycle([request_bytes(f"/hooks/heartbeat/{code}", host) for code in uuids])
    return lambda: next(pings)


def statuses_sum(loads: list[Load]) -> dict[str, int]:
    total: dict[str, int] = {}
    for load in loads:
        for status, count in load.statuses.items():
            total[str(status)] = total.get(str(status), 0) + count
    return total


def answered(loads: list[Load]) -> int:
    return sum(load.statuses.get(200, 0) for load in loads)


def stored(site: Portal) -> dict[str, dict[str, int]]:
    """What the database holds after the run, per endpoint, and the pings."""
    found = {}
    for case, name in ENDPOINTS.items():
        source = f"events:{name}"
        messages = site.query(
            "SELECT count(*) FROM hooks_webhookmessage m JOIN hooks_webhookendpoint e ON e.id = m.endpoint_id"
            " WHERE e.name = %s",
            name,
        )[0][0]
        alerts, fires = site.query(
            "SELECT count(*), coalesce(sum(fire_count), 0) FROM alerts_alert WHERE source = %s", source
        )[0]
        found[case] = {"messages": messages, "alerts": alerts, "fire_count_sum": int(fires)}
    found["heartbeat pings"] = {"pings": site.query("SELECT count(*) FROM hooks_heartbeatping")[0][0]}
    return found


def measure(args: argparse.Namespace, root: Path) -> dict:
    with portal(POSTGRES_URL, REDIS_URL, REDIS_DB, root) as site:
        code = SETUP.format(endpoints=tuple(ENDPOINTS.values()), mapping=MAPPING, heartbeats=args.heartbeats)
        made = site.shell(code, timeout=300)
        port = free_port()
        env = {
            **site.env,
            "DJANGO_SETTINGS_MODULE": "bench.settings_full",
            "LOG_FORMAT": "json",
            "LOG_CONSOLE": "false",
            "LOG_FILE": str(root / "portal.log"),
        }
        command = gunicorn(port) if args.server == "gunicorn" else runportal(port, "--no-worker")
        server = Process(command, env=env, log=root / f"{args.server}.out")
        try:
            server.wait_for_http(f"http://127.0.0.1:{port}/healthz")
            host = f"127.0.0.1:{port}"
            secrets = made["secrets"]
            requests = {
                NEW: SignedEvents(host, f"/hooks/events/{ENDPOINTS[NEW]}/", secrets[ENDPOINTS[NEW]], None),
                UPDATE: SignedEvents(
                    host, f"/hooks/events/{ENDPOINTS[UPDATE]}/", secrets[ENDPOINTS[UPDATE]], args.open_alerts
                ),
                BASELINE: SignedEvents(host, "/bench/events", secrets[ENDPOINTS[NEW]], None),
            }
            # Warm-ups are counted too (every 200 is an event the database must hold), not measured.
            warmups: dict[str, list[Load]] = {case: [] for case in requests}
            for case, request in requests.items():
                warmups[case].append(hammer("127.0.0.1", port, request, clients=args.clients, seconds=args.warmup))
            samples: dict[str, list[tuple[Load, float]]] = {case: [] for case in requests}
            for round_ in range(1, args.rounds + 1):
                for case, request in requests.items():
                    before = cpu_seconds(server)
                    load = hammer("127.0.0.1", port, request, clients=args.clients, seconds=args.seconds)
                    samples[case].append((load, cpu_seconds(server) - before))
                    progress(f"round {round_}/{args.rounds}: {case:<26} {load.per_second:8.0f}/s  errors {load.errors}")

            pings = heartbeat_pings(host, made["heartbeats"])
            warmups["heartbeat pings"] = [hammer("127.0.0.1", port, pings, clients=args.clients, seconds=args.warmup)]
            rate = args.per_minute / 60
            progress(f"heartbeats: {args.per_minute}/min paced for {args.heartbeat_seconds:g} s ...")
            before = cpu_seconds(server)
            paced, late_ms = pace(
                "127.0.0.1", port, pings, rate=rate, seconds=args.heartbeat_seconds, connections=args.clients
            )
            paced_cpu = cpu_seconds(server) - before
            progress(f"heartbeats paced: {paced.per_second:.1f}/s  errors {paced.errors}; closed loop ...")
            before = cpu_seconds(server)
            closed = hammer("127.0.0.1", port, pings, clients=args.clients, seconds=args.seconds)
            closed_cpu = cpu_seconds(server) - before
        finally:
            server.stop()
        found = stored(site)
    return {
        "heartbeats": len(made["heartbeats"]),
        "events": samples,
        "warmups": warmups,
        "paced": (paced, paced_cpu, late_ms, rate),
        "closed": (closed, closed_cpu),
        "found": found,
    }


def row(runs: list[tuple[Load, float]]) -> dict:
    """One case's figures over its runs."""
    loads = [load for load, _ in runs]
    requests = sum(load.requests for load in loads)
    seconds = sum(load.seconds for load in loads)
    latency = figures([ms for load in loads for ms in load.latencies_ms])
    client_cpu_seconds = sum(load.client_cpu * load.seconds for load in loads)
    return {
        "requests": requests,
        "errors": sum(load.errors for load in loads),
        "statuses": statuses_sum(loads),
        "per_second": round(requests / seconds, 1),
        "per_second_by_round": [round(load.per_second, 1) for load in loads],
        **{f"{name}_ms": round(value, 2) for name, value in latency.items()},
        "server_cpu_ms_per_request": round(1000 * sum(cpu for _, cpu in runs) / requests, 3),
        "client_cpu": round(max(load.client_cpu for load in loads), 2),
        "client_cpu_us_per_request": round(1e6 * client_cpu_seconds / requests, 1),
    }


def summarise(measured: dict, args: argparse.Namespace) -> dict:
    events = {case: row(runs) for case, runs in measured["events"].items()}
    for case in ENDPOINTS:
        events[case]["throughput_over_baseline"] = round(events[case]["per_second"] / events[BASELINE]["per_second"], 3)
    found = measured["found"]
    accepted = {case: answered([load for load, _ in measured["events"][case]]) for case in ENDPOINTS}
    accepted["heartbeat pings"] = answered([measured["paced"][0], measured["closed"][0]])
    accepted = {case: count + answered(measured["warmups"][case]) for case, count in accepted.items()}
    expected = {
        NEW: {"messages": accepted[NEW], "alerts": accepted[NEW], "fire_count_sum": accepted[NEW]},
        UPDATE: {
            "messages": accepted[UPDATE],
            "alerts": min(args.open_alerts, accepted[UPDATE]),
            "fire_count_sum": accepted[UPDATE],
        },
        "heartbeat pings": {"pings": accepted["heartbeat pings"]},
    }
    database = {"expected": expected, "found": found, "consistent": expected == found}

    paced, paced_cpu, late_ms, rate = measured["paced"]
    latency = figures(paced.latencies_ms)
    drain_ms = 1000 * (paced.seconds - (paced.requests - 1) / rate)  # last answer - last due time
    scheduled = max(1, round(rate * args.heartbeat_seconds))
    sustained = paced.requests == scheduled and paced.errors == 0 and drain_ms <= MAX_DRAIN_MS
    heartbeat_paced = {
        "per_minute_target": args.per_minute,
        "seconds": round(paced.seconds, 1),
        "requests": paced.requests,
        "errors": paced.errors,
        "statuses": statuses_sum([paced]),
        "per_minute": round(paced.per_second * 60, 1),  # answered over the run, from first due to last answer
        "last_answer_after_due_ms": round(drain_ms, 1),
        **{f"{name}_ms": round(value, 2) for name, value in latency.items()},
        "sent_late": len(late_ms),  # requests whose connection was still busy when they were due
        "sent_late_max_ms": round(max(late_ms, default=0.0), 1),
        "server_cpu_ms_per_request": round(1000 * paced_cpu / paced.requests, 3),
        "server_cpu": round(paced_cpu / paced.seconds, 3),
        "client_cpu": round(paced.client_cpu, 3),
        "sustained": sustained,
        "goal_met": sustained and latency["p99"] < P99_GOAL_MS,
    }
    closed, closed_cpu = measured["closed"]
    heartbeat_closed = row([(closed, closed_cpu)])
    heartbeat_closed["per_minute"] = round(closed.per_second * 60)
    return {
        "events": events,
        "heartbeat_paced": heartbeat_paced,
        "heartbeat_closed_loop": heartbeat_closed,
        "database": database,
    }


def print_table(result: dict, args: argparse.Namespace) -> None:
    events, paced, closed, database = (
        result[name] for name in ("events", "heartbeat_paced", "heartbeat_closed_loop", "database")
    )
    print(f"machine: {result['machine']}")
    print(
        f"{args.server}; {args.clients} clients, {args.rounds} x {args.seconds:g} s per case; "
        f"update case: {args.open_alerts} open alerts; {result['heartbeats']} heartbeats"
    )
    columns = ("req/s", "median", "p90", "p99", "max")
    header = " ".join(f"{name:>8}" for name in columns)
    print(f"  {'case':<28} {header} {'cpu ms/req':>10} {'client':>7} {'client us/req':>13} {'errors':>6}")
    cases = {**events, "heartbeat pings, closed loop": closed}
    for case, line in cases.items():
        print(
            f"  {case:<28} {line['per_second']:>8.0f} {line['median_ms']:>8.2f} {line['p90_ms']:>8.2f}"
            f" {line['p99_ms']:>8.2f} {line['max_ms']:>8.2f} {line['server_cpu_ms_per_request']:>10.3f}"
            f" {line['client_cpu']:>7.2f} {line['client_cpu_us_per_request']:>13.1f} {line['errors']:>6}"
        )
    print(
        f"  heartbeat pings, paced: {paced['per_minute']:.0f}/min of {paced['per_minute_target']} for "
        f"{paced['seconds']:g} s, {paced['requests']} pings, errors {paced['errors']}; latency median "
        f"{paced['median_ms']:.2f} p90 {paced['p90_ms']:.2f} p99 {paced['p99_ms']:.2f} max {paced['max_ms']:.2f} ms; "
        f"sent late {paced['sent_late']} (max {paced['sent_late_max_ms']:.0f} ms); last answered "
        f"{paced['last_answer_after_due_ms']:.0f} ms after due; server CPU {paced['server_cpu']:.2f} core, "
        f"client {paced['client_cpu']:.2f}"
    )
    print(f"  database after the run: {database['found']}")
    for case in ENDPOINTS:
        line = events[case]
        print(
            f"  {case}: {line['per_second']:.0f} events/s end to end, p99 {line['p99_ms']:.1f} ms, "
            f"{line['throughput_over_baseline']:.2f}x the baseline's throughput"
        )
    verdict = "met" if database["consistent"] else f"NOT met (expected {database['expected']})"
    print(f"  every accepted event stored once and its alert fired or updated, every ping stored: {verdict}")
    verdict = "met" if paced["goal_met"] else "NOT met"
    print(
        f"  heartbeats: {paced['per_minute_target']}/min sustained with p99 < {P99_GOAL_MS:g} ms: {verdict} "
        f"(p99 {paced['p99_ms']:.1f} ms); closed loop takes {closed['per_minute']:,}/min"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50, help="concurrent keep-alive connections (default 50)")
    parser.add_argument("--seconds", type=float, default=10, help="seconds per closed-loop case and round (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, the event cases taking turns (default 3)")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of warm-up per case (default 3)")
    parser.add_argument("--open-alerts", type=int, default=10, help="open alerts the update case updates (default 10)")
    parser.add_argument("--heartbeats", type=int, default=200, help="heartbeats pinged in turn (default 200)")
    parser.add_argument("--per-minute", type=int, default=2000, help="paced heartbeat pings a minute (default 2000)")
    parser.add_argument("--heartbeat-seconds", type=float, default=120, help="the paced run's length (default 120)")
    parser.add_argument(
        "--server",
        choices=("gunicorn", "uvicorn"),
        default="gunicorn",
        help="gunicorn (default) or runportal's uvicorn",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = parser.parse_args()
    if min(args.clients, args.rounds, args.open_alerts, args.heartbeats, args.per_minute) < 1:
        parser.error("--clients, --rounds, --open-alerts, --heartbeats and --per-minute must be at least 1")
    if args.seconds <= 0 or args.heartbeat_seconds <= 0 or args.warmup < 0:
        parser.error("--seconds and --heartbeat-seconds must be positive, --warmup not negative")

    with tempfile.TemporaryDirectory(prefix="opsportal-hooks-ingest-") as root:
        measured = measure(args, Path(root))
    result = {"machine": machine(), "heartbeats": measured["heartbeats"], **summarise(measured, args)}
    if args.json:
        settings = {
            name: getattr(args, name)
            for name in (
                "server",
                "clients",
                "seconds",
                "rounds",
                "warmup",
                "open_alerts",
                "heartbeats",
                "per_minute",
                "heartbeat_seconds",
            )
        }
        print(json.dumps({"benchmark": "hooks_ingest", **settings, **result}, indent=2))
        return
    print_table(result, args)


if __name__ == "__main__":
    main()
