"""A customer sees one tenant: every URL that names another tenant's object answers as if
the object did not exist (404 in pages and API alike), and no list shows it.

Driven by the app's own route list, so a route added later is checked too; the objects
are real, made by the services' handlers for two tenants that hold the same kinds.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import unquote_plus

import httpx
import pytest
from sqlalchemy import func, select

from courier.common.db.models_console import ConsoleUser
from courier.common.db.models_outbox import OutboxEvent
from courier.console.api import create_app
from tests.support.console import api_client, make_api_token, make_token, make_user, sign_in
from tests.support.console_routes import Endpoint, Fill, any_value, endpoints, of_objects
from tests.support.tenant_objects import TenantObjects, populate

# Kinds of object that a customer reads, each of which some route must name by id.
READABLE = ("import", "export", "incident", "feed", "account", "session")


@dataclass
class World:
    app: object
    ours: TenantObjects
    theirs: TenantObjects
    # Filling a URL with each tenant's objects (and a console user/token of each).
    own: Fill
    foreign: Fill
    token: str  # a customer token of "acme"


async def _fill(db, objects: TenantObjects) -> Fill:
    """Filling a URL with the tenant's objects, and a customer user and a customer token
    of theirs (objects the users and tokens pages name)."""
    slug = objects.tenant.slug
    user = await make_user(db, f"{slug}-reader", "customer", slug)
    token, _ = await make_api_token(db, "customer", slug, name=f"{slug}-robot")
    return objects.fill(user, token)


@pytest.fixture
async def world(db, storage, settings) -> World:
    ours = await populate(db, storage, "acme")
    theirs = await populate(db, storage, "globex")
    own = await _fill(db, ours)
    foreign = await _fill(db, theirs)
    await make_user(db, "ann", "customer", "acme")
    token = await make_token(db, "customer", "acme", name="ann-robot")
    return World(create_app(db, storage, settings), ours, theirs, own, foreign, token)


@asynccontextmanager
async def customers(world: World) -> AsyncIterator[list[tuple[str, httpx.AsyncClient]]]:
    """Ann of acme twice: signed in (with her CSRF token on every request) and by token."""
    async with api_client(world.app) as browser, api_client(world.app, world.token) as robot:
        csrf = await sign_in(browser, "ann")
        browser.headers["X-CSRF-Token"] = csrf
        yield [("session", browser), ("token", robot)]


def _leaks(answer: httpx.Response, theirs: TenantObjects) -> list[str]:
    """Their markers in the answer, but those the URL itself carried (the id asked for,
    a filter echoed back)."""
    asked = unquote_plus(str(answer.request.url))
    shown = answer.text + " ".join(f"{k}: {v}" for k, v in answer.headers.items())
    return [m for m in theirs.markers if m in shown and m not in asked]


def _with_objects(world: World) -> list[Endpoint]:
    return [e for e in endpoints(world.app) if e.params and not e.path.startswith("/static/")]


def _lists(world: World) -> list[Endpoint]:
    return [e for e in endpoints(world.app) if e.method == "GET" and not e.params]


async def test_every_kind_the_customer_reads_is_named_by_some_route(db, storage, settings) -> None:
    app = create_app(db, storage, settings)
    named = " ".join(name for e in endpoints(app) for name, _ in e.params)
    assert [kind for kind in READABLE if kind not in named] == []


async def test_another_tenants_objects_answer_404_like_missing_ones(world) -> None:
    wrong: list[str] = []
    async with customers(world) as clients:
        for how, http in clients:
            for endpoint in _with_objects(world):
                if endpoint.method != "GET":
                    continue
                theirs = await http.get(endpoint.url(world.foreign))
                missing = await http.get(endpoint.url(any_value))
                own = await http.get(endpoint.url(world.own))
                # A route this customer may use answers 404; a role-gated one 403, alike.
                expected = 404 if own.status_code < 400 else missing.status_code
                if theirs.status_code != expected or expected not in (403, 404):
                    wrong.append(
                        f"{how} {endpoint}: theirs {theirs.status_code}, own {own.status_code},"
                        f" missing {missing.status_code}"
                    )
                if leaks := _leaks(theirs, world.theirs):
                    wrong.append(f"{how} {endpoint}: shows {leaks}")
                # Not broken routes: the same URL of their own tenant's object answers.
                if any(kind in endpoint.path for kind in READABLE) and own.status_code != 200:
                    wrong.append(f"{how} {endpoint}: their own object answered {own.status_code}")
    assert wrong == []


async def test_another_tenants_objects_cannot_be_acted_on(db, world) -> None:
    async with db.session() as s:
        staged_before = await s.scalar(select(func.count()).select_from(OutboxEvent))
    refused: dict[str, int] = {}
    async with customers(world) as clients:
        for how, http in clients:
            for endpoint in _with_objects(world):
                if endpoint.method in ("GET", "HEAD"):
                    continue
                answer = await http.request(endpoint.method, endpoint.url(world.foreign))
                refused[f"{how} {endpoint}"] = answer.status_code
    assert {e: s for e, s in refused.items() if s not in (403, 404)} == {}
    async with db.session() as s:
        # No approval, acknowledgement or redelivery was sent on their behalf.
        assert await s.scalar(select(func.count()).select_from(OutboxEvent)) == staged_before
        user = await s.scalar(select(ConsoleUser).where(ConsoleUser.username == "globex-reader"))
        assert user is not None and user.enabled


async def test_no_list_shows_another_tenants_objects(db, world) -> None:
    theirs = world.theirs
    # Asking for the other tenant by name is no way round: the scope is in the query.
    asked = {
        "tenant": theirs.tenant.slug,
        "tenant_id": str(theirs.tenant.id),
        "feed": theirs.feed.name,
        "account": theirs.account.username,
        "username": theirs.account.username,
    }
    wrong: list[str] = []
    async with customers(world) as clients:
        for how, http in clients:
            for endpoint in _lists(world):
                plain = await http.get(endpoint.url(any_value))
                if leaks := _leaks(plain, theirs):
                    wrong.append(f"{how} {endpoint}: shows {leaks}")
                filtered = await http.get(endpoint.url(any_value), params=asked)
                if leaks := _leaks(filtered, theirs):
                    wrong.append(f"{how} {endpoint}?tenant=…: shows {leaks}")
    assert wrong == []
    # Not empty by accident: support staff see globex's imports in the same list.
    async with api_client(world.app, await make_token(db, "support", name="staff")) as staff:
        imports = (await staff.get("/api/imports")).json()
    assert {i["tenant"] for i in imports} >= {"acme", "globex"}


def test_route_filling_names_the_object_of_each_parameter() -> None:
    fill = of_objects({"import": (uuid.UUID(int=1), "a.csv"), "held": (uuid.UUID(int=2), "h")})
    assert fill("import_id", uuid.UUID) == str(uuid.UUID(int=1))
    assert fill("import_name", str) == "a.csv"
    with pytest.raises(LookupError, match="widget_id"):
        fill("widget_id", uuid.UUID)
