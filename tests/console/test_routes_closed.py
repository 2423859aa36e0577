"""No route of the console answers a stranger: every page, API route, file and document
needs a session or an API token. Only the way in (/signin) and the process's health and
metrics endpoints are open, and a route added without a viewer fails this test."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from courier.common.health import health_routes
from tests.support.console import api_client
from tests.support.console_routes import HEALTH, any_value, endpoints
from tests.support.services import eventually, running


def test_the_route_list_covers_pages_api_files_and_docs(app) -> None:
    paths = {e.path for e in endpoints(app)}
    # If these disappear the enumeration is broken, not the console closed.
    assert {"/", "/signin", "/static/{name}", "/api/docs", "/api/openapi.json"} <= paths
    assert any(p.startswith("/api/imports/") for p in paths)
    assert any(p.endswith("/file") for p in paths)


def test_health_and_metrics_are_added_by_the_process_not_by_the_app(app) -> None:
    assert not {e.path for e in endpoints(app)} & HEALTH
    # What courier.console.app appends: exactly the endpoints this test lets through.
    added = {r.path for r in iter_route_contexts(health_routes({}))}
    assert added <= HEALTH


async def open_routes(app: FastAPI) -> list[str]:
    """Each route (but the way in) that a stranger gets anything but sign-in from."""
    opened: list[str] = []
    async with api_client(app) as http:
        for endpoint in endpoints(app):
            if endpoint.open_by_design:
                continue
            url = endpoint.url(any_value)
            answer = await http.request(endpoint.method, url)
            if endpoint.is_api:
                closed = answer.status_code == 401
            else:
                location = answer.headers.get("location", "")
                closed = answer.status_code == 303 and location.startswith("/signin?next=")
            if not closed:
                opened.append(f"{endpoint} ({url}) answered {answer.status_code}")
    return opened


async def test_no_route_answers_without_a_session_or_a_token(app) -> None:
    assert await open_routes(app) == []


async def test_a_wrong_token_or_a_forged_cookie_opens_nothing_either(app) -> None:
    async with api_client(app, "not-a-token") as http:
        http.cookies.set("courier_session", "forged.value")
        for endpoint in endpoints(app):
            if endpoint.open_by_design:
                continue
            answer = await http.request(endpoint.method, endpoint.url(any_value))
            assert answer.status_code == 401, f"{endpoint}: {answer.status_code}"


async def test_default_docs_urls_are_not_served(app) -> None:
    async with api_client(app) as http:
        for url in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
            assert (await http.get(url)).status_code == 404, url


async def test_an_open_route_would_be_caught(app) -> None:
    """The check is not vacuous: a route added without a viewer shows up at once."""

    @app.get("/leaky")
    async def leaky() -> dict[str, str]:
        return {"payroll": "everything"}

    assert await open_routes(app) == ["GET /leaky (/leaky) answered 200"]


async def test_the_running_console_serves_health_openly_and_nothing_else(settings) -> None:
    async with running("console", settings):
        base = f"http://127.0.0.1:{settings.console_port}"
        async with api_client(base) as http:
            await eventually(lambda: _answers(http, "/healthz"))
            assert (await http.get("/healthz")).status_code == 200
            assert (await http.get("/metrics")).status_code == 200
            assert (await http.get("/")).status_code == 303
            assert (await http.get("/api/imports")).status_code == 401


async def _answers(http: httpx.AsyncClient, url: str) -> bool:
    try:
        await http.get(url)
    except httpx.TransportError:
        return False
    return True
