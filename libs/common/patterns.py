"""File-name patterns with date tokens, e.g. `leave_{yyyyMMdd}.csv` (importer and monitor)."""

from __future__ import annotations

import re
from functools import lru_cache

_TOKENS = {
    "yyyy": r"\d{4}",
    "yy": r"\d{2}",
    "MM": r"(?:0[1-9]|1[0-2])",
    "dd": r"(?:0[1-9]|[12]\d|3[01])",
    "HH": r"(?:[01]\d|2[0-3])",
    "mm": r"[0-5]\d",
    "ss": r"[0-5]\d",
}
_TOKEN_RE = re.compile("|".join(sorted(_TOKENS, key=len, reverse=True)))


def _translate_braced(body: str) -> str:
    out, pos = [], 0
    for m in _TOKEN_RE.finditer(body):
        out.append(re.escape(body[pos : m.start()]))
        out.append(_TOKENS[m.group(0)])
        pos = m.end()
    out.append(re.escape(body[pos:]))
    return "".join(out)


@lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """`{...}` holds date tokens, `*` any run of characters, `?` one; the rest is literal."""
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "{":
            end = pattern.find("}", i)
            if end < 0:
                raise ValueError(f"unclosed '{{' in pattern {pattern!r}")
            parts.append(_translate_braced(pattern[i + 1 : end]))
            i = end + 1
            continue
        if ch == "*":
            parts.append(r"[^/]*")
        elif ch == "?":
            parts.append(r"[^/]")
        else:
            parts.append(re.escape(ch))
        i += 1
    return re.compile("".join(parts) + r"\Z")


def matches(pattern: str, name: str) -> bool:
    return compile_pattern(pattern).match(name) is not None
