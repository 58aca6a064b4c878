"""``bench compare``'s rows: per-round figures reduced to medians, with the advantage."""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.bench.compare import CompareOptions

Samples = dict[tuple[str, str], list[dict[str, float]]]

PEERS = {
    "langgraph": "LangGraph AsyncPostgresSaver",
    "dbos": "DBOS",
    "eventsourcing": "eventsourcing (PostgreSQL)",
}


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


def rows(samples: Samples, options: CompareOptions) -> list[dict[str, Any]]:
    """One row per workload (and peer); ``ours``/``theirs`` are medians over the rounds."""
    out = []
    for name, field, unit, better in (
        ("checkpoint_c1_p50", "c1_p50_ms", "ms", False),
        ("checkpoint_c100_throughput", "c100_per_s", "saves/s", True),
    ):
        ours = _med(samples, ("checkpoint", "ours"), field)
        theirs = _med(samples, ("checkpoint", "langgraph"), field)
        extra = {}
        if field.endswith("p50_ms"):
            extra = {
                "ours_p99": _med(samples, ("checkpoint", "ours"), "c1_p99_ms"),
                "theirs_p99": _med(samples, ("checkpoint", "langgraph"), "c1_p99_ms"),
            }
        else:
            extra = {
                "ours_p50_ms": _med(samples, ("checkpoint", "ours"), "c100_p50_ms"),
                "theirs_p50_ms": _med(samples, ("checkpoint", "langgraph"), "c100_p50_ms"),
            }
        out.append(_row(name, "langgraph", ours, theirs, unit, higher_is_better=better, **extra))
    out.extend(_saver_rows(samples, options))
    out.append(
        _row(
            "task_overhead",
            "dbos",
            _med(samples, ("overhead", "ours"), "per_task_ms"),
            _med(samples, ("overhead", "dbos"), "per_task_ms"),
            "ms/task",
            higher_is_better=False,
        )
    )
    out.append(
        _row(
            "append_throughput",
            "eventsourcing",
            _med(samples, ("append", "ours"), "events_per_s"),
            _med(samples, ("append", "eventsourcing"), "events_per_s"),
            "events/s",
            higher_is_better=True,
        )
    )
    for label, name, events in (
        ("restore_small", "restore_latest_10k", options.restore_small_events),
        ("restore", "restore_latest_100k", options.restore_events),
    ):
        if (label, "ours") in samples:
            out.append(
                _row(
                    name,
                    "eventsourcing",
                    _med(samples, (label, "ours"), "p50_ms"),
                    _med(samples, (label, "eventsourcing"), "p50_ms"),
                    "ms",
                    higher_is_better=False,
                    ours_p99=_med(samples, (label, "ours"), "p99_ms"),
                    theirs_p99=_med(samples, (label, "eventsourcing"), "p99_ms"),
                    events=events,
                )
            )
    for peer in ("langgraph", "dbos"):
        if ("resume", "ours") in samples:
            out.append(
                _row(
                    "resume_after_kill",
                    peer,
                    _med(samples, ("resume", "ours"), "seconds"),
                    _med(samples, ("resume", peer), "seconds"),
                    "s",
                    higher_is_better=False,
                )
            )
    if ("storage", "ours") in samples and ("storage", "langgraph") in samples:
        mine = samples[("storage", "ours")][0]
        peer_sizes = samples[("storage", "langgraph")][0]
        total = sum(mine.values())
        out.append(
            _row(
                "storage_growth",
                "langgraph",
                total / 1e6,
                peer_sizes["postgres_bytes"] / 1e6,
                "MB",
                higher_is_better=False,
                steps=options.storage_steps,
                ours_parts_mb={k: round(v / 1e6, 2) for k, v in mine.items()},
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


def _saver_rows(samples: Samples, options: CompareOptions) -> list[dict[str, Any]]:
    """``AsyncKafkaSaver.aput`` against ``AsyncPostgresSaver.aput``, when measured."""
    ours, theirs = ("saver", "ours"), ("saver", "langgraph")
    if ours not in samples and theirs not in samples:
        return []
    sizes = {"checkpoint_bytes": options.saver_bytes}
    return [
        _row(
            "langgraph_saver_c1_p50",
            "langgraph",
            _med(samples, ours, "c1_p50_ms"),
            _med(samples, theirs, "c1_p50_ms"),
            "ms",
            higher_is_better=False,
            ours_p99=_med(samples, ours, "c1_p99_ms"),
            theirs_p99=_med(samples, theirs, "c1_p99_ms"),
            saves=options.saver_saves,
            **sizes,
        ),
        _row(
            "langgraph_saver_c100_throughput",
            "langgraph",
            _med(samples, ours, "c100_per_s"),
            _med(samples, theirs, "c100_per_s"),
            "saves/s",
            higher_is_better=True,
            ours_p50_ms=_med(samples, ours, "c100_p50_ms"),
            theirs_p50_ms=_med(samples, theirs, "c100_p50_ms"),
            threads=options.saver_threads,
            **sizes,
        ),
    ]
