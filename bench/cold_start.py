"""Cold start: seconds from launching `manage.py runportal` to its first 200 on /admin/login/.

Cases, each timed --runs times, interleaved so that drift hits them all alike:

- baseline: `python -c` running uvicorn (configured as runportal configures it) with a
  trivial ASGI app. The floor any Python ASGI service pays on this machine:
  interpreter, uvicorn, socket. Everything above it is Django and the portal.
- first start: runportal in a fresh, empty OPSPORTAL_VAR_DIR: creates the secret key
  and the SQLite database, applies every migration, creates the admin account.
- restart: runportal again on that same var dir.

The two runportal cases run both with --no-worker and with the embedded Celery
worker and beat. The URL is polled every 20 ms; each server is stopped with
SIGTERM and waited for before the next launch.

Run on demand, never by the tests:  .venv/bin/python -m bench.cold_start [--runs 5] [--json]
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # also runs as `python bench/cold_start.py`

import httpx

from bench.common import figures, machine, portal_env, progress, runportal
from tests.services import Process, free_port, subprocess_env

URL_PATH = "/admin/login/"
POLL_INTERVAL = 0.02
POLL_TIMEOUT = httpx.Timeout(1.0, connect=0.1)
START_TIMEOUT = 120.0
BASELINE = """
import sys, uvicorn
async def app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), ws="websockets-sansio", lifespan="off",
            log_config=None, access_log=False, server_header=False)
"""
BASELINE_CASE = "baseline: uvicorn + trivial ASGI app"
MODES = {"--no-worker": ["--no-worker"], "embedded worker": []}


def time_to_first_200(args: list[str], env: dict[str, str], log: Path, port: int) -> float:
    """Seconds from launching args to the first 200 on URL_PATH; the process is then stopped with SIGTERM."""
    url = f"http://127.0.0.1:{port}{URL_PATH}"
    with httpx.Client(timeout=POLL_TIMEOUT) as client:
        started = time.perf_counter()
        process = Process(args, env=env, log=log)
        try:
            while time.perf_counter() - started < START_TIMEOUT:
                try:
                    if client.get(url).status_code == 200:
                        return time.perf_counter() - started
                except httpx.TransportError:
                    pass
                if process.popen.poll() is not None:
                    raise RuntimeError(f"{args} exited with {process.popen.returncode}:\n{process.output}")
                time.sleep(POLL_INTERVAL)
            raise RuntimeError(f"{url} gave no 200 within {START_TIMEOUT}s:\n{process.output}")
        finally:
            status = process.stop()
            if process.orphans:
                progress(f"  warning: {args[1:]} left processes behind: {process.orphans}")
            if status != 0 and args[1] == "manage.py":
                progress(f"  warning: {args[1:]} exited with {status} after SIGTERM (log: {log})")


def measure(runs: int, root: Path) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {BASELINE_CASE: []}
    for run in range(1, runs + 1):
        port = free_port()
        seconds = time_to_first_200(
            [sys.executable, "-c", BASELINE, str(port)], subprocess_env(), root / f"baseline-{run}.log", port
        )
        samples[BASELINE_CASE].append(seconds)
        progress(f"run {run}/{runs}: baseline {seconds:.3f}s")
        for mode, options in MODES.items():
            home = Path(tempfile.mkdtemp(prefix=f"{run}-", dir=root))
            env = portal_env(home / "var", home / "portal.log")
            for case in ("first start", "restart"):
                port = free_port()
                seconds = time_to_first_200(runportal(port, *options), env, home / f"{case}.out", port)
                samples.setdefault(f"runportal ({mode}): {case}", []).append(seconds)
                progress(f"run {run}/{runs}: {mode}, {case} {seconds:.3f}s")
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="launches per case (default 5)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a summary")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    with tempfile.TemporaryDirectory(prefix="opsportal-cold-start-") as root:
        samples = measure(args.runs, Path(root))
    floor = figures(samples[BASELINE_CASE])["median"]
    cases = {}
    for case, values in samples.items():
        summary = figures(values)
        cases[case] = {
            "min_s": round(summary["min"], 3),
            "median_s": round(summary["median"], 3),
            "max_s": round(summary["max"], 3),
            "median_over_baseline_s": round(summary["median"] - floor, 3),
            "samples_s": [round(value, 3) for value in values],
        }
    if args.json:
        result = {"benchmark": "cold_start", "machine": machine(), "runs": args.runs, "cases": cases}
        print(json.dumps(result, indent=2))
        return
    print(f"Cold start to first 200 on {URL_PATH}, {args.runs} runs each (seconds):")
    print(f"  {'case':<46} {'min':>7} {'median':>7} {'max':>7} {'median - baseline':>18}")
    for case, row in cases.items():
        print(
            f"  {case:<46} {row['min_s']:>7.3f} {row['median_s']:>7.3f} {row['max_s']:>7.3f}"
            f" {row['median_over_baseline_s']:>+18.3f}"
        )


if __name__ == "__main__":
    main()
