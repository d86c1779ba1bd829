from http import HTTPStatus

import pytest

from apps.hooks import tokens
from apps.hooks.models import ApiToken

pytestmark = pytest.mark.django_db


def test_a_token_is_stored_only_as_its_digest(superuser):
    row, token = tokens.token_create(user=superuser, name="ci", scope="read")
    stored = ApiToken.objects.get(pk=row.pk)
    assert token.startswith("opsp_") and token not in {stored.digest, stored.prefix}
    assert stored.digest == tokens.digest(token)


def test_the_alert_list_answers_a_read_token(read_client):
    response = read_client.get("/api/v1/alerts/", {"state": "firing"})
    assert response.status_code == HTTPStatus.OK
    assert response.json() == {"items": [], "next": None}


def test_without_credentials_the_api_answers_401_as_a_problem(client):
    response = client.get("/api/v1/alerts/")
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == HTTPStatus.UNAUTHORIZED
