"""The typed client and the server's OpenAPI document agree: every endpoint, every
query parameter, every response model. A route added to the API without the client
(or a parameter renamed on one side) fails here."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from orchestrator.client import ROUTES, AsyncClient, Client
from orchestrator.client._endpoints import MODELS
from orchestrator.projections.api import ApiSettings, create_app


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    spec: dict[str, Any] = create_app(
        ApiSettings(database_url="postgresql://nobody@127.0.0.1:1/none")
    ).openapi()
    return spec


def _operations(spec: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): op
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
    }


def test_every_endpoint_of_the_server_is_a_route_of_the_client(openapi: dict[str, Any]) -> None:
    server = set(_operations(openapi))
    client = {(route.method, route.path) for route in ROUTES.values()}

    assert client == server


@pytest.mark.parametrize("name", sorted(ROUTES))
def test_query_parameters_agree(openapi: dict[str, Any], name: str) -> None:
    route = ROUTES[name]
    op = _operations(openapi)[(route.method, route.path)]
    query = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
    path = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}

    assert set(route.query) == query
    for client in (Client, AsyncClient):
        method = getattr(client, f"{name}_page", None) or getattr(client, name)
        accepted = set(inspect.signature(method).parameters) - {"self"}
        assert accepted == query | path, f"{client.__name__}.{method.__name__}"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_response_models_are_the_servers(openapi: dict[str, Any], name: str) -> None:
    route = ROUTES[name]
    op = _operations(openapi)[(route.method, route.path)]
    schema = op["responses"]["200"]["content"]["application/json"]["schema"]

    assert schema["$ref"] == f"#/components/schemas/{MODELS[name].__name__}"


def test_errors_are_declared_as_problems(openapi: dict[str, Any]) -> None:
    problem = openapi["components"]["schemas"]["ErrorOut"]

    assert {"type", "title", "status", "detail"} <= set(problem["required"])
