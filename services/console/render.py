"""Server-rendered pages: one Jinja2 environment, what every page is given, the answer
to a page's form, and the SLA clocks pages draw."""

from __future__ import annotations

import math
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
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


def query(**params: object) -> str:
    """A query string of the parameters that are set (filters carried across links)."""
    return urlencode({k: v for k, v in params.items() if v not in (None, "", False)})


def link(path: str, **params: object) -> str:
    """`path` with the `query` of `params`, if any are set."""
    found = query(**params)
    return f"{path}?{found}" if found else path


def back(path: str, **message: str | None) -> Response:
    """303 to the page the form was on, with what became of the action (`notice`,
    `error`, …) in its query; a message left empty is left out."""
    return RedirectResponse(link(path, **message), status_code=303)


def _outcome(notice: str | None = None, error: str | None = None) -> dict[str, str | None]:
    return {"notice": notice, "error": error}


# What `back` brought to the page: the notice, or the error, of the form just sent.
Outcome = Annotated[dict[str, str | None], Depends(_outcome)]


async def back_after(
    path: str,
    action: Awaitable[Any],
    *,
    notice: str | None = None,
    refused: tuple[type[Exception], ...] = (),
    error: str = "error",
) -> Response:
    """Carry out a form's action, then go `back` to `path` with `notice` (else the
    action's own message), or with the reason it was refused: a 409, or one of
    `refused`. Any other error (a 404, a 403) is answered as it is."""
    try:
        done = await action
    except HTTPException as exc:
        if exc.status_code != 409:
            raise
        reason = str(exc.detail)
    except refused as exc:
        reason = str(exc)
    else:
        return back(path, notice=notice if notice is not None else done.message)
    return back(path, **{error: reason})


@dataclass(frozen=True)
class Countdown:
    """A clock as the server renders it; console.js then ticks it from `due_at`."""

    due_at: datetime
    text: str
    late: bool
    stopped: bool
    late_word: str = "breached"


def span(seconds: float) -> str:
    """`1d 2h 03m 04s`, as console.js writes it."""
    s = math.floor(abs(seconds))
    days, hours, minutes = s // 86400, s % 86400 // 3600, s % 3600 // 60
    return (f"{days}d " if days else "") + f"{hours}h {minutes:02d}m {s % 60:02d}s"


def countdown(
    due_at: datetime,
    now: datetime,
    *,
    stopped_at: datetime | None = None,
    late_word: str = "breached",
) -> Countdown:
    if stopped_at is not None:
        late = stopped_at > due_at
        text = f"stopped {span((stopped_at - due_at).total_seconds())} "
        text += "after the deadline" if late else "before the deadline"
        return Countdown(due_at, text, late, True, late_word)
    left = (due_at - now).total_seconds()
    if left > 0:
        return Countdown(due_at, f"{span(left)} left", False, False, late_word)
    return Countdown(due_at, f"{late_word} {span(left)} ago", True, False, late_word)
