import logging

import structlog

from apps.core.logging import Truncate
from apps.core.redaction import REDACTED, redact


def test_sensitive_keys_are_redacted_in_nested_dicts_and_lists():
    event = {
        "user": "alice",
        "password": "hunter2",
        "headers": {"Authorization": "Bearer abc", "Accept": "*/*", "Cookie": "sessionid=1"},
        "attempts": [{"api_key": "k1", "ok": True}, {"client_secret": "s2"}],
        "deep": {"a": {"b": {"refresh_token": "t"}}},
    }

    cleaned = redact(event)

    assert cleaned["user"] == "alice"
    assert cleaned["password"] == REDACTED
    assert cleaned["headers"] == {"Authorization": REDACTED, "Accept": "*/*", "Cookie": REDACTED}
    assert cleaned["attempts"] == [{"api_key": REDACTED, "ok": True}, {"client_secret": REDACTED}]
    assert cleaned["deep"]["a"]["b"]["refresh_token"] == REDACTED
    assert event["password"] == "hunter2", "the caller's dict is left alone"


def test_secrets_inside_text_are_redacted():
    text = "login password=hunter2 token: abc123 Authorization: Bearer eyJx url=postgres://ops:s3cret@db/x ok"

    cleaned = redact(text)

    for secret in ("hunter2", "abc123", "eyJx", "s3cret"):
        assert secret not in cleaned
    assert cleaned.endswith("url=postgres://ops:***@db/x ok")


def test_a_url_with_a_password_and_no_user_name_is_redacted():
    assert redact("connecting to redis://:s3cret@cache:6379/0") == "connecting to redis://:***@cache:6379/0"


def test_a_heartbeat_ping_url_keeps_its_path_without_its_uuid():
    line = "GET /hooks/heartbeat/0b8e2f4c-7d1a-4e3b-9c5d-2a6f8e1b3c7d/start?rid=1 from http://ops/hooks/heartbeat/abc"

    assert redact(line) == "GET /hooks/heartbeat/***/start?rid=1 from http://ops/hooks/heartbeat/***"


def test_long_messages_are_truncated_with_a_marker():
    event = Truncate(100)(None, "info", {"event": "x" * 250, "short": "ok"})

    assert event["event"] == "x" * 100 + "…[truncated 150 chars]"
    assert event["short"] == "ok"


def test_structlog_and_stdlib_lines_are_json_with_secrets_redacted(log_lines):
    structlog.get_logger("apps.test").warning("login_failed", username="alice", password="hunter2")
    logging.getLogger("django.request").warning("bad request", extra={"headers": {"X-Api-Key": "k"}})

    structlog_line, stdlib_line = [line for line in log_lines() if line["event"] in ("login_failed", "bad request")]
    assert structlog_line["password"] == REDACTED
    assert structlog_line["username"] == "alice"
    assert structlog_line["level"] == "warning"
    assert stdlib_line["headers"] == {"X-Api-Key": REDACTED}
    assert stdlib_line["logger"] == "django.request"


def run_requests(var_dir: str, **env: str) -> list[dict]:
    """Serve one request in a fresh process configured by env; return its JSON log lines."""
    import json

    from tests.services import manage, subprocess_env

    code = (
        "from django.test import Client; "
        "Client(HTTP_HOST='localhost').get('/admin/login/', headers={'X-Request-ID': 'req-12345678'})"
    )
    result = manage("shell", "-c", code, env=subprocess_env(OPSPORTAL_VAR_DIR=var_dir, LOG_FORMAT="json", **env))
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]


def test_a_component_level_quiets_that_component_only(var_dir):
    default = run_requests(var_dir)
    quiet = run_requests(var_dir, LOG_API_LEVEL="WARNING")

    assert any(line["event"] == "request_finished" and line["request_id"] == "req-12345678" for line in default)
    assert not any(line["event"].startswith("request_") for line in quiet)


def test_the_log_file_rotates_at_its_size_keeping_its_backups(var_dir, tmp_path):
    from tests.services import manage, subprocess_env

    (tmp_path / "logs").mkdir()
    log_file = tmp_path / "logs" / "portal.log"
    code = "import logging; [logging.getLogger('apps.x').warning('y' * 4000) for _ in range(800)]"
    env = subprocess_env(
        OPSPORTAL_VAR_DIR=var_dir,
        LOG_FILE=str(log_file),
        LOG_FILE_SIZE_MB="1",
        LOG_BACKUP_COUNT="2",
        LOG_CONSOLE="false",
    )

    assert manage("shell", "-c", code, env=env).returncode == 0

    files = list(log_file.parent.iterdir())
    assert sorted(p.name for p in files) == ["portal.log", "portal.log.1", "portal.log.2"]
    assert all(p.stat().st_size <= 1024 * 1024 + 8192 for p in files)
