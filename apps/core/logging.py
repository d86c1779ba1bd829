"""Structured logging: structlog processors and the LOGGING dict built from settings.

Every line, whether it comes from structlog or from a stdlib logger (Django,
Celery, uvicorn), goes through the same final chain: context, redaction,
truncation, then JSON or console rendering.
"""

import logging
import logging.handlers
from typing import Any

import structlog
from django.http import HttpRequest

from apps.core.redaction import redact

# Per-component levels: LOG_<COMPONENT>_LEVEL applies to these loggers.
COMPONENT_LOGGERS = {
    "api": ["django.request", "django_structlog", "apps.hooks", "apps.dashboard", "uvicorn"],
    "database": ["django.db.backends"],
    "auth": ["django.security", "django.contrib.auth", "apps.audit"],
    "monitoring": ["apps.health", "apps.metrics", "apps.alerts", "apps.backups", "celery"],
}


def drop_color_message(logger: Any, method: str, event_dict: dict) -> dict:
    event_dict.pop("color_message", None)  # uvicorn's ANSI-coloured duplicate of the message
    return event_dict


def redact_processor(logger: Any, method: str, event_dict: dict) -> dict:
    # Django's request logger passes the request itself, rendered later as "<WSGIRequest: GET '/path'>": made
    # text here, so that what the path holds (a heartbeat's ping URL) is redacted like any other text.
    request = event_dict.get("request")
    if isinstance(request, HttpRequest):
        event_dict["request"] = f"{request.method} {request.get_full_path()}"
    return redact(event_dict)


class Truncate:
    """Cut string values longer than max_length, saying how much was cut."""

    def __init__(self, max_length: int) -> None:
        self.max_length = max_length

    def __call__(self, logger: Any, method: str, event_dict: dict) -> dict:
        for key, value in event_dict.items():
            if isinstance(value, str) and len(value) > self.max_length and key != "exception":
                cut = len(value) - self.max_length
                event_dict[key] = f"{value[: self.max_length]}…[truncated {cut} chars]"
        return event_dict


def shared_processors() -> list:
    """Processors that run first, for structlog and stdlib records alike."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


class SizeRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Rotates once the file has reached maxBytes.

    The stdlib handler formats every record twice (once to measure it); this
    one checks the file's size only, so a file may pass maxBytes by one line.
    """

    def shouldRollover(self, record: logging.LogRecord) -> bool:  # noqa: N802 - the stdlib's name
        if self.stream is None:
            self.stream = self._open()
        return self.maxBytes > 0 and self.stream.seek(0, 2) >= self.maxBytes  # another process may have written


def configure_structlog() -> None:
    # Record attributes no formatter here uses; collecting them costs on every
    # line. Without _srcfile, logging skips walking the stack for the caller's
    # file and line (the switch its source documents for this purpose).
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared_processors(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def formatter(renderer: str, max_message_length: int) -> dict:
    final = structlog.processors.JSONRenderer() if renderer == "json" else structlog.dev.ConsoleRenderer(colors=False)
    return {
        "()": structlog.stdlib.ProcessorFormatter,
        "processors": [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            drop_color_message,
            redact_processor,
            Truncate(max_message_length),
            final,
        ],
        "foreign_pre_chain": shared_processors(),
    }


def build_logging(
    *,
    level: str,
    fmt: str,
    console: bool,
    file: str,
    file_size_mb: int,
    backup_count: int,
    component_levels: dict[str, str],
    max_message_length: int,
) -> dict:
    """The LOGGING dict for Django's dictConfig."""
    handlers: dict[str, dict] = {}
    if console:
        handlers["console"] = {"class": "logging.StreamHandler", "formatter": "structured"}
    if file:
        handlers["file"] = {
            "()": SizeRotatingFileHandler,
            "filename": file,
            "maxBytes": file_size_mb * 1024 * 1024,
            "backupCount": backup_count,
            "encoding": "utf-8",
            "formatter": "structured",
        }
    if not handlers:
        handlers["null"] = {"class": "logging.NullHandler"}
    loggers = {
        name: {"level": component_levels[component], "propagate": True}
        for component, names in COMPONENT_LOGGERS.items()
        for name in names
    }
    # Celery and uvicorn install their own handlers unless told otherwise; Django's
    # default "django" logger mails admins. Everything goes through the root here.
    loggers["django"] = {"level": level, "handlers": [], "propagate": True}
    loggers["uvicorn.access"] = {"handlers": [], "propagate": False}  # django-structlog logs each request
    # django-structlog logs task_started / task_succeeded; Celery's own lines repeat
    # them with the task's arguments and return value.
    loggers["celery.app.trace"] = {"level": "WARNING"}
    loggers["celery.worker.strategy"] = {"level": "WARNING"}
    # httpx logs every request's full URL, which may carry a token (a Slack webhook's is
    # its path); apps.core.outbound logs each request itself, without it.
    loggers["httpx"] = {"level": "WARNING"}
    loggers["httpcore"] = {"level": "WARNING"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"structured": formatter(fmt, max_message_length)},
        "handlers": handlers,
        "root": {"level": level, "handlers": list(handlers)},
        "loggers": loggers,
    }


LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
