"""CSV formula injection: a text cell that a spreadsheet would run as a formula is defused.

Only text cells are touched, and a text cell that is just a number ("-5", "+44")
is data, not a formula. The fix is OWASP's: prefix a single quote.
"""

from __future__ import annotations

import re

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"^[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?$")


def neutralise(value: str) -> str:
    if value[:1] in TRIGGERS and not NUMBER.match(value):
        return "'" + value
    return value
