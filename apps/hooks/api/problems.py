"""One error shape for the whole API: RFC 9457 problem details (application/problem+json).

    {"type": "about:blank", "title": "Bad Request", "status": 400,
     "detail": "...", "instance": "/api/v1/alerts/", "errors": [{"field": "state", "message": "..."}]}

Views raise ApiError (or Django's Http404 / PermissionDenied); ninja's own
validation and authentication errors are turned into the same shape here. Bad
input is always a 400 that names the field, never a 422 or a 500. What happens
before a view is chosen is made a problem too (`urls`): an unknown path under
the API is a 404 and a method the path does not take a 405 with Allow, where
ninja and Django would answer in plain text or HTML.
"""

import functools
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import structlog
from asgiref.sync import iscoroutinefunction
from django.core.exceptions import NON_FIELD_ERRORS, ObjectDoesNotExist, PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as ServiceError
from django.db import InterfaceError, OperationalError
from django.db.models import Model, QuerySet
from django.forms import BaseForm
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, HttpResponseNotAllowed
from django.urls import Resolver404, URLPattern, re_path, resolve
from django.views.decorators.csrf import csrf_exempt
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, AuthorizationError, HttpError, ValidationError, ValidationErrorContext
from ninja.openapi.schema import OpenAPISchema
from orjson import dumps

logger = structlog.get_logger(__name__)
CONTENT_TYPE = "application/problem+json"
MAX_ID = 2**63 - 1  # the largest id a row can have (bigint); a larger one is no row's, not a database error
NO_SUCH_OBJECT = "No such object."
PROBLEM_REF = "#/components/schemas/Problem"


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


# What every operation may answer besides its own statuses (503: the database is down): declare
# `response={200: Out, **ERRORS}`, so that the schema lists them (add 404 for a path with an id, 409 and 413
# where the operation can answer them).
ERRORS: dict[int, type[Schema]] = {400: Problem, 401: Problem, 403: Problem, 429: Problem, 503: Problem}
ONE_ERRORS = {**ERRORS, 404: Problem}  # an endpoint of one object, by id


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


class ProblemAPI(NinjaAPI):
    """NinjaAPI whose schema documents error answers with the media type they are sent with.

    ninja documents every response as application/json (its renderer's); a
    problem is application/problem+json, and clients (and schemathesis) hold
    the schema to it.
    """

    def get_openapi_schema(self, *, path_prefix: str | None = None, path_params: dict | None = None) -> OpenAPISchema:
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        for operations in schema["paths"].values():
            for operation in operations.values():
                for answer in operation["responses"].values():
                    content = answer.get("content", {})
                    if set(content) == {self.renderer.media_type} and _is_problem(content[self.renderer.media_type]):
                        answer["content"] = {CONTENT_TYPE: content[self.renderer.media_type]}
        return schema

    def validation_error_from_error_contexts(self, error_contexts: list[ValidationErrorContext]) -> ValidationError:
        """ninja's validation errors, located by the caller's names rather than the view's.

        ninja maps a field of a flattened model (`filters: Query[AlertFilters]`) back to the
        query parameter only for an error on the field itself, not on an item of it
        (("filters", "label", 1)); and a body's errors start with the view's parameter name.
        """
        error = super().validation_error_from_error_contexts(error_contexts)
        names = {
            context.model.__ninja_param_source__: (
                context.model.__ninja_flatten_map_reverse__,
                getattr(context.model, "__read_from_single_attr__", None),
            )
            for context in error_contexts
        }
        for item in error.errors:
            source, *rest = item["loc"]
            flattened, body_parameter = names.get(source, ({}, None))
            item["loc"] = (source, *_callers_location(tuple(rest), flattened, body_parameter))
        return error


def _callers_location(location: tuple, flattened: dict[tuple, tuple], body_parameter: str | None) -> tuple:
    for cut in range(len(location), 0, -1):
        if location[:cut] in flattened:
            return flattened[location[:cut]] + location[cut:]
    if body_parameter is not None and location[:1] == (body_parameter,):
        return location[1:]
    return location


def _is_problem(media: dict[str, Any]) -> bool:
    return media.get("schema", {}).get("$ref") == PROBLEM_REF


def bad_request(field: str, message: str) -> ApiError:
    return ApiError(HTTPStatus.BAD_REQUEST, message, errors=[{"field": field, "message": message}])


def conflict(message: str) -> ApiError:
    return ApiError(HTTPStatus.CONFLICT, message)


def form_invalid(form: BaseForm) -> ApiError:
    """A 400 naming each field a Django form refused (errors of the whole form are the body's)."""
    return _fields(
        {name: [error["message"] for error in errors] for name, errors in form.errors.get_json_data().items()}
    )


def get_or_404(rows: QuerySet, pk: int) -> Model:
    """The row with this id, or a 404 problem (also for an id out of range, which the database would refuse)."""
    if not 0 < pk <= MAX_ID:
        raise ApiError(HTTPStatus.NOT_FOUND, NO_SUCH_OBJECT)
    return rows.get(pk=pk)


