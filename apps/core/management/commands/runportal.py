"""`manage.py runportal`: the whole portal in one process.

Applies migrations, makes sure an admin account exists, then serves HTTP and
WebSockets with uvicorn while the Celery worker and beat run in threads of the
same process (unless --no-worker). SIGINT/SIGTERM shut everything down: the
server drains its connections, then the worker finishes its running tasks.
"""

import gc
import signal
from argparse import ArgumentTypeError
from types import FrameType

import structlog
import uvicorn
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core import context
from apps.core.services import admin_account_ensure
from apps.core.worker import EmbeddedWorker
from opsportal.celery import app as celery_app

logger = structlog.get_logger(__name__)


def port_number(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise ArgumentTypeError(f"{port} is not between 0 and 65535")
    return port


def thread_count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise ArgumentTypeError(f"{text!r} is not a whole number from 1 to 64")
    return int(text)


class Command(BaseCommand):
    help = "Serve the portal (HTTP and WebSockets) together with its background worker and scheduler."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1).")
        parser.add_argument("--port", type=port_number, default=8000, help="Port to listen on (default 8000).")
        parser.add_argument(
            "--no-worker",
            action="store_true",
            help="Do not run the Celery worker and beat in this process (they run as `celery -A opsportal ...`).",
        )
        parser.add_argument(
            "--concurrency", type=thread_count, default=4, help="Worker threads for background tasks (default 4)."
        )

    def handle(self, *args: object, **options: object) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        # Requests and tasks bring their own context; what else the server does is the system's.
        context.activate(context.RequestContext())
        self.announce_admin()
        worker = None if options["no_worker"] else EmbeddedWorker(celery_app, concurrency=options["concurrency"])
        from opsportal.asgi import application  # here, not for `--help`: it loads every view and consumer

        # What is loaded by now lives as long as the process: frozen out of the collector's way, a full
        # collection walks the objects of requests and sockets only (it paused the server 0.3-0.8 s
        # with a thousand dashboard sockets open when it also walked every module, class and view).
        gc.collect()
        gc.freeze()
        server = uvicorn.Server(
            uvicorn.Config(
                application,
                host=options["host"],
                port=options["port"],
                ws="websockets-sansio",
                # Dashboard frames are small and go to many sockets: compressing each one once per
                # socket would cost more CPU than the whole fan-out (they are serialised once).
                ws_per_message_deflate=False,
                lifespan="off",
                # Only the portal judges X-Forwarded-For and -Proto, by TRUSTED_PROXIES (apps.core.middleware):
                # uvicorn would otherwise believe them from 127.0.0.1, whatever TRUSTED_PROXIES says.
                proxy_headers=False,
                log_config=None,  # logging is Django's LOGGING
                access_log=False,  # django-structlog logs every request with its context
                server_header=False,
                timeout_graceful_shutdown=10,
            )
        )
        # uvicorn re-raises the signal that stopped it once it has drained; this
        # handler absorbs that so the worker can be stopped cleanly afterwards.
        stopping = []

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stopping.append(signum)

        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, on_signal)
        if worker:
            worker.start()
        self.stdout.write(f"opsportal is serving at http://{options['host']}:{options['port']}/ (Ctrl-C stops it)")
        try:
            server.run()
        finally:
            if worker:
                worker.stop()
        if not server.started:
            raise CommandError(f"could not serve on {options['host']}:{options['port']} (see the log above)")
        logger.info("runportal_stopped", signal=stopping[0] if stopping else None)

    def announce_admin(self) -> None:
        account = admin_account_ensure(password=settings.ADMIN_PASSWORD)
        if account is None:
            return
        if not account.created:
            self.stderr.write(
                f"No superuser exists and the user {account.username!r} is not one: use `manage.py createsuperuser`."
            )
        elif account.generated_password:
            self.stdout.write(
                self.style.WARNING(
                    f"Created the superuser {account.username!r} with password: {account.generated_password}\n"
                    "It is shown only this once and stored only as a hash: note it now."
                )
            )
        else:
            self.stdout.write(f"Created the superuser {account.username!r} with OPSPORTAL_ADMIN_PASSWORD.")
