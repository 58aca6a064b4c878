"""OpenTelemetry traces across the event log: off by default, one cheap check when off.

The library uses only ``opentelemetry-api``; with no SDK configured its tracer is a
no-op and :func:`enabled` is False, so the hot paths (append, fold) skip every span
and header. A process turns tracing on by configuring an SDK ``TracerProvider``
itself, or by the standard environment (``OTEL_TRACES_EXPORTER=console|otlp`` or
``OTEL_EXPORTER_OTLP_ENDPOINT``): the entry points call :func:`configure_from_env`.

The writer's context travels in each record's W3C ``traceparent`` header, so the
processor's spans join the trace of the append that wrote the record.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

logger = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
_PROPAGATOR = TraceContextTextMapPropagator()
_OFF = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
_NO_SPAN: contextlib.nullcontext[None] = contextlib.nullcontext()


_tracer: tuple[object, trace.Tracer] | None = None
_UNKNOWN = object()


def enabled() -> bool:
    """Whether an SDK tracer provider is installed (the one check the hot paths make).

    Reads the API's global directly (~50 ns); ``get_tracer_provider()`` looks up the
    environment on every call while none is set (~1-4 µs)."""
    provider = getattr(trace, "_TRACER_PROVIDER", _UNKNOWN)
    if provider is _UNKNOWN:  # an API version without that global: the public way
        provider = trace.get_tracer_provider()
    return provider is not None and not isinstance(provider, _OFF)


def tracer() -> trace.Tracer:
    """This library's tracer from the provider installed now (cached per provider, so a
    provider replaced later, as tests do, is followed)."""
    global _tracer
    provider = trace.get_tracer_provider()
    if _tracer is None or _tracer[0] is not provider:
        _tracer = (provider, provider.get_tracer("orchestrator-state"))
    return _tracer[1]


@contextlib.contextmanager
def _span(name: str, parent: Any, attributes: dict[str, Any]) -> Iterator[trace.Span]:
    with tracer().start_as_current_span(name, context=parent, attributes=attributes) as span:
        yield span


def span(
    name: str, *, parent: otel_context.Context | None = None, **attributes: Any
) -> contextlib.AbstractContextManager[trace.Span | None]:
    """A current span named ``name`` (``None`` attributes dropped); a shared no-op when off."""
    if not enabled():
        return _NO_SPAN
    attrs = {k: v for k, v in attributes.items() if v is not None}
    return _span(name, parent, attrs)


def headers() -> list[tuple[str, bytes]] | None:
    """The current context as Kafka record headers (``traceparent``, ``tracestate``);
    ``None`` without a valid current span (tracing off, or no span open)."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return [(k, v.encode()) for k, v in carrier.items()] or None


def traceparent_of(record_headers: Sequence[tuple[str, bytes]]) -> str | None:
    """The ``traceparent`` header of a record, if any (undecodable bytes: none)."""
    for key, value in record_headers:
        if key == TRACEPARENT:
            try:
                return value.decode("ascii")
            except UnicodeDecodeError:
                return None
    return None


def context_of(traceparent: str | None, tracestate: str | None = None) -> otel_context.Context:
    """The remote context a ``traceparent`` names (an empty context if it names none)."""
    carrier = {} if traceparent is None else {TRACEPARENT: traceparent}
    if tracestate:
        carrier["tracestate"] = tracestate
    return _PROPAGATOR.extract(carrier)


def current_traceparent() -> str | None:
    """The current span's ``traceparent`` text, if there is a valid span."""
    found = headers()
    return None if found is None else dict(found)[TRACEPARENT].decode()


def configure_from_env() -> bool:
    """Install an SDK tracer provider as the standard OTel environment asks; True if on.

    Acts only when ``OTEL_TRACES_EXPORTER`` (or an OTLP endpoint) is set and no
    provider is installed yet; a missing package is one WARNING, never an error.
    Resource and sampler come from the SDK's own variables (``OTEL_SERVICE_NAME``,
    ``OTEL_TRACES_SAMPLER``...).
    """
    names = os.environ.get("OTEL_TRACES_EXPORTER", "").strip()
    if not names and (
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    ):
        names = "otlp"
    if not names or names == "none":
        return False
    if enabled():
        return True
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        logger.warning(
            "OTEL_TRACES_EXPORTER=%s is set but opentelemetry-sdk is not installed: tracing "
            "stays off (pip install 'orchestrator-state[otel]')",
            names,
        )
        return False
    provider = TracerProvider()
    added = 0
    for name in (n.strip() for n in names.split(",")):
        exporter = _exporter(name)
        if exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(exporter))
            added += 1
    if not added:
        return False
    trace.set_tracer_provider(provider)
    return True


def _exporter(name: str) -> Any:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name != "otlp":
        logger.warning("OTEL_TRACES_EXPORTER: unknown exporter %r ignored", name)
        return None
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    modules = ["grpc", "http"] if protocol == "grpc" else ["http", "grpc"]
    for kind in modules:
        try:
            module = __import__(
                f"opentelemetry.exporter.otlp.proto.{kind}.trace_exporter",
                fromlist=["OTLPSpanExporter"],
            )
        except ImportError:
            continue
        return module.OTLPSpanExporter()
    logger.warning("OTEL_TRACES_EXPORTER=otlp needs opentelemetry-exporter-otlp: tracing stays off")
    return None