def invalid(error: ServiceError) -> ApiError:
    """A service's ValidationError as a 400 naming each field at fault (a non-field error names "body")."""
    return _fields(error.message_dict if hasattr(error, "error_dict") else {NON_FIELD_ERRORS: error.messages})


def _fields(messages: dict[str, list[str]]) -> ApiError:
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
    # ("query" | "body" | "path" | ..., name, ...), as ProblemAPI locates it: the caller's field follows the source.
    return ".".join(str(part) for part in location[1:]) or "body"


def validation_errors(errors: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [
        # pydantic words a validator's own ValueError "Value error, <its message>": the message is enough.
        {
            "field": _field(tuple(error.get("loc", ()))),
            "message": str(error.get("msg", "invalid")).removeprefix("Value error, "),
        }
        for error in errors
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
        return problem_response(request, ApiError(HTTPStatus.NOT_FOUND, NO_SUCH_OBJECT))

    def on_too_big(request: HttpRequest, exc: Exception) -> HttpResponse:
        too_large = ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "The request body is too large.")
        return problem_response(request, too_large)

    def on_database_down(request: HttpRequest, exc: Exception) -> HttpResponse:
        logger.error("api_database_unavailable", path=request.path, error=type(exc).__name__)
        unavailable = ApiError(
            HTTPStatus.SERVICE_UNAVAILABLE, "The database is unavailable; retry later.", headers={"Retry-After": "10"}
        )
        return problem_response(request, unavailable)

    def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
        # ninja wraps what its body parser raised ("Cannot parse request body"): the parser's own words are better.
        cause = exc.__cause__
        return problem_response(request, cause if isinstance(cause, ApiError) else ApiError(exc.status_code, str(exc)))

    api.add_exception_handler(ApiError, on_problem)
    api.add_exception_handler(ValidationError, on_validation)
    api.add_exception_handler(AuthenticationError, on_authentication)
    api.add_exception_handler(AuthorizationError, on_forbidden)
    api.add_exception_handler(PermissionDenied, on_forbidden)
    api.add_exception_handler(Http404, on_not_found)
    api.add_exception_handler(ObjectDoesNotExist, on_not_found)
    api.add_exception_handler(HttpError, on_http_error)
    api.add_exception_handler(RequestDataTooBig, on_too_big)
    api.add_exception_handler(OperationalError, on_database_down)  # down, unreachable, or its connection lost
    api.add_exception_handler(InterfaceError, on_database_down)


# ---------------------------------------------------------------- before a view: unknown paths and methods


def urls(api: NinjaAPI) -> tuple[list[URLPattern], str, str]:
    """`api.urls` for path(prefix, ...), answering problems where ninja and Django would not.

    Each of ninja's views turns its 405 (plain text) and a bare Http404 (its
    root page's) into problems; after them, every other path under the prefix
    is a 404 problem rather than Django's HTML page.
    """
    patterns, app_name, namespace = api.urls
    wrapped = [URLPattern(p.pattern, _answering_problems(p.callback), p.default_args, p.name) for p in patterns]
    return [*wrapped, re_path(r"^", unknown_path, name="unknown-path")], app_name, namespace


@csrf_exempt  # a POST to a mistyped path must get its 404, not the CSRF failure page
def unknown_path(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    detail = f"No API endpoint at {request.path}."
    if not request.path_info.endswith("/") and _is_endpoint(request.path_info + "/"):
        detail += f" Did you mean {request.path}/?"
    return problem_response(request, ApiError(HTTPStatus.NOT_FOUND, detail))


def _is_endpoint(path: str) -> bool:
    try:
        return resolve(path).func is not unknown_path
    except Resolver404:
        return False


def _answering_problems(view: Callable[..., Any]) -> Callable[..., Any]:
    def answer(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if not isinstance(response, HttpResponseNotAllowed):
            return response
        allowed = ", ".join(sorted(method.strip() for method in response["Allow"].split(",")))
        problem = ApiError(
            HTTPStatus.METHOD_NOT_ALLOWED, f"{request.method} is not allowed here; use {allowed}.",
            headers={"Allow": allowed},
        )  # fmt: skip
        return problem_response(request, problem)

    def not_found(request: HttpRequest) -> HttpResponse:
        return problem_response(request, ApiError(HTTPStatus.NOT_FOUND, f"No API endpoint at {request.path}."))

    if iscoroutinefunction(view):

        @functools.wraps(view)
        async def async_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            try:
                return answer(request, await view(request, *args, **kwargs))
            except Http404:
                return not_found(request)

        return async_wrapper

    @functools.wraps(view)  # keeps csrf_exempt: ninja checks CSRF itself, for session callers only
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            return answer(request, view(request, *args, **kwargs))
        except Http404:
            return not_found(request)

    return wrapper
