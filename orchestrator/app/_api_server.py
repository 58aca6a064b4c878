"""The query API served inside an App's process.

Its own module, imported only when an App serves the API: FastAPI, its models and
uvicorn cost ~1 s of every process start (a worker resuming a killed run waits for
them before its next task) and most processes never serve the API.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import uvicorn
from pydantic import SecretStr

from orchestrator.app.plan import AppPlan
from orchestrator.projections import (
    ApiSettings,
    HistoryStateSource,
    create_app,
    set_state_source,
)


class EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the app's owner handles Ctrl-C."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def api_server(
    plan: AppPlan, *, redis_store: Any, pool: Any, bases: Any, host: str, port: int
) -> EmbeddedServer:
    """The API of ``plan``'s read model on ``pool`` (and ``redis_store`` when the Redis
    read side runs), its timeline states from ``bases`` (snapshots) when given."""
    api = ApiSettings(
        database_url=SecretStr(plan.dsn),
        tables=plan.projection.tables,
        projection=plan.projection.name,
    )
    served = create_app(api, redis=redis_store, pool=pool)  # the process's one pool
    if bases is not None:
        set_state_source(served, HistoryStateSource(api.tables, lambda _pool: bases))
    config = uvicorn.Config(
        served,
        host=host,
        port=port,
        log_config=None,
        log_level="warning",
        timeout_graceful_shutdown=2,
    )
    return EmbeddedServer(config)
