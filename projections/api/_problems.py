"""Every error the query API answers is RFC 9457 ``application/problem+json``.

One shape for all of them (``type``, ``title``, ``status``, ``detail``, ``instance``,
plus the error's own fields), so a client parses one format: our ``ApiError``\\ s,
FastAPI's parameter validation (422, with ``errors`` naming each parameter),
Starlette's HTTP errors (401 bearer token, 404 route, 405 method) and database
outages (503).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from orchestrator.events import RepeatFilter
from orchestrator.projections.api.errors import ApiError, ReadModelUnavailable

log = logging.getLogger(__name__)
_ANSWERED_503 = RepeatFilter(quiet=60.0)

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:orchestrator-state:problem:"

# Failures of the database, not of the request: answered 503 (retriable), logged once.
UNAVAILABLE: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.QueryCanceledError,
    asyncpg.UndefinedTableError,
)


def problem(
    request: Request,
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    **fields: Any,
) -> JSONResponse:
    """One problem+json response; ``kind`` names the problem, else the status does."""
    phrase = HTTPStatus(status).phrase
    body = {
        "type": TYPE_PREFIX + (kind or phrase.lower().replace(" ", "-")),
        "title": title or phrase,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        **fields,
    }
    return JSONResponse(
        body, status_code=status, media_type=MEDIA_TYPE, headers=dict(headers or {})
    )


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    fields = exc.body()
    detail = fields.pop("detail", str(exc))
    return problem(request, exc.status_code, detail, kind=exc.problem, title=exc.title, **fields)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return problem(request, exc.status_code, str(exc.detail), headers=exc.headers)


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = jsonable_encoder(exc.errors())
    named = ", ".join(
        f"{'.'.join(str(part) for part in e.get('loc', ())[1:])}: {e.get('msg', '')}"
        for e in errors
    )
    return problem(request, 422, f"invalid request: {named}", kind="invalid-request", errors=errors)


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, asyncpg.UndefinedTableError):
        reason = f"read-model tables missing ({exc}); run the migrations"
    else:
        reason = f"database error: {exc!r}"
    # Once per outage, not once per request (the LISTEN connection logs the end).
    probe = logging.LogRecord(log.name, logging.WARNING, "", 0, type(exc).__name__, None, None)
    if _ANSWERED_503.filter(probe):
        log.warning("%s %s: %s (repeats muted for 60 s)", request.method, request.url.path, reason)
    return await _api_error(request, ReadModelUnavailable(reason))


def _documented(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """``app.openapi`` declaring every 4xx/5xx answer as problem+json (``ErrorOut``)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = build()
            for operation in (op for ops in spec["paths"].values() for op in ops.values()):
                for status, response in operation.get("responses", {}).items():
                    if status[0] in "45":
                        response["content"] = {MEDIA_TYPE: {"schema": {"$ref": _ERROR_REF}}}
            spec["components"]["schemas"].pop("HTTPValidationError", None)
            spec["components"]["schemas"].pop("ValidationError", None)
            app.openapi_schema = spec
        return app.openapi_schema

    return openapi


_ERROR_REF = "#/components/schemas/ErrorOut"


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` as problem+json, and document it so."""
    app.openapi = _documented(app)  # type: ignore[method-assign]
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    for error_type in UNAVAILABLE:
        app.add_exception_handler(error_type, _unavailable)
