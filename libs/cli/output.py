"""How commands print, so ids and names stay whole in a terminal, a narrow one, or a pipe.

In a terminal a table folds a long cell onto more lines and never cuts it short. Piped
(or redirected), a table is tab-separated lines, a header then one line per row, and no
line is wrapped: `grep`, `cut -f` and a copied id see every character. `--json` prints
the rows as the console's API answers them: stable keys, ids in full.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text


class Output(Console):
    """A console that wraps lines only for a person at a terminal, never in a pipe."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        if kwargs.get("soft_wrap") is None:
            kwargs["soft_wrap"] = not self.is_terminal
        super().print(*objects, **kwargs)


def cell(value: object) -> str:
    """A value as a table shows it: `-` for nothing, times to the second, lists joined."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, list | tuple | set):
        return ", ".join(cell(v) for v in value) or "-"
    return str(value)


def table(console: Console, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Rows under `columns`: a folded table in a terminal, tab-separated lines when piped."""
    cells = [[cell(v) for v in row] for row in rows]
    if not console.is_terminal:
        # Written as is: rich would expand the tabs. One row, one line: a tab or a line
        # break inside a value would split it.
        console.file.write(
            "".join(
                "\t".join(" ".join(v.split()) for v in line) + "\n" for line in (columns, *cells)
            )
        )
        return
    shown = Table(*(Column(name, overflow="fold") for name in columns))
    for row in cells:
        shown.add_row(*(Text(v) for v in row))
    console.print(shown)


def jsonable(value: Any) -> Any:
    """Models, dataclasses and lists of them as plain JSON values."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def print_json(console: Console, value: Any) -> None:
    """`--json`: one JSON document on stdout (coloured only in a terminal)."""
    console.print_json(data=jsonable(value))
