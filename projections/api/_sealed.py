"""Encrypted user data in API answers: opened, or answered as erased (410 Gone).

With encryption on, read models hold user data as sealed markers (``events.crypto``).
This ASGI middleware opens them in every JSON answer with the data keys (one lookup
per answer for the scopes it holds), so routes stay unaware of encryption. A route
under ``/executions/{id}`` of an execution whose data key was erased answers
``410 Gone`` (problem ``erased``): the execution's history is gone on request. A
sealed value elsewhere whose key is erased becomes ``{"$erased": scope}``; one that
cannot be opened (its master key is not in the ring) ``{"$undecryptable": reason}``.
Streams (``text/event-stream``) pass through untouched.
"""

from __future__ import annotations

import json
import re
from urllib.parse import unquote

import asyncpg
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.events import SEALED_MARKER
from orchestrator.projections.api._problems import MEDIA_TYPE, TYPE_PREFIX
from orchestrator.projections.datakeys import PostgresDataKeys

_EXECUTION_PATH = re.compile(r"^/executions/([^/]+)")
_NEEDLE = b'"' + SEALED_MARKER.encode() + b'"'


async def open_sealed(body: bytes, data_keys: PostgresDataKeys) -> bytes:
    """``body`` (JSON) with every sealed marker opened; unchanged if it holds none."""
    if _NEEDLE not in body:
        return body
    value = await data_keys.open_markers(json.loads(body))
    return json.dumps(value, separators=(",", ":")).encode()


def _gone(path: str, execution_id: str) -> bytes:
    return json.dumps(
        {
            "type": TYPE_PREFIX + "erased",
            "title": "Gone",
            "status": 410,
            "detail": f"the data of execution {execution_id} was erased on request "
            "(its data key is deleted)",
            "instance": path,
            "execution_id": execution_id,
        }
    ).encode()


class SealedDataMiddleware:
    """See the module docstring; reads the data keys from ``app.state.data_keys``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        keys: PostgresDataKeys | None = None
        if scope["type"] == "http":
            keys = getattr(scope["app"].state, "data_keys", None)
        if keys is None:
            await self.app(scope, receive, send)
            return
        match = _EXECUTION_PATH.match(scope["path"])
        if match is not None and await _erased(keys, unquote(match.group(1))):
            body = _gone(scope["path"], unquote(match.group(1)))
            headers = [
                (b"content-type", MEDIA_TYPE.encode()),
                (b"content-length", b"%d" % len(body)),
            ]
            await send({"type": "http.response.start", "status": 410, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, _Buffer(send, keys))


async def _erased(keys: PostgresDataKeys, execution_id: str) -> bool:
    try:
        return await keys.is_erased(execution_id)
    except asyncpg.UndefinedTableError:  # migrations before 0006: nothing was ever erased
        return False
    except asyncpg.DataError:  # an id PostgreSQL cannot hold (a NUL): the route answers it
        return False


class _Buffer:
    """A ``send`` that holds a JSON answer back until it is complete, then opens it."""

    def __init__(self, send: Send, keys: PostgresDataKeys) -> None:
        self._send = send
        self._keys = keys
        self._start: Message | None = None
        self._chunks: list[bytes] = []

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            kind = dict(message.get("headers", [])).get(b"content-type", b"")
            if kind.startswith(b"application/json"):
                self._start = message
                return
        elif message["type"] == "http.response.body" and self._start is not None:
            self._chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = await open_sealed(b"".join(self._chunks), self._keys)
            start, self._start = self._start, None
            kept = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
            kept.append((b"content-length", b"%d" % len(body)))
            await self._send({**start, "headers": kept})
            await self._send({"type": "http.response.body", "body": body})
            return
        await self._send(message)
