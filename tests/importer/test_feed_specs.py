"""Feed YAML: a valid spec is stored whole; an invalid one is refused with its line and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from courier.cli import specs
from courier.importer.spec import FeedSpec

GOOD = """\
tenant: acme
feeds:
  - name: leave
    kind: leave_balances
    pattern: "leave_{yyyyMMdd}.csv"
    columns: {employee_id: "Personnel No"}
    formats: {as_of: "%d/%m/%Y"}
    mode: full_sync
    hold_for_approval: 2026-12-31
"""

BAD = """\
tenant: acme
feeds:
  - name: leave
    kind: leave_balances
    pattern: "leave_*.csv"
  - name: people
    kind: staff
    pattern: "staff_*.csv"
    columns: {employee: "Emp"}
    mode: mirror
"""


async def test_valid_feed_is_applied_with_every_option(db, tenant, tmp_path: Path) -> None:
    path = tmp_path / "acme.yaml"
    path.write_text(GOOD)
    _, sections = specs.load(path)
    [applied] = await specs.SECTIONS["feeds"](db, tenant, sections["feeds"])
    assert applied == "feed acme/leave (leave_balances, leave_{yyyyMMdd}.csv) applied"
    from courier.importer.apply import spec_of
    from courier.importer.ordering import enabled_feeds

    async with db.session() as s:
        [feed] = await enabled_feeds(s, tenant.id)
    spec = spec_of(feed)
    assert (spec.mode, spec.header_for("employee_id"), str(spec.hold_for_approval)) == (
        "full_sync", "Personnel No", "2026-12-31",
    )  # fmt: skip


async def test_invalid_feed_is_refused_with_line_and_reason(db, tenant, tmp_path: Path) -> None:
    path = tmp_path / "acme.yaml"
    path.write_text(BAD)
    _, sections = specs.load(path)
    with pytest.raises(specs.SpecError) as refused:
        await specs.SECTIONS["feeds"](db, tenant, sections["feeds"])
    message = str(refused.value)
    assert message.startswith("feeds: line 6: ")
    assert "mode: Input should be 'upsert' or 'full_sync'" in message


def test_unknown_mapped_field_and_bad_key_are_named() -> None:
    with pytest.raises(ValueError, match="columns: unknown field\\(s\\) employee for kind staff"):
        FeedSpec(name="x", kind="staff", pattern="s.csv", columns={"employee": "E"})
    with pytest.raises(ValueError, match="keys: \\['code'\\] is not a key of leave_balances"):
        FeedSpec(name="x", kind="leave_balances", pattern="l.csv", keys=["code"])
