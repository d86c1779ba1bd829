"""The API's schema and docs page: who may see them, and that the page needs nothing but the portal's own files.

tests/e2e/test_api_docs.py loads the page in a real browser; here, the same
page's assets are fetched through the WSGI application gunicorn serves
(ServeStatic in front of Django), as runportal's ASGI one is in the browser test.
"""

import json
import re
from http import HTTPStatus
from wsgiref.util import setup_testing_defaults

import pytest

from apps.backups.models import Status as BackupStatus
from apps.health.checks import Status as CheckStatus
from apps.hooks.api.problems import CONTENT_TYPE
from apps.hooks.models import Heartbeat
from opsportal.wsgi import application

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]
DOCS = "/api/v1/docs/"


def wsgi_get(path: str) -> tuple[int, dict[str, str], bytes]:
    environ = {"PATH_INFO": path, "HTTP_HOST": "localhost", "SERVER_NAME": "localhost"}
    setup_testing_defaults(environ)
    answer: dict = {}

    def start_response(status: str, headers: list) -> None:
        answer.update(status=int(status.split()[0]), headers=dict(headers))

    body = b"".join(application(environ, start_response))
    return answer["status"], answer["headers"], body


def test_the_schema_is_public(client):
    response = client.get("/api/v1/schema/")

    assert response.status_code == HTTPStatus.OK
    assert response.json()["paths"]


def test_the_schema_documents_every_error_answer_as_a_problem_document(client):
    operations = [op for methods in client.get("/api/v1/schema/").json()["paths"].values() for op in methods.values()]

    errors = [answer for op in operations for status, answer in op["responses"].items() if int(status) >= 400]
    assert errors
    assert all(list(answer["content"]) == [CONTENT_TYPE] for answer in errors)


def test_every_operation_declares_the_errors_it_can_answer(client):
    for path, methods in client.get("/api/v1/schema/").json()["paths"].items():
        for method, operation in methods.items():
            expected = {"400", "401", "403", "429"}
            expected |= {"404"} if "{" in path else set()  # no such object
            expected |= {"413"} if "requestBody" in operation else set()  # over the upload limit
            assert expected <= set(operation["responses"]), f"{method.upper()} {path}"


def test_each_kind_of_status_is_described_by_its_own_values(client):
    # ninja keeps one schema per class name, and these three are all classes called Status.
    schemas = client.get("/api/v1/schema/").json()["components"]["schemas"]

    assert schemas["CheckStatus"]["enum"] == CheckStatus.values
    assert schemas["HeartbeatStatus"]["enum"] == Heartbeat.Status.values
    assert schemas["BackupStatus"]["enum"] == BackupStatus.values
    assert "Status" not in schemas


@pytest.mark.parametrize("who", ["anonymous", "outsider"])
def test_who_is_not_staff_is_sent_to_the_admin_login_from_the_docs_page(who, client, outsider_client):
    response = (client if who == "anonymous" else outsider_client).get(DOCS)

    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == f"/admin/login/?next={DOCS}"


def test_staff_see_the_docs_page_with_no_third_party_address(staff_client):
    response = staff_client.get(DOCS)

    assert response.status_code == HTTPStatus.OK
    page = response.content.decode()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "every asset comes from the portal"
    swagger = json.loads(re.search(r'id="swagger-settings">(.*?)</script>', page, re.DOTALL).group(1))
    assert swagger["url"] == "/api/v1/schema/"
    assert swagger["validatorUrl"] is None, "Swagger UI would send the schema's address to validator.swagger.io"


def test_the_docs_page_assets_are_served_by_the_wsgi_application(staff_client):
    page = staff_client.get(DOCS).content.decode()
    assets = re.findall(r"""(?:src|href)=["'](/static/[^"']+)["']""", page)

    assert {asset.rsplit("/", 1)[-1] for asset in assets} >= {"swagger-ui.css", "swagger-ui-bundle.js"}
    for asset in assets:
        status, headers, body = wsgi_get(asset)
        assert status == HTTPStatus.OK, asset
        assert "X-Request-ID" not in headers, "static files are served in front of Django"
        assert body
