"""Every route the console app serves, as URLs a test can request.

Access tests run over this list rather than over URLs written by hand, so a route added
tomorrow is checked tomorrow: closed to strangers, scoped to a tenant, CSRF-protected.
A path parameter is filled by what it names (`import_id`, `feed`, …); a parameter no
test knows how to fill fails loudly instead of being skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.routing import Mount

# Where a person or a program comes in; everything else needs a session or a token.
SIGN_IN = {("GET", "/signin"), ("POST", "/signin")}
# Served without sign-in by the console process (`courier.console.app`), not by create_app.
HEALTH = {"/healthz", "/readyz", "/metrics"}
ASSET = "console.css"
Fill = Callable[[str, Any], str]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # the template, e.g. /imports/{import_id}
    params: tuple[tuple[str, Any], ...] = ()  # (name, annotation) of each path parameter

    @property
    def is_api(self) -> bool:
        return self.path.startswith("/api")

    @property
    def open_by_design(self) -> bool:
        return (self.method, self.path) in SIGN_IN or self.path in HEALTH

    def url(self, fill: Fill) -> str:
        """The path with each parameter given by `fill(name, annotation)`; an asset route
        gets a real asset, so it would answer 200 if it were open."""
        if self.path.startswith("/static/"):
            return self.path.format(**{name: ASSET for name, _ in self.params})
        return self.path.format(**{name: fill(name, kind) for name, kind in self.params})

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def endpoints(app: FastAPI) -> list[Endpoint]:
    """Every (method, path) of `app`, including routers it includes and mounted apps."""
    found: set[Endpoint] = set()
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, Mount):
            # A mounted app (static files) answers anything under its path.
            found.add(Endpoint("GET", f"{route.path}/{{path}}", (("path", str),)))
            continue
        dependant = getattr(route, "dependant", None)
        params = tuple(
            (p.name, p.field_info.annotation) for p in (dependant.path_params if dependant else [])
        ) or tuple((name, str) for name in (route.param_convertors or {}))
        for method in sorted((route.methods or {"GET"}) - {"HEAD", "OPTIONS"}):
            found.add(Endpoint(method, route.path_format, params))
    return sorted(found, key=lambda e: (e.path, e.method))


def any_value(name: str, annotation: Any) -> str:
    """A value that parses as the parameter's type but names nothing that exists."""
    if annotation is uuid.UUID:
        return str(uuid.uuid4())
    if annotation is int:
        return "987654321"
    return f"nothing-{uuid.uuid4().hex[:8]}"


def of_objects(objects: Mapping[str, tuple[Any, str]]) -> Fill:
    """Fill a parameter with the object its name mentions: `import_id` takes the id of
    objects["import"], `feed` (a string) its name; the longest kind named wins
    (`held_import_id` → "held_import"). A parameter naming no kind fails the test."""

    def fill(name: str, annotation: Any) -> str:
        kinds = [kind for kind in objects if kind in name.lower()]
        if not kinds:
            raise LookupError(f"nothing fills {{{name}}}: tell the test which object it names")
        ident, label = objects[max(kinds, key=len)]
        return str(ident if annotation is uuid.UUID else label)

    return fill
