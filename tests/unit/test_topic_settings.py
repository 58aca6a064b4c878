"""One computation of every topic's settings (design §7): replication min(3, brokers)
and min.insync.replicas min(2, replication) unless configured; events and DLQs agree
whichever path (the app, `project`, `topics ensure`, `connect`) builds them."""

from __future__ import annotations

import pytest

from orchestrator.app import plan_app
from orchestrator.app.topics import topics_from, weaker_than_default
from orchestrator.config import Settings, load_config
from orchestrator.events.topics import TopicMismatch, TopicSpec, effective_spec


@pytest.mark.parametrize(("brokers", "replication", "min_isr"), [(1, 1, 1), (2, 2, 2), (5, 3, 2)])
def test_defaults_follow_the_cluster(brokers: int, replication: int, min_isr: int) -> None:
    spec = effective_spec(TopicSpec(name="t"), brokers)
    assert (spec.replication_factor, spec.min_insync_replicas) == (replication, min_isr)


def test_declared_settings_win_and_impossible_ones_are_refused() -> None:
    spec = effective_spec(TopicSpec(name="t", replication_factor=2, min_insync_replicas=1), 3)
    assert (spec.replication_factor, spec.min_insync_replicas) == (2, 1)
    with pytest.raises(TopicMismatch, match="replication_factor is 4, expected at most 3"):
        effective_spec(TopicSpec(name="t", replication_factor=4), 3)
    with pytest.raises(TopicMismatch, match=r"min\.insync\.replicas is 3, expected at most 2"):
        effective_spec(TopicSpec(name="t", replication_factor=2, min_insync_replicas=3), 3)


def test_every_topic_and_its_dlq_share_one_durability() -> None:
    topics = topics_from(Settings())
    for spec in topics.specs():
        assert (spec.replication_factor, spec.min_insync_replicas) == (None, None)
    for spec in (topics.pipeline, topics.shared):
        dlq = effective_spec(topics.dlq(spec), 3)
        assert (dlq.replication_factor, dlq.min_insync_replicas) == (3, 2)


def test_the_app_plans_the_topics_the_cli_ensures() -> None:
    settings = load_config(
        "state_management:\n  event_store:\n    partitions: 4\n", environ={}
    ).settings
    plan = plan_app(settings, bootstrap="k:9092", dsn="postgresql://h/db", node_id="n")
    assert plan.topics == topics_from(settings)
    assert plan.topics.pipeline.partitions == 4


def test_weaker_durability_in_a_file_is_reported() -> None:
    text = (
        "distributed:\n  synchronization:\n    replication:\n"
        "      factor: 1\n      min_replicas: 1\n"
    )
    found = weaker_than_default(load_config(text, environ={}).settings)
    assert len(found) == 2 and "factor 1" in found[0] and "min_replicas 1" in found[1]
    assert weaker_than_default(Settings()) == []
