"""Whatever a spec file holds, `courier feeds apply` reads valid feeds or says what is wrong.

The YAML is read (`courier.cli.specs.load`) and the `feeds` section validated as the
command does, without a database: the answer is feeds or a `SpecError` naming the
problem, never another exception (a traceback) and never a hang. A feed that is
accepted is stored as JSON and read back by the importer: it must read back the same.
"""

from __future__ import annotations

import re
import string
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import event, example, given
from hypothesis import strategies as st

from courier.cli import specs
from courier.importer.kinds import get_kind
from courier.importer.spec import KINDS, FeedSpec

FIELDS = sorted({f.name for kind in KINDS for f in get_kind(kind).fields})
# Values that sit on the edges of what the validators accept.
TIMEZONES = ["Europe/London", "UTC", "Mars/Olympus", "America", "../../etc/passwd", "a" * 300]
CRONS = ["0 6 * * 1-5", "* * *", "61 * * * *", "@daily", "", "0 0 31 2 *"]
TIMES = ["22:30", "25:00", "01:00-05:00", "01:00", "1:00 PM", "00:00+01:00", 1350]
PATTERNS = ["leave_*.csv", "{yyyy}{mm}{dd}.csv", "{", "{zz}.csv", "x}", "[a-", "*", ""]
FORMATS = ["%d/%m/%Y", "%", "%Q", "%Y", "%d/%m/%y", "%H:%M", "%Y\x00%m%d", "%d.%m.%Y"]
DOMAIN = [*TIMEZONES, *CRONS, *TIMES, *PATTERNS, *FORMATS, *KINDS, *FIELDS]
DOMAIN += ["+441234567890", "ops@example.com", "not-an-email", "pgp", "zip", "business"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.dates(),
    st.text(max_size=20),
    st.sampled_from(DOMAIN),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(string.ascii_lowercase + "_", max_size=12), inner, max_size=4),
    ),
    max_leaves=12,
)


def _near(keys: list[str]) -> st.SearchStrategy[dict[str, object]]:
    """A mapping with the right keys and any values: gets past "extra field" checks."""
    return st.dictionaries(st.sampled_from(keys), st.one_of(scalars, values), max_size=len(keys))


NESTED: dict[str, st.SearchStrategy[object]] = {
    "dialect": _near(["delimiter", "quotechar", "header"]),
    "full_sync_guard": _near(["max_delete_share", "min_records"]),
    "apply_window": st.one_of(st.sampled_from(TIMES), _near(["start", "end", "days", "timezone"])),
    "expect": _near(
        ["cron", "timezone", "days", "window_minutes", "warn_before_minutes", "skip_dates"]
    ),
    "hold_for_approval": st.one_of(scalars, _near(["live_days"])),
    "contacts": st.lists(_near(["name", "email", "phone"]), max_size=3),
    "columns": st.dictionaries(st.sampled_from(FIELDS), st.sampled_from([*FIELDS, "x"])),
    "formats": st.dictionaries(st.sampled_from(FIELDS), st.sampled_from(FORMATS)),
    "required": st.lists(st.sampled_from(FIELDS), max_size=3),
    "keys": st.lists(st.sampled_from(FIELDS), max_size=3),
    "ignore_columns": st.lists(st.text(max_size=10), max_size=3),
}
KEYS = [*FeedSpec.model_fields, "unknown_setting"]


@st.composite
def feed_items(draw: st.DrawFn) -> dict[str, object]:
    """Mostly a valid feed, with a few settings replaced by edge values."""
    item: dict[str, object] = {"name": "leave", "kind": "leave_balances", "pattern": "leave_*.csv"}
    for key in draw(st.lists(st.sampled_from(KEYS), max_size=4, unique=True)):
        item[key] = draw(st.one_of(NESTED.get(key, scalars), values))
    return item


@st.composite
def spec_documents(draw: st.DrawFn) -> bytes:
    rarely = st.integers(0, 9).map(lambda n: n == 5)  # 0 and 9 come up often
    doc: dict[str, object] = {"tenant": draw(scalars) if draw(rarely) else "acme"}
    doc["feeds"] = (
        draw(values) if draw(rarely) else draw(st.lists(feed_items(), min_size=1, max_size=3))
    )
    if draw(st.integers(0, 5)) == 3:
        doc[draw(st.sampled_from(["sources", "exports", "surprise"]))] = draw(values)
    text = yaml.safe_dump(doc, allow_unicode=draw(st.booleans()), sort_keys=False)
    if draw(st.integers(0, 4)) == 2:
        # A typo: one character inserted somewhere.
        at = draw(st.integers(0, len(text)))
        text = (
            text[:at]
            + draw(st.sampled_from([":", "-", " ", "\t", "'", "&", "*", "!", "{"]))
            + text[at:]
        )
    return text.encode()


@pytest.fixture(scope="module")
def spec_file() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder) / "acme.yaml"


def outcome(path: Path, data: bytes) -> list[FeedSpec] | specs.SpecError:
    path.write_bytes(data)
    try:
        _, sections = specs.load(path)
        return specs.validate_items(FeedSpec, sections.get("feeds", []), "feeds")
    except specs.SpecError as refused:
        return refused


def _assert_answered(path: Path, result: list[FeedSpec] | specs.SpecError) -> None:
    if isinstance(result, specs.SpecError):
        message = str(result).removeprefix(f"{path}: ")
        assert message.strip() and "Traceback" not in message
        # What was refused, so `--hypothesis-show-statistics` shows which checks were reached.
        where = re.sub(r"^(feeds: )?line \d+: ", "", message).split(":")[0]
        event("refused: " + ("not valid YAML" if "not valid YAML" in message else where))
        return
    event(f"accepted: {len(result)} feed(s)")
    for feed in result:
        stored = feed.model_dump(mode="json")
        assert FeedSpec.of_feed(feed.name, feed.kind, feed.pattern, stored) == feed


ALIAS_BOMB = b"tenant: acme\nfeeds: []\na0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + b"".join(
    b"a%d: &a%d [%s]\n" % (i, i, b", ".join([b"*a%d" % (i - 1)] * 10)) for i in range(1, 9)
)


@given(data=st.one_of(st.binary(max_size=500), st.text(max_size=300).map(str.encode)))
@example(data="tenant: café\nfeeds: []\n".encode("latin-1"))  # not UTF-8: was a traceback
@example(data=b"tenant: acme\nfeeds: " + b"[" * 3000 + b"]" * 3000)  # was a RecursionError
@example(data=ALIAS_BOMB)  # a hundred million values once expanded: was a hang
@example(data=b"tenant: acme\nfeeds: &x [*x]\n")
@example(data=b"? [a, b]\n: 1\n")
@example(data="\ufefftenant: acme\nfeeds: []\n".encode("utf-16"))
def test_any_file_gives_feeds_or_a_clear_error(spec_file: Path, data: bytes) -> None:
    _assert_answered(spec_file, outcome(spec_file, data))


@given(data=spec_documents())
def test_spec_shaped_files_give_feeds_or_a_clear_error(spec_file: Path, data: bytes) -> None:
    _assert_answered(spec_file, outcome(spec_file, data))
