"""Errors of the API client: the server's RFC 9457 problem, typed by status.

OrchestratorStateError
└── ApiClientError              status, problem type, detail, the whole problem body
    ├── InvalidRequest          400/422: a parameter the server refused (``errors``)
    ├── Unauthorized            401: missing or wrong bearer token
    ├── NotFound                404: no such execution (or route)
    ├── ReadModelBehind         504: ``position`` not applied within ``wait_ms`` (retriable)
    ├── Unavailable             503: the read model's database is down (retriable)
    └── ApiConnectionError      the API could not be reached at all (retriable)
"""

from __future__ import annotations

from typing import Any

import httpx

from orchestrator.events import OrchestratorStateError


class ApiClientError(OrchestratorStateError):
    """The API answered an error; ``detail`` is the server's message."""

    def __init__(self, status: int, detail: str, problem: dict[str, Any] | None = None) -> None:
        self.status = status
        self.detail = detail
        self.problem: dict[str, Any] = problem or {}
        self.type: str | None = self.problem.get("type")
        super().__init__(f"{status}: {detail}")


class InvalidRequest(ApiClientError):
    """A parameter the server refused; ``problem["errors"]`` names each."""


class Unauthorized(ApiClientError):
    """Missing or wrong bearer token: pass ``token=`` (ORCHESTRATOR_API_TOKEN)."""


class NotFound(ApiClientError):
    """No such execution (it may not be applied yet: pass ``position``)."""


class ReadModelBehind(ApiClientError):
    """The read model did not reach ``position`` within ``wait_ms``; retry later."""

    retriable = True


class Unavailable(ApiClientError):
    """The read model's database is unavailable; retry later."""

    retriable = True


class ApiConnectionError(ApiClientError):
    """The API did not answer (refused, timed out)."""

    retriable = True

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(0, f"query API at {url} unreachable: {reason}")


_BY_STATUS: dict[int, type[ApiClientError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    404: NotFound,
    422: InvalidRequest,
    503: Unavailable,
    504: ReadModelBehind,
}


def error_from(response: httpx.Response) -> ApiClientError:
    """The typed error for a failed response, carrying its problem+json body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    problem: dict[str, Any] = body if isinstance(body, dict) else {}
    detail = str(problem.get("detail") or response.text or response.reason_phrase)
    kind = _BY_STATUS.get(response.status_code, ApiClientError)
    return kind(response.status_code, detail, problem)
