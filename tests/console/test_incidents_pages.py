"""Incident pages: live SLA countdowns, history, who was told, and on-call's actions sent
to the monitor as commands and audited; a customer reads their tenant's incidents only;
the link in an incident e-mail opens the incident after sign-in."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from urllib.parse import unquote, urlsplit

from fastapi import FastAPI
from sqlalchemy import select

from courier.common.db.base import utcnow
from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.db.models_console import ConsoleAuditEntry
from courier.common.db.models_incidents import Notification, SlaPolicy
from courier.common.events import IncidentAct
from courier.common.settings import Settings
from courier.common.storage import Storage
from courier.common.uow import UnitOfWork
from courier.monitor import actions
from courier.monitor.incidents import Signal, record_signals
from courier.notifier.deliver import route_notices
from tests.support.console import PASSWORD, api_client, csrf_of, make_token, make_user, sign_in
from tests.support.incidents import act
from tests.support.paging import announced
from tests.support.staged import staged
from tests.support.tenant_objects import open_incident

_CLOCK = re.compile(
    r'<span class="countdown( breached)?" data-due="([^"]+)" data-late="[^"]*"'
    r"( data-stopped)?[^>]*>([^<]*)</span>"
)


async def _platform_incident(db: Database, tenant: Tenant, opened: datetime) -> uuid.UUID:
    """An import that failed at `opened`: a platform incident, resolve within 6 h."""
    signal = Signal(
        kind="import_failed",
        cause_key=f"{tenant.id}|{uuid.uuid4()}",
        event_key=f"test:{uuid.uuid4()}",
        summary="import of leave_1.csv failed: disk full",
        tenant_id=tenant.id,
        tenant=tenant.slug,
        file_name="leave_1.csv",
    )
    async with db.transaction() as s:
        (incident,) = await record_signals(s, [signal], opened, SlaPolicy())
    return incident.id


def _clocks(html: str) -> list[tuple[datetime, bool, bool, str]]:
    """(due, shown breached, stopped, text) of each countdown on a page."""
    return [
        (datetime.fromisoformat(due), bool(late), bool(stopped), text)
        for late, due, stopped, text in _CLOCK.findall(html)
    ]


async def _carry_out(db: Database, storage: Storage) -> None:
    """What the monitor does with each command the console staged (once each)."""
    for command in await staged(db, IncidentAct.subject):
        assert isinstance(command, IncidentAct)
        await actions.act(command, UnitOfWork(db, storage), SlaPolicy())


async def _audit(db: Database) -> list[tuple[str, str, str | None]]:
    async with db.session() as s:
        rows = await s.scalars(
            select(ConsoleAuditEntry)
            .where(ConsoleAuditEntry.action.like("incident.%"))
            .order_by(ConsoleAuditEntry.at)
        )
        return [(e.actor, e.action, e.target_id) for e in rows]


async def test_each_sla_timer_shows_its_due_time_and_a_live_countdown(
    db: Database, storage: Storage, app: FastAPI, tenant: Tenant
) -> None:
    now = utcnow()
    # Opened seven hours ago: its 6-hour resolve clock is an hour past due.
    late = await _platform_incident(db, tenant, now - timedelta(hours=7))
    # A partner incident: the contact clock runs; a partner's reply starts the reply clock.
    partner = await open_incident(db, tenant, "wrong_name.csv")
    await act(db, storage, partner, "note", now, "ana", "Jo called back", "partner_response")
    await make_user(db, "sue", "support")
    async with api_client(app) as http:
        await sign_in(http, "sue")
        late_page = (await http.get(f"/incidents/{late}")).text
        partner_page = (await http.get(f"/incidents/{partner}")).text
        script = await http.get("/static/console.js")

    [(due, breached, stopped, text)] = _clocks(late_page)
    assert due == now - timedelta(hours=1)
    assert (breached, stopped) == (True, False)
    assert text.startswith("breached 1h 00m") and text.endswith("ago")
    assert "Resolve" in late_page

    clocks = _clocks(partner_page)
    assert len(clocks) == 2
    assert all(
        not breached and not stopped and text.endswith(" left")
        for _, breached, stopped, text in clocks
    )
    contact, reply = sorted(due for due, *_ in clocks)
    # 6 hours to contact the partner from opening; 24 to reply from their response.
    assert abs(contact - (now + timedelta(hours=6))) < timedelta(minutes=1)
    assert reply == now + timedelta(hours=24)
    assert "Contact the partner" in partner_page and "Reply to the partner" in partner_page
    assert "Jo called back" in partner_page  # the history

    # The page loads the script that ticks every countdown, served by the console.
    assert '<script src="/static/console.js" defer></script>' in partner_page
    assert script.status_code == 200 and "data-due" in script.text


async def test_support_acknowledges_notes_and_resolves_from_the_page_and_each_is_audited(
    db: Database, storage: Storage, app: FastAPI, tenant: Tenant
) -> None:
    incident = await _platform_incident(db, tenant, utcnow())
    await make_user(db, "sue", "support")
    page = f"/incidents/{incident}"
    async with api_client(app) as http:
        await sign_in(http, "sue")
        csrf = csrf_of((await http.get(page)).text)

        # A form without its CSRF token is refused and sends nothing.
        assert (await http.post(f"{page}/ack")).status_code == 403
        assert await staged(db, IncidentAct.subject) == []

        acked = await http.post(f"{page}/ack", data={"csrf": csrf})
        assert acked.status_code == 303
        assert urlsplit(acked.headers["location"]).path == page
        shown = (await http.get(acked.headers["location"])).text
        assert "acknowledgement sent; the monitor carries it out" in shown
        assert "Waiting for the monitor" in shown  # not carried out yet
        [command] = await staged(db, IncidentAct.subject)
        assert isinstance(command, IncidentAct)
        assert (command.incident_id, command.action, command.by) == (incident, "ack", "sue")

        await _carry_out(db, storage)
        shown = (await http.get(page)).text
        assert '<span class="badge acknowledged">acknowledged</span>' in shown
        assert f'action="{page}/ack"' not in shown  # nothing left to acknowledge
        assert "Waiting for the monitor" not in shown

        # Acknowledging again is refused with the reason, on the page.
        again = await http.post(f"{page}/ack", data={"csrf": csrf})
        shown = (await http.get(again.headers["location"])).text
        assert "only open ones are acknowledged" in shown

        noted = await http.post(
            f"{page}/notes", data={"csrf": csrf, "text": "freed space on <the> volume"}
        )
        assert noted.status_code == 303
        resolved = await http.post(f"{page}/resolve", data={"csrf": csrf, "note": "re-imported"})
        assert resolved.status_code == 303
        await _carry_out(db, storage)
        shown = (await http.get(page)).text

    assert '<span class="badge resolved">resolved</span>' in shown
    assert "freed space on &lt;the&gt; volume" in shown  # partner-free, but still escaped
    history = shown[shown.index("<h2>History</h2>") :]
    assert history.index("disk full") < history.index("acknowledged")
    assert (
        history.index("acknowledged") < history.index("freed space") < history.index("re-imported")
    )
    [(_, _, stopped, text)] = _clocks(shown)
    assert stopped and "before the deadline" in text
    assert await _audit(db) == [
        ("sue", "incident.ack", str(incident)),
        ("sue", "incident.note", str(incident)),
        ("sue", "incident.resolve", str(incident)),
    ]


async def test_a_customer_reads_their_tenants_incidents_only_and_cannot_act(
    db: Database, app: FastAPI, tenant: Tenant, other_tenant: Tenant
) -> None:
    ours = await open_incident(db, tenant, "wrong_acme.csv")
    theirs = await open_incident(db, other_tenant, "wrong_globex.csv")
    await make_user(db, "carla", "customer", "acme")
    token = await make_token(db, "customer", "acme", name="carla-robot")
    async with api_client(app) as http, api_client(app, token) as robot:
        csrf = await sign_in(http, "carla")
        listed = (await http.get("/incidents")).text
        assert "wrong_acme.csv" in listed and "wrong_globex.csv" not in listed
        # Naming the other tenant in the filter is no way round: the scope is in the query.
        asked = (await http.get("/incidents", params={"tenant": "globex", "state": "all"})).text
        assert "wrong_globex.csv" not in asked and "wrong_acme.csv" in asked

        own = await http.get(f"/incidents/{ours}")
        assert own.status_code == 200 and "wrong_acme.csv" in own.text
        assert "/ack" not in own.text and "/resolve" not in own.text and "/notes" not in own.text
        foreign = await http.get(f"/incidents/{theirs}")
        missing = await http.get(f"/incidents/{uuid.uuid4()}")
        assert foreign.status_code == missing.status_code == 404
        assert "wrong_globex" not in foreign.text

        api = (await robot.get("/api/incidents", params={"state": "all"})).json()
        assert [i["id"] for i in api] == [str(ours)]
        assert (await robot.get(f"/api/incidents/{theirs}")).status_code == 404
        assert (await robot.get(f"/api/incidents/{ours}")).status_code == 200

        # Reading is all a customer does, on their own incident as on any other.
        for incident in (ours, theirs):
            for action, form in (("ack", {}), ("resolve", {}), ("notes", {"text": "hi"})):
                page = await http.post(
                    f"/incidents/{incident}/{action}", data={"csrf": csrf, **form}
                )
                assert page.status_code == 403, (incident, action)
                api_answer = await robot.post(f"/api/incidents/{incident}/{action}", json=form)
                assert api_answer.status_code == 403, (incident, action)
    assert await staged(db, IncidentAct.subject) == []
    assert await _audit(db) == []


async def test_the_api_acts_as_the_token_whoever_the_body_names(
    db: Database, app: FastAPI, tenant: Tenant
) -> None:
    incident = await _platform_incident(db, tenant, utcnow())
    token = await make_token(db, "support", name="ops-bot")
    async with api_client(app, token) as robot:
        answer = await robot.post(f"/api/incidents/{incident}/ack", json={"by": "someone-else"})
        assert answer.status_code == 202, answer.text
        noted = await robot.post(
            f"/api/incidents/{incident}/notes",
            json={"text": "called Jo", "kind": "contacted", "author": "someone-else"},
        )
        assert noted.status_code == 202, noted.text
        shown = (await robot.get(f"/api/incidents/{incident}")).json()
    assert [(p["action"], p["by"]) for p in shown["pending_actions"]] == [
        ("ack", "token:ops-bot"),
        ("note", "token:ops-bot"),
    ]
    assert await _audit(db) == [
        ("token:ops-bot", "incident.ack", str(incident)),
        ("token:ops-bot", "incident.note", str(incident)),
    ]


async def test_the_link_in_an_incident_email_opens_the_incident_after_sign_in(
    db: Database, app: FastAPI, settings: Settings, tenant: Tenant
) -> None:
    incident = await open_incident(db, tenant, "wrong_name.csv")
    # The notifier plans the e-mail to the feed's contacts as it does for every notice.
    for ids in await announced(db):
        await route_notices(db, utcnow(), None, settings, ids)
    async with db.session() as s:
        [mail] = await s.scalars(select(Notification).where(Notification.channel == "email"))
    [link] = re.findall(r"https?://\S+/incidents/\S+", mail.body)
    assert link == f"{settings.console_base_url}/incidents/{incident}"
    await make_user(db, "sue", "support")

    async with api_client(app) as browser:
        # Signed out, the link leads to sign-in, which remembers where it was going.
        first = await browser.get(urlsplit(link).path)
        assert first.status_code == 303
        signin_page = await browser.get(first.headers["location"])
        [target] = re.findall(r'name="next" value="([^"]+)"', signin_page.text)
        assert unquote(target) == f"/incidents/{incident}"
        signed = await browser.post(
            "/signin", data={"username": "sue", "password": PASSWORD, "next": target}
        )
        assert signed.status_code == 303 and signed.headers["location"] == f"/incidents/{incident}"
        landed = await browser.get(signed.headers["location"])

    assert landed.status_code == 200
    assert "file wrong_name.csv rejected" in landed.text
    # Who was told, by name: never their address.
    assert "Payroll IT" in landed.text and mail.recipient not in landed.text
