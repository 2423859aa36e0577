"""The import audit pages: the list and its filters, an import's records by keyset,
old → new and errors, held imports approved or rejected from the page, and isolation."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from courier.common import decisions
from courier.common.db.models import Import
from courier.common.db.models_console import ConsoleAuditEntry
from tests.support.console import api_client, make_token, make_user, sign_in
from tests.support.fixtures_data import leave_csv
from tests.support.staged import staged

ROW = re.compile(r'<tr class="record (\w+)">\s*<td class="num">(\d+|—)</td>')


def shown_rows(html: str) -> list[tuple[str, int]]:
    """(action, row number) of each record the page shows, top to bottom."""
    return [(action, 0 if n == "—" else int(n)) for action, n in ROW.findall(html)]


def link(html: str, rel: str) -> str:
    found = re.search(rf'<a href="([^"]+)" rel="{rel}"', html)
    assert found, f"the page has no {rel} link"
    return found.group(1).replace("&amp;", "&")


@pytest.fixture
async def leave(feed) -> None:
    await feed("leave", "leave_balances", "leave_*.csv")


async def test_list_filters_by_tenant_feed_status_and_date(
    db, app, tenant, other_tenant, feed, leave, send
) -> None:
    await feed("roles", "roles", "roles_*.csv")
    await feed("leave", "leave_balances", "leave_*.csv", to=other_tenant)
    await send("leave_1.csv", leave_csv("E1,annual,8,2026-11-01"))
    await send("leave_2.csv", leave_csv("E2,annual,x,2026-11-01"))
    await send("roles_1.csv", b"code,name\nNURSE,Nurse\n")
    await send("leave_globex.csv", leave_csv("G1,annual,1,2026-11-01"), to=other_tenant)
    await make_user(db, "sam", "support")
    today = datetime.now(UTC).date()
    async with api_client(app) as http:
        await sign_in(http, "sam")

        async def files(**params: str) -> set[str]:
            page = await http.get("/imports", params=params)
            assert page.status_code == 200
            return set(re.findall(r'<a href="/imports/[0-9a-f-]+">([^<]+\.csv)</a>', page.text))

        everything = {"leave_1.csv", "leave_2.csv", "roles_1.csv", "leave_globex.csv"}
        assert await files() == everything
        assert await files(tenant="globex") == {"leave_globex.csv"}
        assert await files(tenant="acme", feed="leave") == {"leave_1.csv", "leave_2.csv"}
        assert await files(status="completed_with_errors") == {"leave_2.csv"}
        assert await files(received_from=str(today), received_to=str(today)) == everything
        assert await files(received_from=str(today + timedelta(days=1))) == set()
        assert await files(received_to=str(today - timedelta(days=1))) == set()
        # An untouched form sends empty fields: they mean "any".
        assert await files(tenant="", feed="", status="", received_from="") == everything

        # The first page polls its rows, keeping the filters, so new files appear.
        page = (await http.get("/imports", params={"tenant": "acme"})).text
        assert 'hx-get="/imports/rows?tenant=acme"' in page and 'hx-trigger="every 5s"' in page
        await send("leave_3.csv", leave_csv("E3,annual,2,2026-11-01"))
        rows = await http.get("/imports/rows", params={"tenant": "acme"})
        assert rows.text.lstrip().startswith('<tbody id="import-rows"')
        assert "leave_3.csv" in rows.text and "leave_globex.csv" not in rows.text


async def test_list_shows_counts_per_action_and_pages(db, app, leave, send) -> None:
    for n in range(52):
        await send(f"leave_{n:02d}.csv", leave_csv(f"E{n},annual,{n},2026-11-01"))
    imp = await send(
        "leave_mixed.csv", leave_csv("E1,annual,2,2026-11-01", "E9,annual,x,2026-11-01")
    )
    await make_user(db, "ann", "admin")
    async with api_client(app) as http:
        await sign_in(http, "ann")
        first = (await http.get("/imports")).text
        row = re.search(rf'<a href="/imports/{imp.id}">leave_mixed.csv</a>.*?</tr>', first, re.S)
        assert row, "the newest file heads the list"
        counts = re.findall(r'<td class="num">([\d,]+)</td>', row.group(0))
        # created, updated, deleted, unchanged, errored
        assert counts == ["0", "1", "0", "0", "1"]
        assert first.count('<a href="/imports/') == 2 * 50
        second = (await http.get(link(first, "next"))).text
        assert second.count('<a href="/imports/') == 2 * 3
        assert "every 5s" not in second  # only the first page polls


async def test_records_page_by_keyset_and_filter_by_action(db, app, leave, send) -> None:
    # Rows 2..131; every tenth one has a bad number.
    lines = [f"E{n},annual,{'x' if n % 10 == 0 else n},2026-11-01" for n in range(130)]
    imp = await send("leave_big.csv", leave_csv(*lines))
    assert (imp.created, imp.errored) == (117, 13)
    await make_user(db, "ann", "admin")
    async with api_client(app) as http:
        await sign_in(http, "ann")
        url = f"/imports/{imp.id}"
        first = (await http.get(url)).text
        assert [n for _, n in shown_rows(first)] == list(range(2, 52))
        assert 'rel="prev"' not in first
        second = (await http.get(link(first, "next"))).text
        assert [n for _, n in shown_rows(second)] == list(range(52, 102))
        back = (await http.get(link(second, "prev"))).text
        assert shown_rows(back) == shown_rows(first)
        last = (await http.get(link(first, "last"))).text
        assert [n for _, n in shown_rows(last)] == list(range(82, 132))
        assert 'rel="next"' not in last

        errored = (await http.get(url, params={"action": "errored"})).text
        assert shown_rows(errored) == [("errored", n) for n in range(2, 132, 10)]
        assert "(13)" in errored  # the total, from the import's counts

        jump = (await http.get(url, params={"row": 100, "action": "created"})).text
        assert [n for _, n in shown_rows(jump)][:3] == [100, 101, 103]
        assert {a for a, _ in shown_rows(jump)} == {"created"}

        # The API pages the same way.
        token = await make_token(db, "support")
    async with api_client(app, token) as api:
        body = (await api.get(f"/api/imports/{imp.id}", params={"limit": 60})).json()
        assert body["records_total"] == 130 and len(body["records"]) == 60
        more = await api.get(
            f"/api/imports/{imp.id}", params={"limit": 60, "after": body["next_after"]}
        )
        assert more.json()["records"][0]["row_number"] == 62
        assert (await api.get(f"/api/imports/{imp.id}", params={"after": "x"})).status_code == 422


async def test_changes_show_old_and_new_and_errors_show_row_and_reason(
    db, app, leave, send
) -> None:
    await send("leave_1.csv", leave_csv("E1,annual,8,2026-11-01", "E2,annual,5,2026-11-01"))
    imp = await send(
        "leave_2.csv",
        leave_csv("E1,annual,9,2026-11-01", "E2,annual,forty,2026-11-01", "E3,sick,<b>1</b>,x"),
    )
    await make_user(db, "ann", "admin")
    async with api_client(app) as http:
        await sign_in(http, "ann")
        page = (await http.get(f"/imports/{imp.id}")).text
    assert '<span class="old">8.00</span> → <span class="new">9.00</span>' in page
    assert "Row 3: balance_hours: &#39;forty&#39; is not a number" in page
    # Partner text is escaped, never markup.
    assert "<b>1</b>" not in page and "&lt;b&gt;1&lt;/b&gt;" in page
    assert f'href="/imports/{imp.id}/errors.csv"' in page
    assert f'href="/imports/{imp.id}/result"' in page


async def test_duplicate_links_to_the_import_it_repeats(db, app, leave, send) -> None:
    data = leave_csv("E1,annual,8,2026-11-01")
    original = await send("leave_1.csv", data)
    again = await send("leave_1_again.csv", data)
    assert again.status == "duplicate"
    await make_user(db, "ann", "admin")
    async with api_client(app) as http:
        await sign_in(http, "ann")
        page = (await http.get(f"/imports/{again.id}")).text
    assert f'<a href="/imports/{original.id}">leave_1.csv</a>' in page


@pytest.fixture
async def held(feed) -> None:
    await feed("leave", "leave_balances", "leave_*.csv", hold_for_approval=True)


@pytest.mark.parametrize("decision", ["approve", "reject"])
async def test_staff_decide_a_held_import_from_its_page(db, app, held, send, decision) -> None:
    imp = await send("leave_1.csv", leave_csv("E1,annual,8,2026-11-01", "E2,annual,x,2026-11-01"))
    assert imp.status == "awaiting_approval"
    await make_user(db, "sam", "support")
    async with api_client(app) as http:
        csrf = await sign_in(http, "sam")
        page = (await http.get(f"/imports/{imp.id}")).text
        # The preview is the change set itself.
        assert shown_rows(page) == [("created", 2), ("errored", 3)]
        assert f'action="/imports/{imp.id}/approve"' in page
        answer = await http.post(f"/imports/{imp.id}/{decision}", data={"csrf": csrf})
        assert answer.status_code == 303
        after = (await http.get(answer.headers["location"])).text
    verb = "approval" if decision == "approve" else "rejection"
    assert f"{verb} sent; the importer applies it" in after
    assert f"{decision.capitalize()} asked by sam" in after
    async with db.session() as s:
        current = await s.get(Import, imp.id)
        assert current is not None
        [pending] = await decisions.pending(s, current)
        [entry] = await s.scalars(
            select(ConsoleAuditEntry).where(ConsoleAuditEntry.action == f"import.{decision}")
        )
    assert (pending.decision, pending.by) == (decision, "sam")
    assert (entry.actor, entry.role, entry.target_id) == ("sam", "support", str(imp.id))
    [command] = await staged(db, "courier.import.decide")
    assert (command.import_id, command.by) == (imp.id, "sam")  # type: ignore[attr-defined]


async def test_api_decision_is_made_in_the_viewers_name(db, app, held, send) -> None:
    imp = await send("leave_1.csv", leave_csv("E1,annual,8,2026-11-01"))
    token = await make_token(db, "admin", name="night-shift")
    async with api_client(app, token) as api:
        answer = await api.post(f"/api/imports/{imp.id}/approve", json={"by": "somebody else"})
        assert answer.status_code == 202, answer.text
        again = await api.post(f"/api/imports/{imp.id}/reject")
        assert again.status_code == 202
    [first, second] = await staged(db, "courier.import.decide")
    assert first.by == second.by == "token:night-shift"  # type: ignore[attr-defined]


async def test_a_decision_the_importer_would_refuse_comes_back_as_a_problem(
    db, app, leave, send
) -> None:
    imp = await send("leave_1.csv", leave_csv("E1,annual,8,2026-11-01"))
    await make_user(db, "sam", "support")
    async with api_client(app) as http:
        csrf = await sign_in(http, "sam")
        answer = await http.post(f"/imports/{imp.id}/approve", data={"csrf": csrf})
        shown = (await http.get(answer.headers["location"])).text
    assert "is completed, not awaiting approval" in shown
    assert await staged(db, "courier.import.decide") == []


async def test_customer_sees_the_preview_but_cannot_decide(db, app, tenant, held, send) -> None:
    imp = await send("leave_1.csv", leave_csv("E1,annual,8,2026-11-01"))
    await make_user(db, "cara", "customer", "acme")
    token = await make_token(db, "customer", "acme")
    async with api_client(app) as http:
        csrf = await sign_in(http, "cara")
        page = (await http.get(f"/imports/{imp.id}")).text
        assert shown_rows(page) == [("created", 2)]
        assert "/approve" not in page and "/reject" not in page
        for decision in ("approve", "reject"):
            posted = await http.post(f"/imports/{imp.id}/{decision}", data={"csrf": csrf})
            assert posted.status_code == 403
    async with api_client(app, token) as api:
        assert (await api.post(f"/api/imports/{imp.id}/approve")).status_code == 403
    assert await staged(db, "courier.import.decide") == []


async def test_customer_of_another_tenant_gets_404_everywhere(
    db, app, tenant, other_tenant, leave, send
) -> None:
    imp = await send("leave_1.csv", leave_csv("E1,annual,8,2026-11-01", "E2,annual,x,2026-11-01"))
    await make_user(db, "gus", "customer", "globex")
    token = await make_token(db, "customer", "globex")
    urls = [
        f"/imports/{imp.id}",
        f"/imports/{imp.id}/file",
        f"/imports/{imp.id}/errors.csv",
        f"/imports/{imp.id}/result",
        f"/api/imports/{imp.id}",
        f"/api/imports/{imp.id}/file",
        f"/api/imports/{imp.id}/errors.csv",
        f"/api/imports/{imp.id}/result",
    ]
    async with api_client(app) as http:
        await sign_in(http, "gus")
        for url in urls:
            assert (await http.get(url)).status_code == 404, url
        listing = (await http.get("/imports", params={"tenant": "acme"})).text
        assert "leave_1.csv" not in listing
    async with api_client(app, token) as api:
        for url in urls:
            assert (await api.get(url)).status_code == 404, url
        assert (await api.get("/api/imports", params={"tenant": "acme"})).json() == []
    async with db.session() as s:
        downloads = list(
            await s.scalars(select(ConsoleAuditEntry).where(ConsoleAuditEntry.action == "download"))
        )
    assert downloads == []
