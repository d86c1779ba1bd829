"""One error shape for the whole API: RFC 9457 problem details (application/problem+json).

    {"type": "about:blank", "title": "Bad Request", "status": 400,
     "detail": "...", "instance": "/api/v1/alerts/", "errors": [{"field": "state", "message": "..."}]}

Views raise ApiError (or Django's Http404 / PermissionDenied); ninja's own
validation and authentication errors are turned into the same shape here. Bad
input is always a 400 that names the field, never a 422 or a 500.
"""

from http import HTTPStatus
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ObjectDoesNotExist, PermissionDenied
from django.core.exceptions import ValidationError as ServiceError
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, AuthorizationError, HttpError, ValidationError
from orjson import dumps

CONTENT_TYPE = "application/problem+json"


class FieldError(Schema):
    field: str
    message: str


class Problem(Schema):
    type: str = "about:blank"
    title: str
    status: int
    detail: str = ""
    instance: str = ""
    errors: list[FieldError] = []


class ApiError(Exception):
    """An error answer: status, a human detail, optionally the fields at fault and extra headers."""

    def __init__(
        self,
        status: int,
        detail: str = "",
        *,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.detail = int(status), detail
        self.errors, self.headers = errors or [], headers or {}


def bad_request(field: str, message: str) -> ApiError:
    return ApiError(HTTPStatus.BAD_REQUEST, message, errors=[{"field": field, "message": message}])


def invalid(error: ServiceError) -> ApiError:
    """A service's ValidationError as a 400 naming each field at fault (a non-field error names "body")."""
    messages = error.message_dict if hasattr(error, "error_dict") else {"body": error.messages}
    errors = [
        {"field": "body" if field == NON_FIELD_ERRORS else field, "message": message}
        for field, texts in messages.items()
        for message in texts
    ]
    detail = "; ".join(f"{item['field']}: {item['message']}" for item in errors[:5])
    return ApiError(HTTPStatus.BAD_REQUEST, detail, errors=errors)


def problem_response(request: HttpRequest, problem: ApiError) -> HttpResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(problem.status).phrase,
        "status": problem.status,
        "detail": problem.detail,
        "instance": request.path,
        "errors": problem.errors,
    }
    response = HttpResponse(dumps(body), status=problem.status, content_type=CONTENT_TYPE)
    for name, value in problem.headers.items():
        response[name] = value
    return response


def _field(location: tuple) -> str:
    # ninja's loc is ("query" | "body" | "path", "payload"?, name, ...): the caller's field is what follows.
    parts = [str(part) for part in location if part not in ("query", "body", "path", "header", "payload")]
    return ".".join(parts) or "body"


def validation_errors(errors: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [
        {"field": _field(tuple(error.get("loc", ()))), "message": str(error.get("msg", "invalid"))} for error in errors
    ]


def install(api: NinjaAPI) -> None:
    """Register the handlers that turn every error into a problem."""

    def on_problem(request: HttpRequest, exc: ApiError) -> HttpResponse:
        return problem_response(request, exc)

    def on_validation(request: HttpRequest, exc: ValidationError) -> HttpResponse:
        errors = validation_errors(exc.errors)
        detail = "; ".join(f"{error['field']}: {error['message']}" for error in errors[:5])
        return problem_response(request, ApiError(HTTPStatus.BAD_REQUEST, detail, errors=errors))

    def on_authentication(request: HttpRequest, exc: Exception) -> HttpResponse:
        problem = ApiError(
            HTTPStatus.UNAUTHORIZED,
            "A valid API token (Authorization: Bearer ...) or a staff session is required.",
            headers={"WWW-Authenticate": 'Bearer realm="api"'},
        )
        return problem_response(request, problem)

    def on_forbidden(request: HttpRequest, exc: Exception) -> HttpResponse:
        return problem_response(request, ApiError(HTTPStatus.FORBIDDEN, str(exc) or "Not allowed."))

    def on_not_found(request: HttpRequest, exc: Exception) -> HttpResponse:
        return problem_response(request, ApiError(HTTPStatus.NOT_FOUND, "No such object."))

    def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
        return problem_response(request, ApiError(exc.status_code, str(exc)))

    api.add_exception_handler(ApiError, on_problem)
    api.add_exception_handler(ValidationError, on_validation)
    api.add_exception_handler(AuthenticationError, on_authentication)
    api.add_exception_handler(AuthorizationError, on_forbidden)
    api.add_exception_handler(PermissionDenied, on_forbidden)
    api.add_exception_handler(Http404, on_not_found)
    api.add_exception_handler(ObjectDoesNotExist, on_not_found)
    api.add_exception_handler(HttpError, on_http_error)
