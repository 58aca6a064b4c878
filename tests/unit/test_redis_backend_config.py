"""Where ``backend: "redis"`` finds its server, and what ``dev`` starts for it."""

from __future__ import annotations

from orchestrator._cli.dev import _redis
from orchestrator.app.redis_backend import redis_url
from orchestrator.config import load_config
from orchestrator.config.models import RedisBackend
from orchestrator.devstack import ServiceEndpoints

ENV = ServiceEndpoints(redis_url="redis://env:1", redis_cluster_url="redis://cluster:2")


def test_the_file_url_wins_then_the_environment_then_the_default() -> None:
    assert redis_url(RedisBackend(url="redis://file:3"), ENV) == "redis://file:3"
    assert redis_url(RedisBackend(), ENV) == "redis://env:1"
    assert redis_url(RedisBackend(cluster_mode=True), ENV) == "redis://cluster:2"
    assert redis_url(RedisBackend(), ServiceEndpoints()) == "redis://localhost:6379"


def test_dev_starts_redis_with_the_files_persistence_unless_it_names_a_server() -> None:
    block = (
        'state_management:\n  backend: "redis"\n  config:\n    cluster_mode: true\n'
        "    persistence:\n      aof_enabled: false\n      snapshot_interval: 60\n"
    )
    assert _redis(load_config(block).settings) == {
        "redis": False,
        "redis_cluster": True,
        "redis_appendonly": False,
        "redis_snapshot_interval": 60,
    }
    named = 'state_management:\n  backend: "redis"\n  config:\n    url: "redis://h:1"\n'
    assert _redis(load_config(named).settings) == {}
    assert _redis(load_config("{}").settings) == {}


def test_aof_is_on_by_default() -> None:
    assert RedisBackend().persistence.aof_enabled is True
