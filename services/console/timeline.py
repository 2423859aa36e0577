"""The feed timeline: expected windows as bands and received files as marks, drawn as SVG.

Pure (dataclasses in, text out) so the picture is tested without a server, and drawn on
the server so the page needs no script. Every piece of text from a partner (file names)
or from configuration goes through `_esc`, so the SVG can be inlined as is.

How a window and a file read is decided here too (`window_kind`, `arrival_kind`), so
the tables under the picture and the JSON API name them exactly as the picture colours them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from html import escape
from zoneinfo import ZoneInfo

# Import statuses that mean the file was refused or could not be processed.
REJECTED_STATUSES = frozenset({"rejected", "failed"})

# kind -> (fill colour, legend text). Distinct hues for late, missing and rejected; the
# marks also differ in shape (circle, square) for readers who do not tell colours apart.
WINDOW_KINDS: dict[str, tuple[str, str]] = {
    "expected": ("#c9d6f2", "expected window"),
    "on-time": ("#9fd3ae", "file in its window"),
    "late": ("#e8912d", "late (file after the window)"),
    "missing": ("#b3261e", "missing (closed without a file)"),
    "cancelled": ("#d0d3d9", "cancelled"),
}
ARRIVAL_KINDS: dict[str, tuple[str, str]] = {
    "arrived": ("#1d7a3a", "file received"),
    "late": ("#b35f00", "late file"),
    "rejected": ("#6f2da8", "rejected or failed file"),
}

WIDTH, HEIGHT = 960, 160
LEFT, RIGHT = 16, 16
BAND_TOP, BAND_HEIGHT = 14, 40
MARK_Y = 72
AXIS_Y = 90
LEGEND_Y = 130


@dataclass(frozen=True)
class Window:
    """One expected arrival, as the monitor laid it out (times aware, any zone)."""

    opens_at: datetime
    due_at: datetime
    closes_at: datetime
    # open | satisfied | missed | cancelled (the monitor's states)
    state: str
    satisfied_at: datetime | None = None
    file_id: uuid.UUID | None = None
    file_name: str | None = None


@dataclass(frozen=True)
class Arrival:
    """One file the importer took for the feed."""

    at: datetime
    name: str
    # The import's status: completed, rejected, failed, awaiting_approval, …
    status: str
    file_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Timeline:
    """What to draw: [start, end] with the windows and files of that span."""

    start: datetime
    end: datetime
    timezone: str = "UTC"
    windows: list[Window] = field(default_factory=list)
    arrivals: list[Arrival] = field(default_factory=list)
    label: str = ""


def window_kind(window: Window, now: datetime) -> str:
    """expected | on-time | late | missing | cancelled.

    A window still open after it closed is missing too: the monitor closes it on its
    next tick, and the picture should not call it expected meanwhile.
    """
    if window.state == "cancelled":
        return "cancelled"
    if window.state == "satisfied":
        late = window.satisfied_at is not None and window.satisfied_at > window.closes_at
        return "late" if late else "on-time"
    if window.state == "missed" or window.closes_at <= now:
        return "missing"
    return "expected"


def arrival_kind(arrival: Arrival, windows: Iterable[Window]) -> str:
    """rejected (refused or failed) | late (it satisfied a window after it closed) | arrived."""
    if arrival.status in REJECTED_STATUSES:
        return "rejected"
    if arrival.file_id is not None and any(
        w.file_id == arrival.file_id and w.satisfied_at is not None and w.satisfied_at > w.closes_at
        for w in windows
    ):
        return "late"
    return "arrived"


def _esc(text: str) -> str:
    return escape(text, quote=True)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError):  # an unknown or malformed name: draw in UTC
        return ZoneInfo("UTC")


class _Scale:
    """Maps instants to x positions across the plot, clamped to its edges."""

    def __init__(self, start: datetime, end: datetime) -> None:
        self.start, self.span = start, max((end - start).total_seconds(), 1.0)
        self.width = WIDTH - LEFT - RIGHT

    def x(self, at: datetime) -> float:
        share = (at - self.start).total_seconds() / self.span
        return round(LEFT + min(max(share, 0.0), 1.0) * self.width, 1)


def _midnights(start: datetime, end: datetime, tz: ZoneInfo) -> Iterator[datetime]:
    """Local midnights strictly inside (start, end]."""
    day: date = start.astimezone(tz).date() + timedelta(days=1)
    while True:
        at = datetime.combine(day, time(), tzinfo=tz)
        if at > end:
            return
        yield at
        day += timedelta(days=1)


def _local(at: datetime, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


def _window_title(w: Window, kind: str, tz: ZoneInfo) -> str:
    text = (
        f"{WINDOW_KINDS[kind][1]}: due {_local(w.due_at, tz)}, "
        f"window {_local(w.opens_at, tz)} to {_local(w.closes_at, tz)}"
    )
    if w.file_name:
        text += f"; file {w.file_name}"
    if w.satisfied_at is not None:
        text += f" at {_local(w.satisfied_at, tz)}"
    return text


def _bands(t: Timeline, scale: _Scale, tz: ZoneInfo) -> Iterator[str]:
    for w in sorted(t.windows, key=lambda w: w.opens_at):
        if w.closes_at < t.start or w.opens_at > t.end:
            continue
        kind = window_kind(w, t.end)
        x0, x1 = scale.x(w.opens_at), scale.x(w.closes_at)
        yield (
            f'<rect class="band {kind}" x="{x0}" y="{BAND_TOP}" width="{max(x1 - x0, 3.0):.1f}" '
            f'height="{BAND_HEIGHT}" fill="{WINDOW_KINDS[kind][0]}">'
            f"<title>{_esc(_window_title(w, kind, tz))}</title></rect>"
        )


def _mark_shape(kind: str, x: float, y: float, fill: str) -> str:
    if kind == "rejected":
        return f'<rect x="{x - 5:.1f}" y="{y - 5}" width="10" height="10" fill="{fill}"/>'
    return f'<circle cx="{x}" cy="{y}" r="5" fill="{fill}"/>'


def _marks(t: Timeline, scale: _Scale, tz: ZoneInfo) -> Iterator[str]:
    for a in sorted(t.arrivals, key=lambda a: a.at):
        if not t.start <= a.at <= t.end:
            continue
        kind = arrival_kind(a, t.windows)
        fill = ARRIVAL_KINDS[kind][0]
        x = scale.x(a.at)
        title = f"{a.name} — {a.status}, received {_local(a.at, tz)}"
        yield (
            f'<g class="mark {kind}">'
            f"<title>{_esc(title)}</title>"
            f'<line x1="{x}" y1="{BAND_TOP}" x2="{x}" y2="{MARK_Y}" stroke="{fill}" '
            f'stroke-width="1.5" stroke-opacity="0.6"/>'
            f"{_mark_shape(kind, x, MARK_Y, fill)}</g>"
        )


def _axis(t: Timeline, scale: _Scale, tz: ZoneInfo) -> Iterator[str]:
    yield (
        f'<line class="axis" x1="{LEFT}" y1="{AXIS_Y}" x2="{WIDTH - RIGHT}" y2="{AXIS_Y}" '
        'stroke="#5b6475"/>'
    )
    for i, midnight in enumerate(_midnights(t.start, t.end, tz)):
        x = scale.x(midnight)
        yield (
            f'<line class="tick" x1="{x}" y1="{BAND_TOP}" x2="{x}" y2="{AXIS_Y + 4}" '
            'stroke="#dde1e8"/>'
        )
        # The month is named on its first day and on the first tick, the day alone elsewhere.
        label = (
            f"{midnight.day} {midnight:%b}" if i == 0 or midnight.day == 1 else f"{midnight.day}"
        )
        yield (
            f'<text class="day" x="{x}" y="{AXIS_Y + 16}" text-anchor="middle" '
            f'font-size="10" fill="#5b6475">{_esc(label)}</text>'
        )
    yield (
        f'<text class="zone" x="{WIDTH - RIGHT}" y="{LEGEND_Y + 20}" text-anchor="end" '
        f'font-size="10" fill="#5b6475">days in {_esc(tz.key)}</text>'
    )


def _legend() -> Iterator[str]:
    """Windows on one row, files on the next."""
    rows = (("band", WINDOW_KINDS, LEGEND_Y), ("mark", ARRIVAL_KINDS, LEGEND_Y + 16))
    for what, kinds, y in rows:
        x = LEFT
        for kind, (colour, text) in kinds.items():
            if what == "band":
                swatch = f'<rect x="{x}" y="{y - 5}" width="14" height="10" fill="{colour}"/>'
            else:
                swatch = _mark_shape(kind, x + 7, y, colour)
            yield (
                f'<g class="legend {what} {kind}">{swatch}'
                f'<text x="{x + 18}" y="{y + 4}" font-size="10" fill="#1d2330">'
                f"{_esc(text)}</text></g>"
            )
            x += 30 + int(len(text) * 5.5)


def _now_line(t: Timeline, scale: _Scale) -> str:
    x = scale.x(t.end)
    return (
        f'<line class="now" x1="{x}" y1="{BAND_TOP - 6}" x2="{x}" y2="{AXIS_Y}" '
        'stroke="#1d2330" stroke-dasharray="3 2"><title>now</title></line>'
    )


def render(t: Timeline) -> str:
    """The picture as one inline `<svg class="timeline">` element."""
    tz = _zone(t.timezone)
    scale = _Scale(t.start, t.end)
    label = t.label or "timeline"
    parts = [
        f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} '
        f'{HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'aria-label="{_esc(label)}">',
        f"<title>{_esc(label)}</title>",
        *_axis(t, scale, tz),
        *_bands(t, scale, tz),
        *_marks(t, scale, tz),
        _now_line(t, scale),
        *_legend(),
        "</svg>",
    ]
    return "\n".join(parts)


def local_text(at: datetime | None, zone: str) -> str:
    """An instant as the tables under the picture show it: in the feed's zone."""
    return _local(at, _zone(zone)) if at is not None else "—"
