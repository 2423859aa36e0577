"""Refusals as people see them: an HTML page in the browser, JSON under /api."""

from __future__ import annotations

from fastapi import Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from courier.console.render import page

TITLES = {
    403: "Not allowed",
    404: "Not found",
    410: "Gone",
    409: "Not possible now",
}


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    wants_page = not request.url.path.startswith("/api") and "text/html" in request.headers.get(
        "accept", ""
    )
    if not wants_page:
        return await http_exception_handler(request, exc)
    return page(
        request,
        "error.html",
        getattr(request.state, "viewer", None),
        status_code=exc.status_code,
        title=TITLES.get(exc.status_code, "Something went wrong"),
        message=exc.detail if isinstance(exc.detail, str) else "",
    )
