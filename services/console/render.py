"""Server-rendered pages: one Jinja2 environment, and what every page is given."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from courier.console.access import CSRF_FIELD, CSRF_HEADER, Viewer

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

templates = Jinja2Templates(directory=str(TEMPLATES))


def _when(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _iso(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat() if value else ""


templates.env.filters["when"] = _when
templates.env.filters["iso"] = _iso


def page(
    request: Request, name: str, viewer: Viewer | None, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """Render `name` with the viewer, their CSRF token and the navigation it may show."""
    return templates.TemplateResponse(
        request,
        name,
        {
            "viewer": viewer,
            "csrf": viewer.session_csrf if viewer else None,
            "csrf_field": CSRF_FIELD,
            "csrf_header": CSRF_HEADER,
            "now": datetime.now(UTC),
            **context,
        },
        status_code=status_code,
    )
