"""``bench compare``'s rows: per-round figures reduced to medians, with the advantage."""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

from orchestrator.bench._compare_common import TABLE_PREFIX

if TYPE_CHECKING:
    from orchestrator.bench.compare import CompareOptions

Samples = dict[tuple[str, str], list[dict[str, float]]]

PEERS = {
    "langgraph": "LangGraph AsyncPostgresSaver",
    "dbos": "DBOS",
    "eventsourcing": "eventsourcing (PostgreSQL)",
}


def _tables_mb(sizes: dict[str, float]) -> dict[str, float]:
    """``{table: MB}`` of the ``pg:<table>`` storage figures, largest first."""
    found = {k[len(TABLE_PREFIX) :]: v for k, v in sizes.items() if k.startswith(TABLE_PREFIX)}
    return {k: round(v / 1e6, 3) for k, v in sorted(found.items(), key=lambda kv: -kv[1]) if v}


def _med(samples: Samples, key: tuple[str, str], field: str) -> float | None:
    values = [s[field] for s in samples.get(key, []) if field in s]
    return statistics.median(values) if values else None


def _row(
    workload: str,
    peer: str | None,
    ours: float | None,
    theirs: float | None,
    unit: str,
    *,
    higher_is_better: bool,
    **extra: Any,
) -> dict[str, Any]:
    advantage = None
    if ours is not None and theirs is not None and ours > 0 and theirs > 0:
        advantage = ours / theirs if higher_is_better else theirs / ours
    return {
        "workload": workload,
        "peer": PEERS.get(peer, peer) if peer else None,
        "ours": ours,
        "theirs": theirs,
        "unit": unit,
        "advantage": None if advantage is None else round(advantage, 3),
        **extra,
    }


def _versus(
    samples: Samples,
    label: str,
    peer: str,
    workload: str,
    field: str,
    unit: str,
    *,
    higher_is_better: bool,
    sides: dict[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Ours against ``peer`` on ``label``'s samples: the medians of ``field``.

    Each ``sides`` entry ``name: other_field`` adds ``ours_<name>``/``theirs_<name>``.
    """
    ours, theirs = (label, "ours"), (label, peer)
    side_values = {}
    for name, other in (sides or {}).items():
        side_values[f"ours_{name}"] = _med(samples, ours, other)
        side_values[f"theirs_{name}"] = _med(samples, theirs, other)
    mine, their = _med(samples, ours, field), _med(samples, theirs, field)
    extra = {**side_values, **extra}
    return _row(workload, peer, mine, their, unit, higher_is_better=higher_is_better, **extra)


def _c1_c100(
    samples: Samples, label: str, prefix: str, c1: dict[str, Any], c100: dict[str, Any]
) -> list[dict[str, Any]]:
    """The one-at-a-time p50 row and the 100-at-once throughput row against LangGraph."""
    return [
        _versus(
            samples, label, "langgraph", f"{prefix}_c1_p50", "c1_p50_ms", "ms",
            higher_is_better=False, sides={"p99": "c1_p99_ms"}, **c1,
        ),
        _versus(
            samples, label, "langgraph", f"{prefix}_c100_throughput", "c100_per_s", "saves/s",
            higher_is_better=True, sides={"p50_ms": "c100_p50_ms"}, **c100,
        ),
    ]  # fmt: skip


def rows(samples: Samples, options: CompareOptions) -> list[dict[str, Any]]:
    """One row per workload (and peer); ``ours``/``theirs`` are medians over the rounds."""
    out = _c1_c100(samples, "checkpoint", "checkpoint", {}, {})
    if ("saver", "ours") in samples or ("saver", "langgraph") in samples:
        sizes = {"checkpoint_bytes": options.saver_bytes}
        c1, c100 = {"saves": options.saver_saves}, {"threads": options.saver_threads}
        out += _c1_c100(samples, "saver", "langgraph_saver", c1 | sizes, c100 | sizes)
    out.append(
        _versus(
            samples, "overhead", "dbos", "task_overhead", "per_task_ms", "ms/task",
            higher_is_better=False,
        )
    )  # fmt: skip
    out.append(
        _versus(
            samples, "append", "eventsourcing", "append_throughput", "events_per_s", "events/s",
            higher_is_better=True,
        )
    )  # fmt: skip
    for label, name, events in (
        ("restore_small", "restore_latest_10k", options.restore_small_events),
        ("restore", "restore_latest_100k", options.restore_events),
    ):
        if (label, "ours") in samples:
            out.append(
                _versus(
                    samples, label, "eventsourcing", name, "p50_ms", "ms",
                    higher_is_better=False, sides={"p99": "p99_ms"}, events=events,
                )
            )  # fmt: skip
            # A serving process restores from its decoded-snapshot cache; "cold" decodes
            # the snapshot every time, as eventsourcing reads its snapshot every time.
            cold = _med(samples, (label, "ours"), "cold_p50_ms")
            theirs = _med(samples, (label, "eventsourcing"), "p50_ms")
            out.append(
                _row(
                    f"{name}_cold", "eventsourcing", cold, theirs, "ms",
                    higher_is_better=False, events=events,
                )
            )  # fmt: skip
    for peer in ("langgraph", "dbos"):
        if ("resume", "ours") in samples:
            out.append(
                _versus(
                    samples, "resume", peer, "resume_after_kill", "seconds", "s",
                    higher_is_better=False,
                )
            )  # fmt: skip
    if ("storage", "ours") in samples and ("storage", "langgraph") in samples:
        mine = samples[("storage", "ours")][0]
        peer_sizes = samples[("storage", "langgraph")][0]
        parts = {k: v for k, v in mine.items() if not k.startswith(TABLE_PREFIX)}
        out.append(
            _row(
                "storage_growth",
                "langgraph",
                sum(parts.values()) / 1e6,
                peer_sizes["postgres_bytes"] / 1e6,
                "MB",
                higher_is_better=False,
                steps=options.storage_steps,
                ours_parts_mb={k: round(v / 1e6, 2) for k, v in parts.items()},
                ours_tables_mb=_tables_mb(mine),
                theirs_tables_mb=_tables_mb(peer_sizes),
            )
        )
    if ("fold", "ours") in samples:
        fold = samples[("fold", "ours")][0]
        out.append(
            _row(
                "fold_throughput",
                None,
                fold.get("events_per_s"),
                None,
                "events/s",
                higher_is_better=True,
            )
        )
        out.append(
            _row(
                "append_visible_p99",
                None,
                fold.get("latency_ms_p99"),
                None,
                "ms",
                higher_is_better=False,
                ours_p50=fold.get("latency_ms_p50"),
                rate=options.fold_rate,
            )
        )
    return out
