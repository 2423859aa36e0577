"""Which feed takes a file: one rule, used by the importer, reported on its events.

The enabled feeds of the tenant are tried in order of feed name; the first whose
pattern matches the file name takes it. Overlapping patterns are therefore
deterministic: `leave` is tried before `leave_backfill`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

from courier.common.patterns import matches


class _Feed(Protocol):
    name: str
    pattern: str
    enabled: bool


F = TypeVar("F", bound=_Feed)


def match_feed(feeds: Iterable[F], name: str) -> F | None:
    """The first enabled feed, by feed name, whose pattern takes `name`."""
    for feed in sorted((f for f in feeds if f.enabled), key=lambda f: f.name):
        if matches(feed.pattern, name):
            return feed
    return None
