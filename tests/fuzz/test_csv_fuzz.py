"""Whatever a partner's file holds, the reader gives rows or a named refusal, never a crash.

Every input either reads as rows (each one typed values or its own error message) or is
refused whole with a `FileRejected` reason the partner is shown. Any other exception
would fail the import with a traceback instead of telling the partner what to fix.
"""

from __future__ import annotations

import codecs
import io
import string

from hypothesis import event, example, given
from hypothesis import strategies as st

from courier.importer import rows
from courier.importer.decode import Decoder, FileRejected
from courier.importer.spec import FeedSpec

SPECS = {
    "leave": FeedSpec.model_validate(
        {"name": "leave", "kind": "leave_balances", "pattern": "leave_*.csv"}
    ),
    "leave, European": FeedSpec.model_validate(
        {
            "name": "leave-eu",
            "kind": "leave_balances",
            "pattern": "leave_*.csv",
            "dialect": {"delimiter": ";", "quotechar": "'"},
            "decimal_separator": ",",
            "formats": {"as_of": "%d/%m/%Y"},
            "encoding": "windows-1252",
            "columns": {"balance_hours": "Stunden"},
        }
    ),
    "leave, UTF-16": FeedSpec.model_validate(
        {"name": "leave-16", "kind": "leave_balances", "pattern": "*", "encoding": "utf-16"}
    ),
    "staff, short lines": FeedSpec.model_validate(
        {
            "name": "staff",
            "kind": "staff",
            "pattern": "staff_*.csv",
            "max_line_chars": 1024,
            "ignore_columns": ["notes"],
            "dialect": {"delimiter": "\t"},
        }
    ),
    "locations": FeedSpec.model_validate(
        {"name": "sites", "kind": "locations", "pattern": "*.csv", "dialect": {"delimiter": "|"}}
    ),
}
_PYTHON_CODECS = {"utf-8": "utf-8", "windows-1252": "cp1252", "utf-16": "utf-16-le"}

# Cells that sit on the edges of the typed fields' rules.
EDGE_CELLS = [
    "", " ", '"', "'", '""', "=1+1", "-1", "+1", "1e9999", "1E-999999999", "NaN", "-Infinity",
    "-0", "0.005", "1,5", "1.000,50", "9999999999.99", "10000000000", "12345678901234567890",
    "2026-02-30", "2026-11-01", "01/11/2026", "31/02/2026", "2026-11-01T00:00", "a@b.co",
    "not an email", "active", "terminated", "x" * 1500, "\u2028", "\r", "\n", "\ufeff", "é€",
]  # fmt: skip
cells = st.one_of(
    st.sampled_from(EDGE_CELLS),
    st.text(max_size=24),
    st.from_regex(r"-?\d{1,14}([.,]\d{0,4})?", fullmatch=True),
)


def outcome(data: bytes, spec: FeedSpec) -> list[rows.Row] | FileRejected:
    """The import's reading of a file, as the row-wise path does it (no database)."""
    try:
        decoder = Decoder(io.BytesIO(data), spec.encoding, spec.max_line_chars)
        layout, records = rows.read(spec, decoder.lines())
        checker = rows.RowChecker(spec, layout, {})
        return [checker.check(number, found) for number, found in records]
    except FileRejected as refused:
        return refused


def _assert_answered(result: list[rows.Row] | FileRejected) -> None:
    if isinstance(result, FileRejected):
        assert isinstance(result.reason, str) and result.reason.strip()
        # The reason's first words, so `--hypothesis-show-statistics` shows what was reached.
        event("refused: " + " ".join(result.reason.split()[:2]))
        return
    good = any(row.error is None for row in result)
    errored = any(row.error is not None for row in result)
    event(f"read: {'some' if good else 'no'} good rows, {'some' if errored else 'no'} errored")
    numbers = [row.number for row in result]
    assert numbers == sorted(set(numbers)) and all(n >= 2 for n in numbers)
    for row in result:
        if row.error is None:
            assert row.values is not None and row.key is not None
        else:
            assert row.values is None and row.error.strip()


_WORDS = st.text(string.ascii_letters + string.digits + "é-", min_size=1, max_size=12)


