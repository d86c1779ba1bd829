"""schemathesis against the live OpenAPI schema: every operation, through the WSGI application gunicorn serves.

The schema is read from /api/v1/schema/ at collection, so an operation added
to any router is tested without touching this file. Each operation gets
requests generated from its parameters and bodies, valid and invalid, sent
with a superuser's write token; every answer must be no 5xx, have a documented
status code and content type, and a body that matches the documented schema
(all of schemathesis's checks, including: invalid input refused with a
documented 4xx, valid input accepted, no answer without credentials; valid
input may be refused only by the rules CONFIG lists, which no schema can state).

Derandomized with few examples per operation, so that CI stays fast and a
failure reproduces; tests/hooks/test_<resource>.py pin the behaviour itself.
"""

from http import HTTPStatus

import hypothesis
import pytest
import schemathesis
from django.test import override_settings
from hypothesis import HealthCheck, Phase
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from apps.alerts.services import alert_acknowledge, alert_fire, alert_resolve
from apps.hooks import tokens
from apps.hooks.models import Scope
from opsportal.wsgi import application

BEYOND_THE_SCHEMA = {"checks": {"positive_data_acceptance": {"enabled": False}}}
CONFIG = {
    # No NUL characters in generated strings: the API refuses them in every field (apps/hooks/inbound.py parse_json, as
    # its description says), which tests/hooks/test_api_input.py checks.
    "generation": {"allow-x00": False, "with-security-parameters": False},
    # Its probes (no credentials, wrong ones) would follow every accepted example: once per operation is enough,
    # and the test below sends them to every operation, whatever the example's fate.
    "checks": {"ignored_auth": {"enabled": False}},
    # Rules between fields, or about what a value names, that JSON Schema cannot state: a request the schema allows
    # may still be a 400 here, so "schema-valid request rejected" is not a finding for these operations only. Each
    # rule has its 400 pinned in tests/hooks/test_<resource>.py; everything else is checked as for any operation.
    "operations": [
        # ends_at after starts_at; repeat_until after starts_at and only with a repeat; a repeating window shorter
        # than its period; a =~ or !~ regular expression that compiles (test_api_silences.py).
        {"include-name": "POST /api/v1/silences/", **BEYOND_THE_SCHEMA},
        # every name is a check that exists (health targets are rows: data, not schema) (test_api_health.py).
        {"include-name": "POST /api/v1/health/run/", **BEYOND_THE_SCHEMA},
        # end after start, and at most the longest metrics retention later (test_api_metrics.py).
        {"include-name": "GET /api/v1/metrics/series/range/", **BEYOND_THE_SCHEMA},
        # exactly one of period_seconds and cron; a cron expression that fires; a time zone name
        # (test_heartbeats_api.py).
        {"include-name": "POST /api/v1/heartbeats/", **BEYOND_THE_SCHEMA},
    ],
}
# Read at collection, before tests/conftest.py's session fixture turns the process's background threads off:
# this first request through the middleware must not start the metrics reporter either.
with override_settings(METRICS_REPORT_IN_BACKGROUND=False, AUDIT_SEAL_IN_BACKGROUND=False):
    schema = schemathesis.openapi.from_wsgi(
        "/api/v1/schema/", application, config=schemathesis.Config.from_dict(CONFIG)
    )

# transaction=True: the WSGI handler closes the database connection after each request, as in production,
# which a test wrapped in one transaction cannot survive; each request commits for real instead.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_passwords")]
QUICK = {
    "derandomize": True,  # the same requests every run: a failure reproduces, CI does not flake
    "database": None,
    "deadline": None,  # a busy CI machine is not a failure
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
}
CONFORMS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
READ_METHODS = {"GET", "HEAD", "OPTIONS"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def alerts(superuser) -> None:
    """Alerts in each state, with labels and values of several kinds, so that lists have rows to answer with."""
    alert_fire(source="schemathesis", key="cpu", severity="critical", summary="CPU hot", labels={"team": "web"},
               value=97.5)  # fmt: skip
    disk = alert_fire(source="schemathesis", key="disk", severity="warning", summary="Disk filling",
                      labels={"team": "db", "host": "db-1"}, value={"used": 0.93, "mount": "/"})  # fmt: skip
    alert_acknowledge(disk, actor=superuser, comment="on it")
    alert_fire(source="probe", key="web", severity="error", summary="Down", description="HTTP 502")
    alert_resolve(source="probe", key="web", actor=superuser)
    alert_fire(source="cron", key="backup", severity="info", summary="Backup late", value=None)


@pytest.fixture
def write_token(superuser, make_token, settings) -> str:
    # Hundreds of requests a minute from one token: the rate limit (tested on its own) would turn some into 429s.
    settings.API_RATE_LIMIT_PER_MINUTE = 0
    return make_token(superuser, Scope.WRITE)


@schema.parametrize()
@hypothesis.settings(max_examples=10, **QUICK)
def test_every_operation_answers_as_its_schema_says(case, alerts, write_token):
    """Schemathesis's examples, its coverage cases (each parameter's bounds, wrong types, missing ones) and 10
    random requests, valid and invalid, per operation: every check it has."""
    case.call_and_validate(headers=bearer(write_token))


@schema.parametrize()
@hypothesis.settings(max_examples=1, phases=[Phase.generate], **QUICK)
def test_every_operation_refuses_a_caller_without_the_right_credentials(case, superuser, make_token):
    revoked, revoked_token = tokens.token_create(user=superuser, name="revoked", scope=Scope.WRITE)
    tokens.token_revoke(revoked)
    refused = {
        "no credentials": ({}, HTTPStatus.UNAUTHORIZED),
        "an unknown token": (bearer("opsp_" + "x" * 43), HTTPStatus.UNAUTHORIZED),
        "a revoked token": (bearer(revoked_token), HTTPStatus.UNAUTHORIZED),
    }
    if case.method.upper() not in READ_METHODS:
        refused["a read token"] = (bearer(make_token(superuser, Scope.READ)), HTTPStatus.FORBIDDEN)
    for who, (headers, status) in refused.items():
        response = case.call_and_validate(headers=headers, checks=CONFORMS)
        assert response.status_code == status, f"{case.method} {case.path} with {who}: {response.status_code}"
