"""Which feed takes a file: one rule, so every service that asks gets the same answer.

The first enabled feed of the tenant, in order of feed name, whose pattern matches the
file name. Two feeds whose patterns both take a name do not share the file: the one
whose name sorts first takes it, every time.

A feed that decrypts or unpacks (`decrypt: pgp`, `unpack: zip|gzip|auto`) also takes
its pattern wrapped in those layers' suffixes: `leave_{yyyyMMdd}.csv` takes
`leave_20261201.csv.pgp`, `.csv.gz`, `.csv.gz.gpg`; its pattern is matched against the
name without them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

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


# Outermost layer first: an encrypted file may hold a packed one, never the reverse.
DECRYPT_SUFFIXES = (".pgp", ".gpg", ".asc")
UNPACK_SUFFIXES = {"gzip": (".gz",), "zip": (".zip",)}
_UNPACKS = {"gzip": ("gzip",), "zip": ("zip",), "auto": ("gzip", "zip"), "none": ()}


@dataclass(frozen=True)
class Wrapped:
    """A file name seen through a feed's layers: the name its pattern is matched against,
    and the layers the name's suffixes announce (outermost first: `pgp`, `gzip`, `zip`)."""

    inner: str
    layers: tuple[str, ...] = ()


def _suffix(name: str, suffixes: tuple[str, ...]) -> str | None:
    lower = name.lower()
    return next((s for s in suffixes if lower.endswith(s) and len(name) > len(s)), None)


def unwrap_name(name: str, decrypt: str = "none", unpack: str = "none") -> Wrapped:
    """`name` without the suffixes of the layers a feed declares (case-insensitive)."""
    inner, layers = name, []
    if decrypt == "pgp" and (suffix := _suffix(inner, DECRYPT_SUFFIXES)):
        inner, layers = inner[: -len(suffix)], ["pgp"]
    for kind in _UNPACKS.get(unpack, ()):
        if suffix := _suffix(inner, UNPACK_SUFFIXES[kind]):
            inner = inner[: -len(suffix)]
            layers.append(kind)
            break
    return Wrapped(inner, tuple(layers))


def layers_of(feed: object) -> tuple[str, str]:
    """A feed's (`decrypt`, `unpack`) from its stored spec; rows without them: none."""
    spec: Mapping[str, Any] = getattr(feed, "spec", None) or {}
    return str(spec.get("decrypt") or "none"), str(spec.get("unpack") or "none")


def seen_by(feed: object, name: str) -> Wrapped:
    """`name` as `feed` reads it."""
    return unwrap_name(name, *layers_of(feed))


def _stem(pattern: str) -> str | None:
    """The pattern without its extension (`leave_{yyyyMMdd}.csv` → `leave_{yyyyMMdd}`)."""
    stem, dot, ext = pattern.rpartition(".")
    return stem if dot and stem and ext and not set(ext) & set("{}*?/") else None


def takes(feed: FeedLike, name: str) -> bool:
    """Whether `feed`'s pattern takes `name`: as it is (a pattern may spell the
    suffixes out, `leave_*.csv.pgp`), without the feed's layers' suffixes, and a zip
    also in place of the extension of the files it holds (`leave_20261201.zip`)."""
    if matches(feed.pattern, name):
        return True
    seen = seen_by(feed, name)
    if matches(feed.pattern, seen.inner):
        return True
    stem = _stem(feed.pattern) if "zip" in seen.layers else None
    return stem is not None and matches(stem, seen.inner)


def match_feed(feeds: Iterable[F], name: str) -> F | None:
    """The feed (of one tenant's `feeds`) that takes a file called `name`, or None."""
    for feed in sorted((f for f in feeds if f.enabled is True), key=lambda f: f.name):
        if takes(feed, name):
            return feed
    return None
