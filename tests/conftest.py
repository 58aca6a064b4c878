"""Shared pytest setup for tests/unit and tests/integration.

Kept light on purpose: unit runs must not import or start any server. The
service fixtures (kafka, postgres, s3, services, topic, make_topic) live in
tests/integration/conftest.py.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "requires_idempotence: needs idempotent and transactional producers "
        "(skipped on brokers without them, e.g. Tansu)",
    )
