"""The console application: pages and the JSON API, behind sign-in or an API token."""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from courier.common.db.engine import Database
from courier.common.settings import Settings, get_settings
from courier.common.storage import Storage
from courier.console import (
    accounts,
    exports,
    feeds,
    imports,
    incidents,
    keys,
    pages_accounts,
    pages_admin,
    pages_exports,
    pages_feeds,
    pages_imports,
    pages_incidents,
    pages_sessions,
    people,
    sessions,
    signin,
)
from courier.console.access import (
    Cookies,
    CurrentViewer,
    SignInRequired,
    current_viewer,
    on_sign_in_required,
)
from courier.console.errors import on_http_error
from courier.console.render import STATIC
from courier.console.security import API_DOCS_HTML, protect

# Swagger UI 5 (it reads OpenAPI 3.1), as the fastapi-offline package ships it.
_SWAGGER = Path(fastapi_offline.__file__).parent / "static"

# Served to signed-in people and tokens only; names are fixed, never taken from the path.
_ASSETS: dict[str, Path] = {
    "console.css": STATIC / "console.css",
    "console.js": STATIC / "console.js",
    "htmx.min.js": STATIC / "htmx.min.js",
    "swagger-ui.css": _SWAGGER / "swagger-ui.css",
    "swagger-ui-bundle.js": _SWAGGER / "swagger-ui-bundle.js",
}
_TYPES = {".css": "text/css", ".js": "text/javascript"}

shell = APIRouter(include_in_schema=False)


@shell.get("/")
async def home(viewer: CurrentViewer) -> Response:
    return RedirectResponse("/imports", status_code=303)


@shell.get("/static/{name}")
async def asset(name: str, viewer: CurrentViewer) -> Response:
    path = _ASSETS.get(name)
    if path is None:
        raise HTTPException(404, "no such asset")
    return FileResponse(
        path,
        media_type=_TYPES[path.suffix],
        headers={"Cache-Control": "private, max-age=3600"},
    )


@shell.get("/api/docs", response_class=HTMLResponse)
async def api_docs(viewer: CurrentViewer) -> HTMLResponse:
    return HTMLResponse(API_DOCS_HTML)


@shell.get("/api/openapi.json")
async def openapi(request: Request, viewer: CurrentViewer) -> Response:
    return JSONResponse(request.app.openapi())


def create_app(db: Database, storage: Storage, settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="Courier console",
        version="1",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        description="The import audit, exports, incidents and accounts of Courier. "
        "Authenticate with an API token from `courier tokens create` as a bearer token.",
    )
    app.state.db = db
    app.state.storage = storage
    app.state.settings = settings
    app.state.cookies = Cookies(settings)
    app.state.signin_policy = signin.policy(settings)
    app.state.signin_limiter = signin.AddressLimiter(settings.console_signin_per_ip_per_minute)
    app.add_exception_handler(SignInRequired, on_sign_in_required)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    protect(app, settings)
    app.include_router(signin.router)
    app.include_router(shell)
    # Closed at the router too, so a route added without a viewer is never open.
    closed = [Depends(current_viewer)]
    for area in (
        imports, exports, incidents, sessions, people, pages_admin, feeds, accounts, keys,
    ):  # fmt: skip
        app.include_router(area.router, dependencies=closed)
    for pages in (
        pages_feeds,
        pages_accounts,
        pages_sessions,
        pages_imports,
        pages_incidents,
        pages_exports,
    ):
        app.include_router(pages.router, dependencies=closed)
    return app
