"""/healthz, /readyz and /health/ through the whole middleware stack: who may see what, and in which shape."""

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from http import HTTPStatus

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from apps.health import runner, services
from apps.health.checks import Status
from tests.services import free_port, manage, subprocess_env

TOKEN = "health-token-0123456789abcdef"
CHECK_KEYS = {"name", "status", "message", "latency_ms", "details", "checked_at", "since", "alerted"}


@pytest.fixture(autouse=True)
def test_settings(settings) -> None:
    """No costly password hashing for the users these tests create; stored results read on every request."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.HEALTH_REPORT_CACHE_SECONDS = 0


@pytest.fixture
def health_token(settings) -> str:
    settings.HEALTH_TOKEN = TOKEN
    return TOKEN


@pytest.fixture
def viewer_client(staff_user) -> Client:
    """Staff allowed to view check states (the permission /health/ and the overview ask for)."""
    staff_user.user_permissions.add(Permission.objects.get(codename="view_checkstate"))
    client = Client()
    client.force_login(staff_user)
    return client


@pytest.fixture
def stored(scripted, db) -> None:
    """Two checks run and stored by the scheduled run's own service."""
    scripted.add("db", message="SELECT 1 in 2 ms")
    scripted.add("disk", Status.WARNING, "85 % used")
    services.run_and_store()


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A port whose connections the kernel accepts and nobody ever answers (a hung dependency).

    Afterwards, waits until the readiness probes stuck on it have ended, so that no later
    test joins their execution (the runner shares one execution per check name).
    """
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]
    deadline = time.monotonic() + 10
    while any(key.startswith("readiness:") for key in runner.in_flight()) and time.monotonic() < deadline:
        time.sleep(0.05)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---------------------------------------------------------------- /healthz


def test_healthz_answers_200_with_a_tiny_json_body(client):
    response = client.get("/healthz")

    assert response.status_code == HTTPStatus.OK
    assert response.json() == {"status": "ok"}
    assert response["Content-Type"] == "application/json"
    assert "no-store" in response["Cache-Control"]


def test_healthz_runs_no_query_and_loads_no_session_even_with_a_session_cookie(staff_client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = staff_client.get("/healthz")

    assert response.status_code == HTTPStatus.OK
    assert "Set-Cookie" not in response.headers and "Vary" not in response.headers


def test_healthz_needs_no_database_at_all(client):
    """No django_db mark here: pytest-django refuses any database access."""
    assert client.get("/healthz").status_code == HTTPStatus.OK


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_answer_any_host_and_plain_http_while_other_pages_do_not(client, settings, db, path):
    """Load balancers and the kubelet send the pod's IP as Host and probe over HTTP inside the network."""
    settings.ALLOWED_HOSTS = ["ops.example.org"]
    settings.SECURE_SSL_REDIRECT = True

    assert client.get(path, HTTP_HOST="10.1.2.3:8000").status_code == HTTPStatus.OK
    assert client.get("/admin/login/", HTTP_HOST="10.1.2.3:8000").status_code == HTTPStatus.BAD_REQUEST
    assert client.get("/admin/login/", HTTP_HOST="ops.example.org").status_code == HTTPStatus.MOVED_PERMANENTLY


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/health/"])
def test_the_endpoints_only_answer_get_and_head(client, health_token, db, path):
    assert client.post(path, headers=bearer(health_token)).status_code == HTTPStatus.METHOD_NOT_ALLOWED
    assert client.head(path, headers=bearer(health_token)).status_code == HTTPStatus.OK


# ---------------------------------------------------------------- /readyz


def test_readyz_is_200_when_the_database_answers(client, db):
    response = client.get("/readyz")

    assert response.status_code == HTTPStatus.OK
    assert response.json() == {"status": "ready"}


def test_readyz_is_503_naming_redis_when_redis_refuses(client, settings, db):
    port = free_port()
    settings.REDIS_URL = f"redis://:s3cret-password@127.0.0.1:{port}/0"

    started = time.monotonic()
    response = client.get("/readyz")

    assert time.monotonic() - started < settings.HEALTH_READY_TIMEOUT_SECONDS * 1.1
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json() == {"status": "unavailable", "failed": {"redis": "unreachable"}}
    assert str(port) not in response.content.decode() and "s3cret" not in response.content.decode()


def test_readyz_is_503_within_its_timeout_when_redis_hangs(client, settings, db):
    settings.HEALTH_READY_TIMEOUT_SECONDS = 0.5
    with silent_listener() as port:
        settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
        started = time.monotonic()
        response = client.get("/readyz")
        took = time.monotonic() - started

    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json()["failed"] == {"redis": "timed out"}
    assert took < 0.5 * 1.1 + 0.1


def test_readyz_is_503_naming_the_database_when_postgresql_is_unreachable(tmp_path):
    """In a process of its own, configured like production with DATABASE_URL at a closed port."""
    code = (
        "import json; from django.test import Client; r = Client().get('/readyz'); "
        "print(json.dumps([r.status_code, r.json()]))"
    )
    env = subprocess_env(
        DATABASE_URL=f"postgres://opsportal:db-password@127.0.0.1:{free_port()}/opsportal",
        SECRET_KEY="k" * 60,
        OPSPORTAL_VAR_DIR=str(tmp_path),
        HEALTH_READY_TIMEOUT_SECONDS="1",
        LOG_LEVEL="ERROR",
    )
    started = time.monotonic()
    result = manage("shell", "-c", code, env=env)

    assert result.returncode == 0, result.stderr[-2000:]
    status, body = json.loads(result.stdout.strip().splitlines()[-1])
    assert status == HTTPStatus.SERVICE_UNAVAILABLE
    assert body["status"] == "unavailable" and "database" in body["failed"]
    assert "db-password" not in result.stdout
    assert time.monotonic() - started < 30


