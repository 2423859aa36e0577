"""`courier tenants calendar`: support sets a tenant's public holidays and closures and
sees the days off every business-day window and schedule will skip."""

from __future__ import annotations

import json

import pytest

from courier.common.db.models import Tenant
from courier.common.settings import Settings
from tests.support.cli import cli_env, courier

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


async def test_a_holiday_calendar_and_a_closure_are_set_and_the_coming_days_off_listed(
    settings: Settings, tenant: Tenant
) -> None:
    env = cli_env(settings, COLUMNS="200")
    code, out = await courier(
        env,
        "tenants",
        "calendar",
        "acme",
        "--country",
        "gb",
        "--subdivision",
        "eng",
        "--close",
        "2026-12-24",
        "--from",
        "2026-12-01",
        "--days",
        "45",
    )
    assert code == 0, out
    assert "tenant acme (Europe/London): public holidays of GB-ENG; closures: 2026-12-24" in out
    assert (
        "2026-12-24 Thu closure 2026-12-25 Fri Christmas Day 2026-12-26 Sat Boxing Day "
        "2026-12-28 Mon Boxing Day (observed) 2027-01-01 Fri New Year's Day"
    ) in out

    code, out = await courier(env, "tenants", "show", "acme")
    assert code == 0, out
    assert "calendar: public holidays of GB-ENG; closures: 2026-12-24" in out


async def test_reopening_a_closure_and_json_for_scripts(settings: Settings, tenant: Tenant) -> None:
    env = cli_env(settings)
    await courier(env, "tenants", "calendar", "acme", "--country", "GB", "--close", "2026-12-24")
    code, out = await courier(
        env,
        "tenants",
        "calendar",
        "acme",
        "--reopen",
        "2026-12-24",
        "--close",
        "2027-01-04",
        "--from",
        "2026-12-20",
        "--days",
        "20",
        "--json",
    )
    assert code == 0, out
    view = json.loads(out)
    assert view["country"] == "GB" and view["subdivision"] is None
    assert view["closures"] == ["2027-01-04"]
    assert [(d["date"], d["why"]) for d in view["upcoming"]] == [
        ("2026-12-25", "Christmas Day"),
        ("2026-12-26", "Boxing Day"),
        ("2026-12-28", "Boxing Day (observed)"),
        ("2027-01-01", "New Year's Day"),
        ("2027-01-04", "closure"),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--country", "XX"),
            "error: unknown holiday country 'XX': use an ISO 3166 code such as GB, US, DE",
        ),
        (
            ("--country", "GB", "--subdivision", "LDN"),
            "error: unknown subdivision 'LDN' of GB (known: ENG, NIR, SCT, WLS)",
        ),
        (("--subdivision", "ENG"), "error: a subdivision needs a country"),
        (("--close", "24/12/2026"), "error: '24/12/2026' is not a date: use YYYY-MM-DD"),
    ],
)
async def test_a_wrong_code_or_date_gets_one_line_and_changes_nothing(
    settings: Settings, tenant: Tenant, args: tuple[str, ...], message: str
) -> None:
    env = cli_env(settings)
    code, out = await courier(env, "tenants", "calendar", "acme", *args)
    assert (code, out) == (1, message)
    code, out = await courier(env, "tenants", "show", "acme")
    assert "calendar: no public holidays; closures: none" in out
