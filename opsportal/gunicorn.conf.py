"""gunicorn's configuration for the portal's HTTP in production: `gunicorn -c opsportal/gunicorn.conf.py`.

gunicorn serves everything but WebSockets; `manage.py runportal --no-worker` serves /ws/,
and a reverse proxy (deploy/nginx.conf.template) sends each request to the right one.
gunicorn reads this file, not Django, so its knobs are environment variables of its own
(GUNICORN_*), not settings; GUNICORN_CMD_ARGS overrides anything here.
"""

import contextlib
import logging
import os

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
