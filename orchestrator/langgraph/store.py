"""``AsyncKafkaStore``: LangGraph's long-term memory on this product's shared state.

Each LangGraph namespace (a tuple of labels) is one shared-state namespace,
``langgraph.store:<JSON array of the labels>``, and each key one shared variable in
it: a put is ``SharedVariableSet``, a delete ``SharedVariableDeleted``, each written
with the namespace's lease and versioned (``commands.shared``), so every change is an
event with its author and time. Reads query the ``shared_variables`` read model after
waiting for this process's own writes. The stored value is ``{"value", "created_at",
"expires_at"}``; an item whose ``expires_at`` has passed is not returned (TTL in
minutes, as LangGraph counts it). Search filters use LangGraph's own matching rules;
semantic search (an ``index``) is not supported.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
)
from langgraph.store.memory import _compare_values, _does_match  # LangGraph's own rules

from orchestrator.commands import DeleteVariable, SetVariable
from orchestrator.projections import ReadModelQueries
from orchestrator.state import StateRuntime, open_any

PREFIX = "langgraph.store:"


def shared_namespace(namespace: tuple[str, ...]) -> str:
    """The shared-state namespace of a LangGraph namespace."""
    return PREFIX + json.dumps(list(namespace), ensure_ascii=False)


def _labels(shared: str) -> tuple[str, ...]:
    return tuple(json.loads(shared.removeprefix(PREFIX)))


class AsyncKafkaStore(BaseStore):
    """A LangGraph ``BaseStore`` on a started :class:`StateRuntime` (e.g. the one of an
    ``AsyncKafkaSaver``: ``AsyncKafkaStore(saver.runtime)``)."""

    supports_ttl = True

    def __init__(self, runtime: StateRuntime, *, ttl: TTLConfig | None = None) -> None:
        self.rt = runtime
        self.ttl_config = ttl
        self._queries = ReadModelQueries(
            runtime.postgres("the LangGraph store"), runtime.read_model.settings
        )

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        raise NotImplementedError("AsyncKafkaStore is asynchronous: use abatch / aget / aput")

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        results: list[Result] = []
        for op in ops:
            if isinstance(op, PutOp):
                await self._put(op)
                results.append(None)
                continue
            await self.rt.wait_for(self.rt.written())
            if isinstance(op, GetOp):
                rows = await self._rows(exact=shared_namespace(op.namespace), key=op.key)
                results.append(rows[0] if rows else None)
            elif isinstance(op, SearchOp):
                results.append(await self._search(op))
            elif isinstance(op, ListNamespacesOp):
                results.append(await self._namespaces(op))
            else:
                raise TypeError(f"unknown store operation {op!r}")
        return results

    # --- writing -----------------------------------------------------------------------

    async def _put(self, op: PutOp) -> None:
        ns = shared_namespace(op.namespace)
        if op.value is None:
            current = await self._rows(exact=ns, key=op.key)
            if current:
                self.rt.record([await self.rt.shared.execute(DeleteVariable(ns, op.key))])
            return
        if op.index not in (None, False):
            raise NotImplementedError("AsyncKafkaStore has no vector index: put without index")
        now = datetime.now(UTC)
        previous = await self._rows(exact=ns, key=op.key, include_expired=True)
        ttl = op.ttl
        if ttl is None and self.ttl_config is not None:
            ttl = self.ttl_config.get("default_ttl")
        value = {
            "value": dict(op.value),
            "created_at": (previous[0].created_at if previous else now).isoformat(),
            "expires_at": None if ttl is None else (now + timedelta(minutes=ttl)).isoformat(),
        }
        self.rt.record([await self.rt.shared.execute(SetVariable(ns, op.key, value))])

    # --- reading -----------------------------------------------------------------------

    async def _rows(
        self,
        *,
        exact: str | None = None,
        prefix: str | None = None,
        key: str | None = None,
        include_expired: bool = False,
    ) -> list[Item]:
        rows = await self._queries.variables(prefix or PREFIX, namespace=exact, name=key)
        now = datetime.now(UTC)
        items: list[Item] = []
        for r in rows:
            stored = json.loads(r["value"])
            stored = await open_any(stored, self.rt.blob_store, self.rt.data_keys)
            expires = stored.get("expires_at")
            if not include_expired and expires and datetime.fromisoformat(expires) <= now:
                continue
            items.append(
                Item(
                    value=stored["value"],
                    key=r["name"],
                    namespace=_labels(r["namespace"]),
                    created_at=datetime.fromisoformat(stored["created_at"]),
                    updated_at=r["updated_at"],
                )
            )
        return items

    async def _search(self, op: SearchOp) -> list[SearchItem]:
        if op.query:
            raise NotImplementedError("AsyncKafkaStore has no vector index: search by filter")
        prefix = PREFIX
        if op.namespace_prefix:  # the open array: the namespace and everything below it
            prefix = shared_namespace(op.namespace_prefix)[:-1]
        items = [
            i
            for i in await self._rows(prefix=prefix)
            if i.namespace[: len(op.namespace_prefix)] == op.namespace_prefix
            and all(_compare_values(i.value.get(k), v) for k, v in (op.filter or {}).items())
        ]
        items.sort(key=lambda i: i.updated_at, reverse=True)
        return [
            SearchItem(i.namespace, i.key, i.value, i.created_at, i.updated_at)
            for i in items[op.offset : op.offset + op.limit]
        ]

    async def _namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        found = {i.namespace for i in await self._rows()}
        if op.match_conditions:
            found = {n for n in found if all(_does_match(c, n) for c in op.match_conditions)}
        if op.max_depth is not None:
            found = {n[: op.max_depth] for n in found}
        return sorted(found)[op.offset : op.offset + op.limit]
