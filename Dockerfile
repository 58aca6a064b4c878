# The image of the stack's own processes (docker-compose.yml: init, projector,
# snapshotter, supervisor, api). Stage 1 builds the wheel from the source tree;
# stage 2 installs only that wheel (no source tree, no build tools) and runs as a
# non-root user. tests/integration/test_compose_parity.py runs this file's CMD and
# HEALTHCHECK on loopback (no Docker engine is needed for that).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS wheel
WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

FROM ${PYTHON_IMAGE}
RUN useradd --create-home --uid 10001 --user-group orchestrator
COPY --from=wheel /dist/ /tmp/dist/
RUN pip install --no-cache-dir /tmp/dist/orchestrator_state-*.whl && rm -rf /tmp/dist
ENV PYTHONUNBUFFERED=1 \
    ORCHESTRATOR_HEALTH_FILE=/tmp/orchestrator-state.alive
USER orchestrator
WORKDIR /home/orchestrator
EXPOSE 8080
# Every long-running command touches $ORCHESTRATOR_HEALTH_FILE while it runs.
HEALTHCHECK --interval=15s --timeout=10s --start-period=60s --retries=3 \
    CMD ["orchestrator-state", "health"]
CMD ["orchestrator-state", "api", "--host", "0.0.0.0", "--port", "8080"]
