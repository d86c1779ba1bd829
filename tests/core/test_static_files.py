from wsgiref.util import setup_testing_defaults

import pytest

from opsportal.wsgi import application


def wsgi_get(path: str) -> tuple[str, dict, bytes]:
    environ = {"PATH_INFO": path, "HTTP_HOST": "localhost", "SERVER_NAME": "localhost"}
    setup_testing_defaults(environ)
    answer = {}

    def start_response(status: str, headers: list) -> None:
        answer.update(status=status, headers=dict(headers))

    body = b"".join(application(environ, start_response))
    return answer["status"], answer["headers"], body


@pytest.mark.parametrize("path", ["/static/admin/css/base.css", "/static/opsportal/admin.css"])
def test_static_files_are_served_in_front_of_django(path):
    status, headers, body = wsgi_get(path)

    assert status.startswith("200")
    assert headers["Content-Type"].startswith("text/css")
    assert "X-Request-ID" not in headers, "static files never enter the middleware chain"
    assert body


@pytest.mark.django_db
def test_other_paths_reach_django():
    status, headers, _ = wsgi_get("/admin/login/")

    assert status.startswith("200")
    assert "X-Request-ID" in headers


@pytest.mark.django_db
def test_a_missing_static_file_falls_through_to_a_404():
    status, _, _ = wsgi_get("/static/opsportal/nope.css")

    assert status.startswith("404")
