"""A fixture that starts a server of its own for the tests and stops it after.

``own_s3 = server_fixture(S3Server, "A SeaweedFS S3 of this test's own (killable).")``
declares the fixture ``own_s3``: it enters ``S3Server()`` (``async with``: started,
then stopped and its files removed) and yields the running server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, TypeVar

import pytest

T = TypeVar("T")


def server_fixture(
    start: Callable[[], AbstractAsyncContextManager[T]],
    doc: str,
    *,
    scope: Literal["function", "session"] = "function",
) -> Any:
    """The fixture (name: the module attribute it is assigned to) yielding ``start()``'s
    running server."""

    async def fixture() -> AsyncIterator[T]:
        async with start() as server:
            yield server

    fixture.__doc__ = doc
    return pytest.fixture(scope=scope)(fixture)
