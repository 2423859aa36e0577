"""The feed timeline picture, drawn without a server: what each window and file reads as,
where it lands, and that partner text cannot break out of the SVG."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from courier.console.timeline import (
    ARRIVAL_KINDS,
    WINDOW_KINDS,
    Arrival,
    Timeline,
    Window,
    arrival_kind,
    render,
    window_kind,
)

END = datetime(2026, 12, 20, 12, 0, tzinfo=UTC)
START = END - timedelta(days=30)
SVG = "{http://www.w3.org/2000/svg}"


def _window(day: int, state: str, **over: object) -> Window:
    due = START + timedelta(days=day, hours=9)
    values: dict[str, object] = {
        "opens_at": due - timedelta(hours=2),
        "due_at": due,
        "closes_at": due + timedelta(hours=2),
        "state": state,
        **over,
    }
    return Window(**values)  # type: ignore[arg-type]


def _draw(windows: list[Window], arrivals: list[Arrival], zone: str = "UTC") -> ET.Element:
    svg = render(Timeline(START, END, zone, windows, arrivals, label="acme / leave"))
    return ET.fromstring(svg)


def _of_class(root: ET.Element, cls: str) -> list[ET.Element]:
    return [e for e in root.iter() if e.get("class") == cls]


def test_a_window_reads_as_on_time_late_missing_or_expected() -> None:
    late_file = uuid.uuid4()
    on_time = _window(3, "satisfied", satisfied_at=START + timedelta(days=3, hours=9))
    late = _window(4, "satisfied", satisfied_at=START + timedelta(days=4, hours=13))
    missed = _window(5, "missed")
    unclosed = _window(6, "open")  # closed in the past; the monitor has not ticked yet
    ahead = _window(30, "open")
    assert [window_kind(w, END) for w in (on_time, late, missed, unclosed, ahead)] == [
        "on-time", "late", "missing", "missing", "expected",
    ]  # fmt: skip
    windows = [_window(4, "satisfied", satisfied_at=START + timedelta(days=4, hours=13),
                       file_id=late_file)]  # fmt: skip
    at = START + timedelta(days=4, hours=13)
    assert arrival_kind(Arrival(at, "leave.csv", "completed", late_file), windows) == "late"
    assert arrival_kind(Arrival(at, "leave.csv", "rejected", late_file), windows) == "rejected"
    assert arrival_kind(Arrival(at, "leave.csv", "failed"), windows) == "rejected"
    assert arrival_kind(Arrival(at, "leave.csv", "completed"), windows) == "arrived"


def test_late_missing_and_rejected_are_drawn_in_their_own_colours() -> None:
    late_file = uuid.uuid4()
    root = _draw(
        [
            _window(2, "satisfied", satisfied_at=START + timedelta(days=2, hours=9)),
            _window(4, "satisfied", satisfied_at=START + timedelta(days=4, hours=13),
                    file_id=late_file),
            _window(5, "missed"),
        ],
        [
            Arrival(START + timedelta(days=2, hours=9), "ok.csv", "completed"),
            Arrival(START + timedelta(days=4, hours=13), "late.csv", "completed", late_file),
            Arrival(START + timedelta(days=6, hours=9), "bad.csv", "rejected"),
        ],
    )  # fmt: skip
    colours = {
        cls: {e.get("fill") for e in _of_class(root, cls)}
        for cls in ("band on-time", "band late", "band missing")
    }
    assert colours == {
        "band on-time": {WINDOW_KINDS["on-time"][0]},
        "band late": {WINDOW_KINDS["late"][0]},
        "band missing": {WINDOW_KINDS["missing"][0]},
    }
    marks = {
        cls: [e.find(f"{SVG}title").text for e in _of_class(root, cls)]  # type: ignore[union-attr]
        for cls in ("mark arrived", "mark late", "mark rejected")
    }
    assert [t.split(" ")[0] for t in marks["mark arrived"]] == ["ok.csv"]
    assert [t.split(" ")[0] for t in marks["mark late"]] == ["late.csv"]
    assert [t.split(" ")[0] for t in marks["mark rejected"]] == ["bad.csv"]
    # The three problems are told apart by colour, in the picture and in its legend.
    problem_colours = {
        WINDOW_KINDS["late"][0], WINDOW_KINDS["missing"][0], ARRIVAL_KINDS["rejected"][0],
    }  # fmt: skip
    assert len(problem_colours) == 3
    legend = {e.get("class") for e in root.iter() if (e.get("class") or "").startswith("legend")}
    assert {"legend band late", "legend band missing", "legend mark rejected"} <= legend


def test_marks_and_bands_stay_inside_the_30_days() -> None:
    root = _draw(
        [_window(-3, "missed"), _window(10, "missed"), _window(29, "open")],
        [
            Arrival(START - timedelta(days=2), "before.csv", "completed"),
            Arrival(START + timedelta(days=10, hours=8), "inside.csv", "completed"),
            Arrival(END + timedelta(hours=1), "after.csv", "completed"),
        ],
    )
    marks = _of_class(root, "mark arrived")
    assert len(marks) == 1
    assert "inside.csv" in marks[0].find(f"{SVG}title").text  # type: ignore[union-attr,operator]
    x = float(marks[0].find(f"{SVG}circle").get("cx"))  # type: ignore[union-attr,arg-type]
    width = float(root.get("width"))  # type: ignore[arg-type]
    # Day 10 of 30, a third of the way along.
    assert width * 0.3 < x < width * 0.4
    bands = [e for e in root.iter() if (e.get("class") or "").startswith("band ")]
    assert len(bands) == 2  # the window before the span is not drawn
    for band in bands:
        left = float(band.get("x"))  # type: ignore[arg-type]
        assert left >= 0 and left + float(band.get("width")) <= width  # type: ignore[arg-type]


def test_day_ticks_fall_on_midnight_in_the_tenants_zone() -> None:
    utc = _draw([], [], "UTC")
    tokyo = _draw([], [], "Asia/Tokyo")
    days = [e.text for e in _of_class(utc, "day")]
    assert len(days) == 30 and days[0] == "21 Nov" and "1 Dec" in days
    first_utc = float(_of_class(utc, "tick")[0].get("x1"))  # type: ignore[arg-type]
    first_tokyo = float(_of_class(tokyo, "tick")[0].get("x1"))  # type: ignore[arg-type]
    # Midnight in Tokyo is 15:00 UTC the day before: nine hours earlier along the axis.
    assert first_tokyo < first_utc
    assert "Asia/Tokyo" in (_of_class(tokyo, "zone")[0].text or "")


def test_a_file_name_cannot_inject_markup_into_the_picture() -> None:
    name = 'x"><script>alert(1)</script><svg onload="alert(2)'
    svg = render(
        Timeline(
            START,
            END,
            "UTC",
            [_window(9, "satisfied", satisfied_at=START + timedelta(days=9, hours=9),
                     file_name=name)],
            [Arrival(START + timedelta(days=9, hours=9), name, "rejected")],
            label="<b>acme</b>",
        )
    )  # fmt: skip
    assert "<script" not in svg and "&lt;script&gt;" in svg
    root = ET.fromstring(svg)  # still one well-formed element
    assert root.tag == f"{SVG}svg" and root.get("class") == "timeline"
    assert not [e for e in root.iter() if e.tag.endswith("script") or e.get("onload")]
    titles = [e.text for e in root.iter(f"{SVG}title")]
    assert any(name in (t or "") for t in titles)  # shown as text in the tooltip
