"""People acknowledge, resolve and annotate incidents from the console or the CLI; the
monitor carries each action out once, even when it was stopped when they asked."""

from __future__ import annotations

import uuid
from datetime import timedelta

from courier.common.db.base import utcnow
from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.db.models_incidents import SlaPolicy
from courier.common.events import IncidentAct
from courier.common.settings import Settings
from courier.common.storage import Storage
from courier.common.uow import UnitOfWork
from courier.console.api import create_app
from courier.console.incidents import IncidentDetail, incident_detail
from courier.monitor import actions
from courier.monitor.incidents import Signal, record_signals
from tests.support.cli import bus_down, cli_env, courier
from tests.support.console import api_client, make_token
from tests.support.incidents import act
from tests.support.services import eventually, running
from tests.support.staged import staged


async def _incident(db: Database, tenant: Tenant, name: str) -> uuid.UUID:
    """A platform incident (its SLA clock: resolve within 6 h), opened now."""
    async with db.transaction() as s:
        (opened,) = await record_signals(
            s,
            [Signal(kind="import_failed", cause_key=name, event_key=f"test:{uuid.uuid4()}",
                    tenant_id=tenant.id, tenant=tenant.slug,
                    summary=f"import of {name} failed: disk full")],
            utcnow(),
            SlaPolicy(),
        )  # fmt: skip
    return opened.id


async def _show(db: Database, incident_id: uuid.UUID) -> IncidentDetail:
    async with db.session() as s:
        return await incident_detail(s, incident_id)


def _notes(detail: IncidentDetail) -> list[tuple[str, str, str]]:
    return [(n.author, n.kind, n.text) for n in detail.notes]


async def test_a_redelivered_action_changes_the_incident_once(
    db: Database, storage: Storage, tenant: Tenant
) -> None:
    incident = await _incident(db, tenant, "leave.csv")
    at = utcnow()
    for _ in range(2):  # each command delivered twice
        await act(db, storage, incident, "ack", at, "ana")
        await act(db, storage, incident, "note", at + timedelta(minutes=5), "ana", "freed space")
        await act(db, storage, incident, "resolve", at + timedelta(minutes=9), "ana", "re-imported")
    detail = await _show(db, incident)
    assert (detail.state, detail.acknowledged_by) == ("resolved", "ana")
    assert _notes(detail) == [
        ("ana", "note", "acknowledged"),
        ("ana", "note", "freed space"),
        ("ana", "note", "re-imported"),
    ]
    [timer] = detail.timers
    assert timer.stopped_at == at + timedelta(minutes=9)  # when ana resolved it
    assert detail.pending_actions == []


async def test_an_action_the_incident_no_longer_allows_is_refused_and_changes_nothing(
    db: Database, storage: Storage, tenant: Tenant
) -> None:
    incident = await _incident(db, tenant, "leave.csv")
    at = utcnow()
    assert (await act(db, storage, incident, "ack", at, "ana")).outcome == "applied"
    await act(db, storage, incident, "resolve", at + timedelta(minutes=1), "ben")
    # Cai acknowledged from a page still showing the incident open.
    late = await act(db, storage, incident, "ack", at + timedelta(minutes=2), "cai")
    assert (late.outcome, late.message) == (
        "refused",
        f"incident {incident} is resolved; only open ones are acknowledged",
    )
    detail = await _show(db, incident)
    assert (detail.state, detail.acknowledged_by) == ("resolved", "ana")
    assert [author for author, _, _ in _notes(detail)] == ["ana", "ben"]


async def test_actions_sent_while_the_monitor_is_stopped_are_carried_out_once_when_it_starts(
    settings: Settings, db: Database, storage: Storage, tenant: Tenant
) -> None:
    web, queued, sent = [await _incident(db, tenant, n) for n in ("a.csv", "b.csv", "c.csv")]
    # The console acknowledges one (as its API token); nobody has carried it out yet.
    token = await make_token(db, "support", name="web")
    async with api_client(create_app(db, storage, settings), token) as http:
        answer = await http.post(f"/api/incidents/{web}/ack")
        assert answer.status_code == 202, answer.text
        assert answer.json()["message"].startswith("acknowledgement sent; the monitor")
        shown = (await http.get(f"/api/incidents/{web}")).json()
    assert shown["state"] == "open"
    assert [(p["action"], p["by"]) for p in shown["pending_actions"]] == [("ack", "token:web")]

    # The CLI, with the bus down: the acknowledgement is queued, and shown as pending.
    code, out = await courier(bus_down(settings), "incidents", "ack", str(queued), "--by", "cli")
    assert code == 0, out
    assert "acknowledgement queued: the bus is not reachable" in out
    _, out = await courier(bus_down(settings), "incidents", "show", str(queued))
    assert "pending: ack by cli" in out and "queued, the bus has not taken it" in out

    # The CLI, with the bus up and the monitor stopped: the resolution is sent, not yet done.
    code, out = await courier(
        cli_env(settings), "incidents", "resolve", str(sent), "-m", "disk freed", "--by", "cli",
        "--wait", "1",
    )  # fmt: skip
    assert code == 0, out
    assert "resolution sent; the monitor carries it out" in out
    assert (await _show(db, sent)).state == "open"

    async with running("monitor", settings):

        async def carried_out() -> list[IncidentDetail] | None:
            found = [await _show(db, i) for i in (web, queued, sent)]
            states = [d.state for d in found]
            return found if states == ["acknowledged", "acknowledged", "resolved"] else None

        await eventually(carried_out)
    # A second start redelivers nothing; a command delivered again after the bus's
    # dedupe window (handled here directly) changes nothing either.
    async with running("monitor", settings) as monitor:
        for command in await staged(db, IncidentAct.subject):
            assert isinstance(command, IncidentAct)
            again = await actions.act(command, UnitOfWork(db, storage), SlaPolicy())
            assert again.outcome == "applied"
        assert await monitor.bus.ping()
    web_done, queued_done, sent_done = [await _show(db, i) for i in (web, queued, sent)]
    assert _notes(web_done) == [("token:web", "note", "acknowledged")]
    assert _notes(queued_done) == [("cli", "note", "acknowledged")]
    assert _notes(sent_done) == [("cli", "note", "disk freed")]
    # Acknowledging leaves the SLA clock running; resolving stopped it, once.
    assert [t.stopped_at for t in web_done.timers + queued_done.timers] == [None, None]
    [timer] = sent_done.timers
    assert timer.stopped_at == sent_done.resolved_at
    assert [d.pending_actions for d in (web_done, queued_done, sent_done)] == [[], [], []]