# ---------------------------------------------------------------- /health/: who may see it


def test_health_without_credentials_is_401_with_a_bearer_challenge(client, db):
    response = client.get("/health/")

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "error" in response.json()


def test_a_browser_without_a_login_is_sent_to_the_login_page(client, db):
    response = client.get("/health/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})

    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == "/admin/login/?next=/health/"


@pytest.mark.parametrize("persona", ["outsider_client", "staff_client"])
def test_users_who_may_not_view_check_states_get_403(request, persona):
    """An outsider is not staff; plain staff lack the health.view_checkstate permission."""
    response = request.getfixturevalue(persona).get("/health/")

    assert response.status_code == HTTPStatus.FORBIDDEN


@pytest.mark.parametrize("persona", ["viewer_client", "admin_client"])
def test_staff_allowed_to_view_check_states_and_superusers_get_the_checks(request, persona, stored):
    response = request.getfixturevalue(persona).get("/health/")

    assert response.status_code == HTTPStatus.OK
    assert response.json()["status"] == "warning"


def test_the_token_opens_health_to_a_machine(client, health_token, stored):
    response = client.get("/health/", headers=bearer(health_token))

    assert response.status_code == HTTPStatus.OK
    assert "Cookie" in response["Vary"] and "Authorization" in response["Vary"]


@pytest.mark.parametrize(
    "authorization", [f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer", f"Basic {TOKEN}", TOKEN, "Bearer  "]
)
def test_a_wrong_token_is_403(client, health_token, db, authorization):
    response = client.get("/health/", headers={"Authorization": authorization})

    assert response.status_code == HTTPStatus.FORBIDDEN


def test_a_token_is_refused_when_none_is_configured(client, settings, db):
    settings.HEALTH_TOKEN = ""

    assert client.get("/health/", headers=bearer("")).status_code == HTTPStatus.FORBIDDEN


def test_a_wrong_token_is_403_even_with_a_staff_session(viewer_client, health_token):
    assert viewer_client.get("/health/", headers=bearer("nope")).status_code == HTTPStatus.FORBIDDEN


def test_the_token_is_never_logged(client, health_token, stored, log_lines):
    client.get("/health/", headers=bearer(health_token))
    client.get("/health/", headers=bearer(health_token + "x"))

    assert TOKEN not in json.dumps(log_lines())


# ---------------------------------------------------------------- /health/: what it says


def test_health_serves_the_stored_results_in_one_shape_without_running_a_check(
    client, health_token, stored, scripted, django_assert_max_num_queries
):
    calls = dict(scripted.calls)

    with django_assert_max_num_queries(1):
        body = client.get("/health/", headers=bearer(health_token)).json()

    assert scripted.calls == calls, "polling /health/ never runs a check"
    assert body["status"] == "warning" and body["fresh"] is False
    assert [check["name"] for check in body["checks"]] == ["db", "disk"]
    assert all(set(check) == CHECK_KEYS for check in body["checks"])
    disk = body["checks"][1]
    assert (disk["status"], disk["message"], disk["alerted"]) == ("warning", "85 % used", False)


def test_heavy_polling_reads_the_stored_results_once_per_cache_period(
    client, health_token, stored, settings, django_assert_num_queries
):
    settings.HEALTH_REPORT_CACHE_SECONDS = 60
    first = client.get("/health/", headers=bearer(health_token)).json()

    with django_assert_num_queries(0):
        again = [client.get("/health/", headers=bearer(health_token)).json() for _ in range(5)]

    assert again == [first] * 5
    with django_assert_num_queries(0):  # a fresh run reads nothing stored (its checks are the test's own)
        assert client.get("/health/?fresh=1", headers=bearer(health_token)).json()["fresh"] is True


def test_with_nothing_stored_the_overall_status_is_unknown(client, health_token, db, only_checks):
    assert client.get("/health/", headers=bearer(health_token)).json() == {
        "status": "unknown",
        "fresh": False,
        "checks": [],
    }


@pytest.mark.parametrize("value", ["1", "true", "yes"])
def test_fresh_runs_the_checks_now_and_stores_nothing(client, health_token, stored, scripted, value):
    scripted.set("disk", Status.CRITICAL, "97 % used")

    body = client.get(f"/health/?fresh={value}", headers=bearer(health_token)).json()

    assert body["status"] == "critical" and body["fresh"] is True
    assert [(c["name"], c["status"], c["message"]) for c in body["checks"]][1] == ("disk", "critical", "97 % used")
    assert services.latest()[1].status == "warning", "a fresh run is not stored"
    assert client.get("/health/?fresh=0", headers=bearer(health_token)).json()["status"] == "warning"


@pytest.mark.parametrize("value", ["banana", "2", "1;DROP", "on off"])
def test_a_malformed_fresh_is_a_clear_400(client, health_token, db, value):
    response = client.get("/health/", {"fresh": value}, headers=bearer(health_token))

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json() == {"error": "fresh must be 1 (run the checks now) or 0"}


def test_a_staff_browser_gets_the_overview_page(viewer_client, stored):
    response = viewer_client.get("/health/", headers={"Accept": "text/html,*/*;q=0.8"})

    assert response.status_code == HTTPStatus.OK
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert 'data-check="disk"' in page and "85 % used" in page and "health-tile health-warning" in page


def test_a_machine_asking_for_anything_gets_json(client, health_token, stored):
    response = client.get("/health/", headers={**bearer(health_token), "Accept": "*/*"})

    assert response["Content-Type"] == "application/json"