def _valid(spec: FeedSpec, header: str) -> st.SearchStrategy[str]:
    """Values the feed accepts in this column (anything, for a column it does not know)."""
    by_header = {spec.header_for(f.name): f for f in spec.kind_def.fields}
    f = by_header.get(header)
    if f is None:
        return cells
    if f.type == "decimal":
        numbers = st.decimals(-(10**9), 10**9, places=f.scale).map(str)
        return numbers.map(lambda n: n.replace(".", spec.decimal_separator))
    if f.type == "date":
        fmt = spec.formats.get(f.name, "%Y-%m-%d")
        return st.dates().map(lambda d: d.strftime(fmt))
    if f.type == "choice":
        return st.sampled_from(f.choices)
    if f.type == "email":
        return st.builds("{}@{}.com".format, _WORDS, _WORDS)
    return _WORDS


@st.composite
def csv_files(draw: st.DrawFn, spec: FeedSpec) -> bytes:
    """A file shaped like the feed's: its header (or a damaged one), rows of edge cells,
    random quoting and line endings, in the feed's encoding (sometimes mangled)."""
    expected = [spec.header_for(f.name) for f in spec.kind_def.fields]
    damaged = st.lists(st.sampled_from([*expected, "notes", "extra", ""]), max_size=12)
    header = draw(
        st.one_of(st.just(expected), st.permutations(expected), damaged, st.just(expected))
    )
    plausible = st.tuples(*[_valid(spec, name) for name in header]).map(list)
    body = draw(
        st.lists(st.one_of(plausible, st.lists(cells, max_size=len(header) + 2)), max_size=10)
    )
    delimiter, quote = spec.dialect.delimiter, spec.dialect.quotechar

    def cell(text: str) -> str:
        if draw(st.integers(0, 3)) == 2:
            return quote + text.replace(quote, quote * 2) + quote
        return text

    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    lines = [delimiter.join(cell(c) for c in line) for line in [header, *body]]
    text = newline.join(lines) + draw(st.sampled_from(["", newline, newline * 2]))
    data = text.encode(_PYTHON_CODECS[spec.encoding], "replace")
    bom = {"utf-8": codecs.BOM_UTF8, "utf-16": codecs.BOM_UTF16_LE}.get(spec.encoding, b"")
    if spec.encoding == "utf-16" or draw(st.booleans()):
        data = bom + data
    if draw(st.integers(0, 4)) == 2:
        # A byte lost or flipped in transit.
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        data = data[:at] + draw(st.binary(max_size=2)) + data[at + 1 :]
    return data


spec_names = st.sampled_from(list(SPECS))


@given(name=spec_names, data=st.binary(max_size=2000))
@example(name="leave", data=b"\xef\xbb\xbf")
@example(name="leave, UTF-16", data=b"\xff\xfe\x00")
@example(name="leave, UTF-16", data=b"\xff\xfea\x00\x00\x00")
@example(name="leave", data=b'employee_id,leave_type,balance_hours,as_of\n"E1')
def test_arbitrary_bytes_give_rows_or_a_named_refusal(name: str, data: bytes) -> None:
    _assert_answered(outcome(data, SPECS[name]))


@given(data=st.data(), name=spec_names)
def test_csv_shaped_files_give_rows_or_a_named_refusal(data: st.DataObject, name: str) -> None:
    spec = SPECS[name]
    _assert_answered(outcome(data.draw(csv_files(spec)), spec))


@given(data=st.data())
def test_a_well_formed_leave_file_reads_every_row(data: st.DataObject) -> None:
    """The fuzzer's own files are readable when nothing is damaged: no false refusals."""
    spec = SPECS["leave"]
    count = data.draw(st.integers(1, 8))
    lines = ["employee_id,leave_type,balance_hours,as_of"] + [
        f"E{i},{data.draw(st.sampled_from(['annual', 'sick', 'congé']))},"
        f"{data.draw(st.decimals(-9999, 9999, places=2))},2026-11-01"
        for i in range(count)
    ]
    result = outcome(("\n".join(lines) + "\n").encode(), spec)
    assert not isinstance(result, FileRejected), result.reason
    assert [row.error for row in result] == [None] * count
