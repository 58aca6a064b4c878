"""An OpenTelemetry SDK provider installed for one test (unit and integration tests)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.util._once import Once


@contextlib.contextmanager
def installed(provider: TracerProvider) -> Iterator[None]:
    """``provider`` as the global tracer provider for a test, the previous one after
    (the API allows setting it once per process; the test resets that guard)."""
    old, once = trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace.set_tracer_provider(provider)
    try:
        yield
    finally:
        provider.shutdown()
        trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE = old, once
