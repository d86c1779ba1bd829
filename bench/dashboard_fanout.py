"""Live dashboards: fan-out of metrics frames to N WebSocket clients, the portal beside a minimal broadcast server.

Servers, one after the other in the same run:

- portal: `manage.py runportal --no-worker` in production mode (PostgreSQL opsportal_bench_fanout,
  channels-redis on Redis database 5, uvicorn with websockets-sansio), clients
  logged in as a staff user with metrics.view_series (a session made with
  SessionStore, sent as the sessionid cookie with the server's Origin);
- baseline: bench/fanout_baseline.py, the `websockets` library's asyncio server
  fed over Redis pub/sub, serialising each frame once and broadcast()ing it.

Clients (bench/ws_client.py): --client-processes processes (uvloop), the sockets
spread over them, each socket subscribing to "metrics", reading every frame,
checking seq and resyncing on a gap, recording publish→receive latency from `ts`.
A publisher process (bench/fanout_publisher.py) sends metrics/"sample" frames at
--rate a second: through `broadcast_on_commit` for the portal, PUBLISHed to Redis
for the baseline. For each N in --clients (sockets are added, never reconnected):
--warmup seconds of frames, then --seconds measured. Figures: p50/p99/max latency,
delivery (measured frames received / sockets x measured frames), silent losses
(missed and not covered by a snapshot), server CPU µs per delivered frame (psutil,
over the measured frames), server RSS, the clients' own CPU.

At --scenario-clients sockets (1,000), also:
- burst: --burst-frames frames published back to back; every socket must end with
  each frame or a snapshot covering it;
- stall: a reference run and the same run with one more socket that never reads
  (receive buffer 4 kB), frames padded by --stall-pad bytes so that its buffers
  fill within seconds; the others' p99 against the reference, the server's RSS
  over time, and what the stalled socket got (close code 4408, skipped seqs).

--profile records the portal with py-spy during the --profile-clients phase and
prints the top frames (py-spy must be on PATH or next to the interpreter).

Run on demand, never by the tests (about 4-5 minutes with the defaults):
    .venv/bin/python -m bench.dashboard_fanout [--clients 200 1000 2000] [--seconds 15] [--json]
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # also runs as `python bench/dashboard_fanout.py`

from bench.common import machine, progress
from bench.fanout_harness import ClientPool, Sampler, Server, Stalled, analyse, run_phase, server_running
from bench.fanout_profile import Profiler

GOAL_P99_MS = {200: 10, 1000: 25, 2000: 40}
GOAL_CPU_OVER_BASELINE = 1.5
SERVERS = ("baseline", "portal")


def steady(server: Server, clients: ClientPool, sampler: Sampler, args: argparse.Namespace, pad: int = 0) -> dict:
    phase = run_phase(server, clients, sampler, rate=args.rate, warmup=round(args.rate * args.warmup),
                      frames=round(args.rate * args.seconds), pad=pad)  # fmt: skip
    return analyse(phase)


def stall(server: Server, clients: ClientPool, sampler: Sampler, args: argparse.Namespace) -> dict:
    """The reference run, then the same with one socket that never reads."""
    reference = steady(server, clients, sampler, args, pad=args.stall_pad)
    stalled = Stalled(server)
    phase = run_phase(server, clients, sampler, rate=args.rate, warmup=round(args.rate * args.warmup),
                      frames=round(args.rate * args.stall_seconds), pad=args.stall_pad)  # fmt: skip
    send_queue = stalled.server_send_queue()
    seen = stalled.drain()
    others = analyse(phase)
    return {
        "reference": reference,
        "with_stalled": others,
        "p99_over_reference": others["p99_ms"] / reference["p99_ms"],
        "stalled_socket": {**seen, "server_send_queue_bytes_at_end": send_queue},
        "rss_over_time": [(round(t, 1), round(rss, 1)) for t, rss in phase.rss[::4]],
        "rss_growth_mib": phase.rss[-1][1] - phase.rss[0][1] if phase.rss else float("nan"),
    }


def run_server(kind: str, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """Every phase against one server."""
    result: dict[str, Any] = {"steady": {}}
    with server_running(kind, root, args.publisher_window) as server:
        sampler = Sampler(server)
        clients = ClientPool(server, args.client_processes)
        result["rss_idle_mib"] = round(server.rss_mib(), 1)
        try:
            for count in sorted(args.clients):
                connected = clients.connect(count)
                progress(f"{kind}: {clients.connected} sockets ({connected})")
                if connected["failed"]:
                    result["connect_failures"] = connected
                profiler = Profiler(server.pid, args.seconds + args.warmup) if _profiling(kind, count, args) else None
                result["steady"][count] = steady(server, clients, sampler, args)
                if profiler:
                    result["profile"] = profiler.top(args.profile_lines)
                progress(f"{kind}: {count} sockets: {_line(result['steady'][count])}")
                if count == args.scenario_clients:
                    phase = run_phase(server, clients, sampler, rate=0, warmup=0, frames=args.burst_frames, drain=2)
                    result["burst"] = analyse(phase)
                    progress(f"{kind}: burst: {_line(result['burst'])}")
                    result["stall"] = stall(server, clients, sampler, args)
                    progress(f"{kind}: stall: {result['stall']['stalled_socket']}")
        finally:
            clients.quit()
            sampler.stop()
    return result


def _profiling(kind: str, count: int, args: argparse.Namespace) -> bool:
    return args.profile and kind == "portal" and count == args.profile_clients


def _line(row: dict) -> str:
    return (f"p50 {row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms (first socket: p50"
            f" {row['first_socket_p50_ms']:.1f}, p99 {row['first_socket_p99_ms']:.1f}), delivery {row['delivery']:.4f},"
            f" silent losses {row['silent_losses']}, {row['server_cpu_us_per_delivery']:.1f} µs/delivery,"
            f" gaps {row['gaps']}, frames nobody got {row['frames_nobody_got']}, closed {row['closed']}")  # fmt: skip


def verdicts(results: dict[str, dict]) -> dict[str, Any]:
    """Each goal of issue 7 that this run can judge, met or not."""
    if "portal" not in results:
        return {}
    portal, baseline = results["portal"], results.get("baseline")
    found: dict[str, Any] = {}
    for count, row in portal["steady"].items():
        if count in GOAL_P99_MS:
            found[f"p99 <= {GOAL_P99_MS[count]} ms at {count}"] = row["p99_ms"] <= GOAL_P99_MS[count]
        found[f"100 % delivery at {count}"] = row["received"] == row["expected"]
        if baseline and count in baseline["steady"]:
            ratio = row["server_cpu_us_per_delivery"] / baseline["steady"][count]["server_cpu_us_per_delivery"]
            found[f"CPU per delivery <= {GOAL_CPU_OVER_BASELINE}x the baseline's at {count}"] = (
                ratio <= GOAL_CPU_OVER_BASELINE
            )
    if "burst" in portal:
        found["burst: 0 silent losses"] = portal["burst"]["silent_losses"] == 0
    if "stall" in portal:
        found["stall: others' p99 within 10 % of the reference"] = portal["stall"]["p99_over_reference"] <= 1.1
    return found


def print_tables(results: dict[str, dict], args: argparse.Namespace) -> None:
    print(f"Fan-out: {args.rate:g} frames/s, {args.seconds:g} s measured after {args.warmup:g} s,"
          f" {args.client_processes} client processes")  # fmt: skip
    # "1st p50": the first socket's latency of each frame (the way to the fan-out); "x base": CPU per delivery
    # over the baseline's; "srv CPU" and "clients CPU" in cores.
    head = ("p50 ms", "p99 ms", "max ms", "1st p50", "delivery", "silent", "µs/deliv", "x base", "srv CPU",
            "RSS MiB", "clients CPU")  # fmt: skip
    print(f"  {'clients':>7} {'server':<9}" + "".join(f"{name:>12}" for name in head))
    baseline = results.get("baseline", {"steady": {}})["steady"]
    for count in sorted(args.clients):
        for kind, result in results.items():
            row = result["steady"].get(count)
            if row:
                over = row["server_cpu_us_per_delivery"] / baseline[count]["server_cpu_us_per_delivery"] if (
                    count in baseline) else float("nan")  # fmt: skip
                cells = (row["p50_ms"], row["p99_ms"], row["max_ms"], row["first_socket_p50_ms"], row["delivery"],
                         row["silent_losses"], row["server_cpu_us_per_delivery"], over, row["server_cpu_share"],
                         row["rss_max_mib"], row["client_cpu_share"])  # fmt: skip
                formats = (".1f", ".1f", ".1f", ".1f", ".4f", "", ".1f", ".2f", ".2f", ".1f", ".2f")
                print(
                    f"  {count:>7} {kind:<9}"
                    + "".join(f"{cell:>12{spec}}" for cell, spec in zip(cells, formats, strict=True))
                )
    for kind, result in results.items():
        if "burst" in result:
            b = result["burst"]
            print(f"  burst, {kind}: {b['received']}/{b['expected']} frames, {b['missing']} missed, of which"
                  f" {b['covered_by_snapshot']} covered by a snapshot, silent losses {b['silent_losses']},"
                  f" gaps {b['gaps']}, resync snapshots {b['resync_snapshots']}, closed {b['closed']},"
                  f" p99 {b['p99_ms']:.0f} ms, max {b['max_ms']:.0f} ms,"
                  f" server CPU {b['server_cpu_us_per_delivery_settled']:.1f} µs/delivery")  # fmt: skip
        if "stall" in result:
            s = result["stall"]
            print(f"  stall, {kind}: others' p99 {s['with_stalled']['p99_ms']:.1f} ms against"
                  f" {s['reference']['p99_ms']:.1f} ms ({s['p99_over_reference']:.2f}x), delivery"
                  f" {s['with_stalled']['delivery']:.4f}; stalled socket {s['stalled_socket']}")  # fmt: skip
            print(f"    RSS (s, MiB): {s['rss_over_time']}")
    if "profile" in results.get("portal", {}):
        print("  py-spy, portal:")
        for line in results["portal"]["profile"]:
            print(f"    {line}")
    for goal, met in verdicts(results).items():
        print(f"  {goal}: {'met' if met else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, nargs="+", default=[200, 1000, 2000], help="N (default 200 1000 2000)")
    parser.add_argument("--servers", nargs="+", choices=SERVERS, default=list(SERVERS), help="default: both")
    parser.add_argument("--rate", type=float, default=10, help="frames published per second (default 10)")
    parser.add_argument("--seconds", type=float, default=15, help="measured seconds per N (default 15)")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of frames before measuring (default 2)")
    parser.add_argument("--client-processes", type=int, default=min(4, os.cpu_count() * 2), help="default 4")
    parser.add_argument("--scenario-clients", type=int, default=1000, help="N of the burst and stall (default 1000)")
    parser.add_argument("--burst-frames", type=int, default=200, help="frames in the burst (default 200)")
    parser.add_argument("--stall-seconds", type=float, default=15, help="measured seconds of the stall runs")
    parser.add_argument("--stall-pad", type=int, default=4096, help="padding bytes per frame in the stall runs")
    parser.add_argument("--profile", action="store_true", help="py-spy the portal during one phase")
    parser.add_argument("--profile-clients", type=int, default=1000, help="the phase to profile (default 1000)")
    parser.add_argument("--profile-lines", type=int, default=25, help="top frames to print (default 25)")
    parser.add_argument("--publisher-window", type=float, metavar="SECONDS",
                        help="diagnostic: the portal publisher's batching window (broadcast.WINDOW)")  # fmt: skip
    parser.add_argument("--logs", help="keep the servers' and publishers' logs in this folder (default: discarded)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of tables")
    args = parser.parse_args()
    if min(args.clients) < 1 or args.seconds <= 0 or args.warmup < 0 or args.rate <= 0:
        parser.error("--clients and --rate must be positive, --seconds positive, --warmup not negative")

    load = os.getloadavg()
    results = {}
    with tempfile.TemporaryDirectory(prefix="opsportal-fanout-") as scratch:
        root = Path(args.logs or scratch)
        root.mkdir(parents=True, exist_ok=True)
        for kind in args.servers:
            results[kind] = run_server(kind, args, root)
    if args.json:
        report = {"benchmark": "dashboard_fanout", "machine": {**machine(), "load_average_at_start": load},
                  "arguments": vars(args), "results": results, "goals": verdicts(results)}  # fmt: skip
        print(json.dumps(report, indent=2, default=str))
        return
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {machine()}")
    print_tables(results, args)


if __name__ == "__main__":
    main()
