# Image for the processes in docker-compose.yml (projector, API, snapshotter).
FROM python:3.11-slim
WORKDIR /app
COPY . /app
RUN pip install --no-cache-dir .
ENTRYPOINT []
