"""Which feed takes a file: one rule, so every service that asks gets the same answer.

The first enabled feed of the tenant, in order of feed name, whose pattern matches the
file name. Two feeds whose patterns both take a name do not share the file: the one
whose name sorts first takes it, every time.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

from courier.common.patterns import matches


class FeedLike(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def pattern(self) -> str: ...

    @property
    def enabled(self) -> bool: ...


F = TypeVar("F", bound=FeedLike)

# A file put in /inbound/test/ arrives named `test/NAME`: it is checked as NAME would be.
TEST_FOLDER = "test/"


def split_test(name: str) -> tuple[str, bool]:
    """The name feeds are matched against, and whether the file came in the test folder."""
    if name.startswith(TEST_FOLDER):
        return name[len(TEST_FOLDER) :], True
    return name, False


def match_feed(feeds: Iterable[F], name: str) -> F | None:
    """The feed (of one tenant's `feeds`) that takes a file called `name`, or None."""
    for feed in sorted((f for f in feeds if f.enabled is True), key=lambda f: f.name):
        if matches(feed.pattern, name):
            return feed
    return None
