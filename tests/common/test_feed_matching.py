"""Which feed takes a file: the first enabled feed by name whose pattern matches."""

from __future__ import annotations

import itertools

import pytest

from courier.common.db.models import Feed
from courier.common.feeds import match_feed, seen_by


def _feed(name: str, pattern: str, enabled: bool = True) -> Feed:
    return Feed(name=name, kind="leave_balances", pattern=pattern, enabled=enabled)


FEEDS = [
    _feed("payroll-leave", "leave_{yyyyMMdd}.csv"),
    _feed("hr-staff", "staff_*.csv"),
    _feed("any-leave", "leave_*.csv"),  # takes every leave file payroll-leave takes
    _feed("old-roles", "roles_*.csv", enabled=False),
    _feed("roles", "roles_??.csv"),
]


@pytest.mark.parametrize(
    ("name", "taken_by"),
    [
        ("staff_20261201.csv", "hr-staff"),
        # Both leave feeds match: the first by name takes it.
        ("leave_20261201.csv", "any-leave"),
        # Only the looser pattern matches (no valid date).
        ("leave_20261301.csv", "any-leave"),
        ("leave_final.csv", "any-leave"),
        # A disabled feed takes nothing, even when it would come first.
        ("roles_eu.csv", "roles"),
        ("roles_europe.csv", None),
        # Patterns match the whole name, case and all.
        ("Staff_20261201.csv", None),
        ("staff_20261201.csv.filepart", None),
        ("x/staff_1.csv", None),
        ("unknown.csv", None),
    ],
)
def test_the_first_enabled_feed_by_name_whose_pattern_matches_takes_the_file(
    name: str, taken_by: str | None
) -> None:
    found = match_feed(FEEDS, name)
    assert (found.name if found else None) == taken_by


def test_an_ambiguous_name_goes_to_the_same_feed_whatever_order_the_feeds_come_in() -> None:
    chosen = {
        match_feed(list(order), "leave_20261201.csv").name  # type: ignore[union-attr]
        for order in itertools.permutations(FEEDS)
    }
    assert chosen == {"any-leave"}


def test_no_feeds_take_nothing() -> None:
    assert match_feed([], "leave_20261201.csv") is None


def test_feed_names_compare_character_by_character_not_by_the_databases_collation() -> None:
    feeds = [_feed("leave_x", "*.csv"), _feed("leavea", "*.csv"), _feed("leave1", "*.csv")]
    assert match_feed(feeds, "a.csv").name == "leave1"  # type: ignore[union-attr]
    feeds.append(_feed("leave-z", "*.csv"))
    assert match_feed(feeds, "a.csv").name == "leave-z"  # type: ignore[union-attr]


def _wrapping(name: str, pattern: str, **spec: str) -> Feed:
    return Feed(name=name, kind="leave_balances", pattern=pattern, enabled=True, spec=spec)


WRAPPING = [
    _wrapping("leave", "leave_{yyyyMMdd}.csv", decrypt="pgp", unpack="auto"),
    _wrapping("staff", "staff_*.csv", unpack="gzip"),
    _wrapping("roles", "roles_*.csv"),
]


@pytest.mark.parametrize(
    ("name", "taken_by", "layers"),
    [
        ("leave_20261201.csv", "leave", ()),
        ("leave_20261201.csv.pgp", "leave", ("pgp",)),
        ("leave_20261201.csv.GPG", "leave", ("pgp",)),
        ("leave_20261201.csv.asc", "leave", ("pgp",)),
        ("leave_20261201.csv.gz.pgp", "leave", ("pgp", "gzip")),
        ("leave_20261201.csv.zip", "leave", ("zip",)),
        # A zip may be named like the files it holds, its suffix in place of theirs.
        ("leave_20261201.zip", "leave", ("zip",)),
        ("leave_20261201.zip.pgp", "leave", ("pgp", "zip")),
        # Layers apply in one order only: encrypted outside, packed inside.
        ("leave_20261201.csv.pgp.gz", None, ()),
        ("leave_20261301.csv.pgp", None, ()),
        ("staff_1.csv.gz", "staff", ("gzip",)),
        # A feed takes only the layers it declares.
        ("staff_1.csv.pgp", None, ()),
        ("staff_1.zip", None, ()),
        ("roles_1.csv.gz", None, ()),
    ],
)
def test_a_feed_that_decrypts_or_unpacks_takes_its_pattern_with_the_layers_suffixes(
    name: str, taken_by: str | None, layers: tuple[str, ...]
) -> None:
    found = match_feed(WRAPPING, name)
    assert (found.name if found else None) == taken_by
    if found is not None:
        assert seen_by(found, name).layers == layers
