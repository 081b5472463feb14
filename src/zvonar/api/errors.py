"""Translation of domain errors to HTTP: the only place that picks status codes.

Every error response has one shape, ``{"error": {"code", "message", "details"}}``, and ``code`` is
stable: integrators switch on it, never on the message.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from zvonar.core import errors as E

log = logging.getLogger(__name__)

STATUS: dict[type[E.ZvonarError], int] = {
    E.NotFound: 404,
    E.Conflict: 409,
    E.InvalidInput: 422,
    E.Unauthenticated: 401,
    E.PermissionDenied: 403,
    E.LimitExceeded: 429,
    E.Unavailable: 503,
}

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "permission_denied",
    404: "route_not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
}


# What FastAPI raises (HTTPException 400) when decoding a JSON body fails other than by syntax.
_FASTAPI_BODY_ERROR = "There was an error parsing the body"


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return {"error": body}


def status_for(exc: E.ZvonarError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def _jsonable_errors(errors: Any) -> list[dict[str, Any]]:
    out = []
    for err in errors:
        out.append(
            {
                "loc": [str(p) for p in err.get("loc", ())],
                "type": str(err.get("type", "")),
                "msg": str(err.get("msg", "")),
            }
        )
    return out


def install(app: FastAPI) -> None:
    @app.exception_handler(E.ZvonarError)
    async def _domain(_req: Request, exc: E.ZvonarError) -> JSONResponse:
        headers: dict[str, str] | None = None
        if isinstance(exc, E.Unauthenticated):
            headers = {"WWW-Authenticate": "Bearer"}
        elif isinstance(exc, E.LimitExceeded) and isinstance(exc.details.get("retry_after"), int):
            headers = {"Retry-After": str(exc.details["retry_after"])}  # RFC 6585 §4
        return JSONResponse(
            error_body(exc.code, exc.message, exc.details or None),
            status_code=status_for(exc),
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _jsonable_errors(exc.errors())
        if any(e["type"] == "json_invalid" for e in errors):
            return JSONResponse(
                error_body("malformed_json", "request body is not valid JSON", errors),
                status_code=400,
            )
        return JSONResponse(
            error_body("validation_error", "request does not match the schema", errors),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == _FASTAPI_BODY_ERROR:
            # Valid JSON syntax the decoder still refused (invalid UTF-8, an integer of
            # thousands of digits): to the client it is the same malformed body.
            return JSONResponse(
                error_body("malformed_json", "request body is not valid JSON"), status_code=400
            )
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return JSONResponse(
            error_body(code, str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(_req: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(error_body("internal_error", "internal error"), status_code=500)
