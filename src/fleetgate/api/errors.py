"""Every error leaves the API as Cumulocity's error body, mapped here and only here.

``{"error": "<domain>/<kind>", "message": "...", "info": "<documentation URL>"}``
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from fleetgate.api import media
from fleetgate.domain.errors import AuthenticationFailed, FleetgateError, ServiceUnavailable

log = logging.getLogger(__name__)

INFO_URL = "https://cumulocity.com/guides/reference/rest-implementation/#error-reporting"

_HTTP_CODES = {
    400: "general/badRequest",
    401: "security/Unauthorized",
    403: "security/Forbidden",
    404: "general/notFound",
    405: "general/methodNotAllowed",
    406: "general/notAcceptable",
    409: "general/conflict",
    413: "general/requestEntityTooLarge",
    415: "general/unsupportedMediaType",
    422: "general/validationError",
    503: "general/serviceUnavailable",
}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": code, "message": message, "info": INFO_URL}
    return JSONResponse(
        body, status_code=status, media_type=f"{media.ERROR};charset=UTF-8", headers=headers
    )


async def _fleetgate_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FleetgateError)
    headers = None
    if isinstance(exc, AuthenticationFailed):
        headers = {"WWW-Authenticate": 'Basic realm="fleetgate"'}
    elif isinstance(exc, ServiceUnavailable):
        headers = {"Retry-After": str(exc.retry_after)}
    return error_response(exc.status, exc.code, exc.message, headers)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "general/httpError")
    return error_response(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', 'invalid')}"
        for err in exc.errors()
    )
    return error_response(422, "general/validationError", problems or "invalid request")


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "general/internalError", "internal server error")


def install(app: FastAPI) -> None:
    app.add_exception_handler(FleetgateError, _fleetgate_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
