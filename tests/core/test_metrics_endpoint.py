import importlib
import ipaddress
from http import HTTPStatus

import pytest
from django.urls import clear_url_caches
from prometheus_client.parser import text_string_to_metric_families

import opsportal.urls


@pytest.fixture
def metrics_token(settings):
    settings.METRICS_TOKEN = "scrape-token-0123456789"
    settings.METRICS_ALLOWED_IPS = [ipaddress.ip_network("127.0.0.1/32")]
    return settings.METRICS_TOKEN


def test_an_allowed_address_may_scrape_without_a_token(client, metrics_token):
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")

    assert response.status_code == HTTPStatus.OK
    assert b"django_http_requests_total_by_method_total" in response.content


@pytest.mark.django_db
def test_in_multiprocess_mode_the_workers_files_are_served_with_the_portals_families(client, monkeypatch, tmp_path):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # as gunicorn.conf.py sets it; no worker wrote yet

    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")

    names = {family.name for family in text_string_to_metric_families(response.content.decode())}
    assert {"opsportal_alerts_firing", "opsportal_audit_events"} <= names
    # Not this process's own registry: its counters, memory and garbage collection are one worker's.
    assert [name for name in names if name.startswith(("django_http_", "process_", "python_"))] == []


def test_the_token_opens_metrics_from_anywhere(client, metrics_token):
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.5", headers={"Authorization": f"Bearer {metrics_token}"})

    assert response.status_code == HTTPStatus.OK


def test_no_token_from_an_unlisted_address_is_401(client, metrics_token):
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.5")

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "authorization", ["Bearer wrong", "Basic c2NyYXBlOnRva2Vu", "Bearer", "scrape-token-0123456789"]
)
def test_a_wrong_token_is_403_even_from_an_allowed_address(client, metrics_token, authorization):
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1", headers={"Authorization": authorization})

    assert response.status_code == HTTPStatus.FORBIDDEN


def test_a_token_is_refused_when_none_is_configured(client, settings):
    settings.METRICS_TOKEN = ""

    response = client.get("/metrics", REMOTE_ADDR="203.0.113.5", headers={"Authorization": "Bearer "})

    assert response.status_code == HTTPStatus.FORBIDDEN


def test_metrics_only_answer_get(client, metrics_token):
    assert client.post("/metrics", REMOTE_ADDR="127.0.0.1").status_code == HTTPStatus.METHOD_NOT_ALLOWED


def test_metrics_are_gone_when_disabled(client, settings):
    settings.PROMETHEUS_ENABLED = False
    importlib.reload(opsportal.urls)
    clear_url_caches()
    try:
        assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == HTTPStatus.NOT_FOUND
    finally:
        settings.PROMETHEUS_ENABLED = True
        importlib.reload(opsportal.urls)
        clear_url_caches()
