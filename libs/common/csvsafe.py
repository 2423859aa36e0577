"""CSV formula injection: a text cell a spreadsheet would run as a formula is defused.

Partners open export and result files in spreadsheets, and the cells came from
outside. A text cell starting with `=`, `+`, `-`, `@`, tab or CR gets a leading `'`
(OWASP's fix); a cell that is just a number (an optional sign, digits and at most one
`.` or `,`: `-5`, `+44`, `-1,5`) is data, not a formula, and is left alone.

The rule is written once here, in Python (`defuse`) and in SQL (`defuse_sql`, for
PostgreSQL's COPY path), so both ways of writing a file agree.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import and_, case, func, literal
from sqlalchemy.sql.elements import ColumnElement

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# ASCII digits spelled out: `\d` means other scripts' digits too, and not alike in
# Python and PostgreSQL.
NUMBER = r"[+-]?([0-9]+([.,][0-9]*)?|[.,][0-9]+)"
_NUMBER = re.compile(NUMBER)


def defuse(cell: object) -> str:
    """The cell as text a spreadsheet shows as is (None is an empty cell)."""
    text = "" if cell is None else str(cell)
    if text[:1] in TRIGGERS and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def defuse_sql(text: Any) -> ColumnElement[Any]:
    """`defuse` as a PostgreSQL expression over a text column (NULL stays NULL)."""
    # PostgreSQL's `$` is the end of the string (Python's would also allow a final "\n").
    risky = and_(func.left(text, 1).in_(TRIGGERS), ~text.regexp_match(f"^({NUMBER})$"))
    return case((risky, literal("'") + text), else_=text)
