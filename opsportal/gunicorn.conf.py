"""gunicorn's configuration for the portal's HTTP in production: `gunicorn -c opsportal/gunicorn.conf.py`.

gunicorn serves everything but WebSockets; `manage.py runportal --no-worker` serves /ws/,
and a reverse proxy (deploy/nginx.conf.template) sends each request to the right one.
gunicorn reads this file, not Django, so its knobs are environment variables of its own
(GUNICORN_*), not settings; GUNICORN_CMD_ARGS overrides anything here. It also puts
prometheus_client in multiprocess mode, so that /metrics answers for every worker at once.
"""

import contextlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

from gunicorn.arbiter import Arbiter
from gunicorn.http.message import Request
from gunicorn.http.wsgi import Response
from gunicorn.workers.base import Worker

wsgi_app = "opsportal.wsgi:application"
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")

# A worker per core keeps every core busy with Python; threads overlap each worker's waits on
# PostgreSQL and Redis (bench/api_read.py measures 2 x 4 on 2 cores). The cores this process may
# run on, not the host's: a container limited to a cpuset gets a worker per core of its set.
worker_class = "gthread"
workers = int(os.environ.get("GUNICORN_WORKERS") or len(os.sched_getaffinity(0)))
threads = int(os.environ.get("GUNICORN_THREADS") or 4)
keepalive = 5
# A stop lets running requests finish for as long as runportal's uvicorn does, within Docker's grace period.
graceful_timeout = 10

# The portal logs every request itself, as JSON with its request id and the client's address.
accesslog = None

# Only the portal judges X-Forwarded-For and -Proto, by TRUSTED_PROXIES (apps.core.middleware).
# gunicorn never sets REMOTE_ADDR from them, but it believes X-Forwarded-Proto from the addresses
# listed here for wsgi.url_scheme, which Django falls back on once the portal has dropped that
# header from an untrusted peer: listing none leaves no second judge (the default is 127.0.0.1).
forwarded_allow_ips = ""

# The workers' heartbeat files on tmpfs: on a disk-backed /tmp (a container's overlay) an fchmod can stall a worker.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# No control socket: its default path is one per user, shared by every gunicorn the user starts.
control_socket_disable = True

# /metrics across the workers (apps.core.prometheus): in prometheus_client's multiprocess mode each worker
# keeps django-prometheus's counters and histograms in files of its own under PROMETHEUS_MULTIPROC_DIR, and
# a scrape sums every worker's files, whichever worker answers it. prometheus_client reads the variable once,
# when first imported: this file runs in the master before any worker forks and before the portal is
# imported (by the workers; by the master after this file with --preload), so the variable set here reaches
# all of them. Nothing in this file imports prometheus_client before that. An operator's directory is
# honoured; else the master makes its own, private (mkdtemp: mode 0700) and on tmpfs like the heartbeats,
# and removes it on exit. (A HUP reload runs this file again and finds the variable set: that directory
# then outlives the master.)
MADE_METRICS_DIR = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    MADE_METRICS_DIR = tempfile.mkdtemp(prefix="opsportal-prometheus-", dir=worker_tmp_dir)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = MADE_METRICS_DIR


def on_starting(server: Arbiter) -> None:
    """A new server counts from zero: the metrics directory is emptied (an operator's may hold a previous
    run's files) before the first worker forks. Not on a HUP reload: its new workers add to the same sums."""
    path = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()


def child_exit(server: Arbiter, worker: Worker) -> None:
    """A worker gone (stopped, crashed, killed and replaced): prometheus_client drops its live gauges. Its
    counters' and histograms' files stay in the sums, or the server's totals would go backwards (so each
    replaced worker leaves two small files that every scrape reads, until the server restarts)."""
    from prometheus_client import multiprocess  # here: imported only once the variable is set (see above)

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Arbiter) -> None:
    """The master's own metrics directory goes with it; an operator's stays (emptied at the next start)."""
    if MADE_METRICS_DIR:
        shutil.rmtree(MADE_METRICS_DIR, ignore_errors=True)


def post_worker_init(worker: Worker) -> None:
    """Once the worker has loaded the portal, whose logging setup stops recording process ids to save a
    system call per line (apps.core.logging): gunicorn's own lines print them, and fail to format without."""
    logging.logProcesses = True


# nginx's client_max_body_size (deploy/nginx.conf.template): the most a refused body can hold behind the proxy.
DRAIN_BYTES = 2 * 1024 * 1024


def post_request(worker: Worker, req: Request, environ: dict, resp: Response) -> None:
    """After the answer, read what is left of a body the portal answered without reading (413 from
    Content-Length, 404 for an unknown hook). gunicorn reads only 64 KiB of it, then closes the socket on
    the rest, and the kernel's reset reaches nginx while it is still sending the body: nginx answers 502
    instead (one in seven 413s did on loopback). nginx has the whole body buffered, so this costs no wait."""
    left = DRAIN_BYTES
    with contextlib.suppress(OSError):
        while left > 0 and (chunk := req.body.read(min(left, 65536))):
            left -= len(chunk)
