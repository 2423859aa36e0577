"""No secret reaches a log line, an event, a database row or a console API answer.

Each test gives the services secrets nobody else has (partners' passwords and keys, a
vendor's password and Courier's key for its server, the OpenPGP passphrase, SMTP, SNS and
Twilio credentials, the bus's and the database's passwords, a console token), runs them
through what the services do with them, succeeding and failing, and then looks for every
secret everywhere: every log line of every service in the process (and of the libraries
they use), every row of every table (the outbox holds every event, published or not),
and the answer of every GET route of the console's API and pages.
"""

from __future__ import annotations

import asyncio
import secrets as random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import func, inspect, select, text, update
from sqlalchemy.engine import make_url

from courier.cli import provision
from courier.common.clock import ManualClock
from courier.common.db.engine import Database
from courier.common.db.models import Feed, Import, SftpAccount, Tenant
from courier.common.db.models_console import ApiToken, ConsoleUser
from courier.common.db.models_exports import Export
from courier.common.db.models_gateway import SessionEvent
from courier.common.db.models_incidents import Incident, Notification, SlaPolicy
from courier.common.settings import Settings
from courier.common.storage import Storage
from courier.exporter.schedule import Run, claim_period
from courier.exporter.worker import Exporter, Tuning
from courier.gateway import admin, hostkeys
from courier.monitor.incidents import Signal, record_signals
from courier.notifier.rota import Rota
from tests.exporter.conftest import DAY, make_spec, run_export
from tests.gateway.test_password_change import Changer
from tests.security.conftest import Logs
from tests.support.cli import cli_env, courier
from tests.support.clients import asyncssh_connect
from tests.support.console import api_client, make_api_token
from tests.support.console_routes import any_value, endpoints, of_objects
from tests.support.fixtures_data import leave_csv
from tests.support.infra import free_port
from tests.support.paging import Sns, smtp_server
from tests.support.paging_fixtures import ANA
from tests.support.pgp import PASSPHRASE, KeyPair
from tests.support.services import at_once, eventually, running
from tests.support.twilio import twilio_server


@dataclass
class Secrets:
    """Named secrets, each unique to the test."""

    named: dict[str, str] = field(default_factory=dict)

    def new(self, name: str, prefix: str = "") -> str:
        self.named[name] = f"{prefix}{random.token_hex(12)}"
        return self.named[name]

    def add(self, name: str, value: str) -> str:
        self.named[name] = value
        return value

    def key(self, name: str, path: Path) -> str:
        """A new ed25519 key pair written to `path`; its secret part (as PKCS#8, the only
        form that holds nothing public) is a secret; returns the public key."""
        key = asyncssh.generate_private_key("ssh-ed25519")
        key.write_private_key(path)
        path.chmod(0o600)
        pem = key.export_private_key("pkcs8-pem").decode().splitlines()
        self.add(name, "".join(line for line in pem if not line.startswith("-----")))
        return key.export_public_key().decode()

    def found_in(self, text: str) -> list[str]:
        return [name for name, value in self.named.items() if value in text]


@pytest.fixture
def secrets() -> Secrets:
    return Secrets()


@pytest.fixture
def secret_settings(settings: Settings, secrets: Secrets) -> Settings:
    """The test's settings with passwords in the bus's and the database's URLs (both
    servers here take any) and the secrets every service holds."""
    nats = settings.nats_url.replace("nats://", f"nats://courier:{secrets.new('bus')}@", 1)
    database = make_url(settings.database_url)
    if database.get_backend_name() == "postgresql":
        database = database.set(password=secrets.new("database password"))
    return settings.model_copy(
        update={
            "nats_url": nats,
            "database_url": database.render_as_string(hide_password=False),
            "pgp_passphrase": SecretStr(secrets.add("OpenPGP passphrase", PASSPHRASE)),
            "console_secret_key": SecretStr(secrets.new("console cookie key")),
            # Failed logins are part of the test: no ban in the way.
            "gateway_ban_after_failures": 1000,
            "gateway_state_refresh_seconds": 0.2,
        }
    )


async def every_row(db: Database) -> str:
    """Every row of every table, as text."""
    async with db.engine.connect() as conn:
        tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
        rows = [
            f"{table}: {row!r}"
            for table in tables
            for row in (await conn.execute(text(f'SELECT * FROM "{table}"'))).all()
        ]
    return "\n".join(rows)


async def every_answer(db: Database, app: FastAPI, secrets: Secrets) -> str:
    """What every GET route of the console answers an admin's token, each route's
    parameters filled with a real object of its kind where there is one."""
    _, token = await make_api_token(db, "admin", name="walker")
    secrets.add("console token", token)
    objects: dict[str, tuple[Any, str]] = {}
    async with db.session() as s:
        for kind, columns in (
            ("import", (Import.id, Import.file_name)), ("feed", (Feed.id, Feed.name)),
            ("export", (Export.id, Export.file_name)), ("incident", (Incident.id, Incident.id)),
            ("account", (SftpAccount.id, SftpAccount.username)),
            ("session", (SessionEvent.session, SessionEvent.session)),
            ("tenant", (Tenant.id, Tenant.slug)), ("user", (ConsoleUser.id, ConsoleUser.username)),
            ("token", (ApiToken.id, ApiToken.name)),
        ):  # fmt: skip
            found = (await s.execute(select(*columns).limit(1))).first()
            if found is not None:
                objects[kind] = (found[0], str(found[1]))
    known = of_objects(objects)

    def fill(name: str, annotation: Any) -> str:
        try:
            return known(name, annotation)
        except LookupError:
            return any_value(name, annotation)

    answers: list[str] = []
    async with api_client(app, token) as http:
        for endpoint in endpoints(app):
            if endpoint.method == "GET":
                answer = await http.get(endpoint.url(fill))
                answers.append(f"{endpoint}: {answer.headers} {answer.text}")
    return "\n".join(answers)


async def leaks(secrets: Secrets, db: Database, app: FastAPI, logs: Logs) -> list[str]:
    answers = await every_answer(db, app, secrets)
    places = {"a log line": logs.text(), "a table": await every_row(db), "the console": answers}
    return [f"{name} in {place}" for place, t in places.items() for name in secrets.found_in(t)]


# ------------------------------------------------------------------ SFTP and imports


async def test_sftp_logins_a_password_change_and_an_import_leak_no_secret(
    db: Database,
    tenant: Tenant,
    leave_feed: None,
    secret_settings: Settings,
    secrets: Secrets,
    app: FastAPI,
    logs: Logs,
    tmp_path: Path,
) -> None:
    settings = secret_settings
    password = secrets.new("partner's password", "Pw-1a-")
    public = secrets.key("partner's private key", tmp_path / "partner")
    secrets.key("someone else's private key", tmp_path / "other")
    await admin.create_account(
        db, tenant, "acme-payroll", password=password, keys=[public], allow=["127.0.0.1/32"]
    )
    port = settings.gateway_port

    async def login(user: str, pw: str, key: Path, **options: Any) -> asyncssh.SSHClientConnection:
        return await asyncssh_connect(port, user, pw, client_keys=[str(key)], **options)

    async with running("gateway", settings), running("importer", settings):
        for user, pw, key in (
            ("acme-payroll", secrets.new("mistyped password"), tmp_path / "partner"),
            ("acme-payroll", password, tmp_path / "other"),
            ("nobody-here", password, tmp_path / "partner"),
        ):
            with pytest.raises(asyncssh.PermissionDenied):
                await login(user, pw, key)
        async with (
            await login("acme-payroll", password, tmp_path / "partner") as conn,
            conn.start_sftp_client() as sftp,
            sftp.open("/inbound/leave_20261201.csv", "wb") as f,
        ):
            await f.write(leave_csv("E1,annual,8,2026-11-01"))

        async def imported() -> bool:
            async with db.session() as s:
                return bool(await s.scalar(select(func.count()).select_from(Import)))

        await eventually(imported)

        async with db.transaction() as s:
            await s.execute(
                update(SftpAccount).values(password_expires_at=datetime.now(UTC) - timedelta(1))
            )
        await asyncio.sleep(settings.gateway_state_refresh_seconds * 3)
        new = secrets.new("partner's new password", "Pw-2b-")
        choices = [secrets.new("a refused new password"), new]  # too weak: 2 kinds of character
        changer = Changer(password, choices)
        async with await login(
            "acme-payroll", password, tmp_path / "partner", client_factory=lambda: changer
        ):
            pass
        assert changer.changed
        async with await login("acme-payroll", new, tmp_path / "partner"):
            pass

    assert await leaks(secrets, db, app, logs) == []


# ------------------------------------------------------------------ export delivery

FAST = Tuning(retry_min_seconds=0.2, retry_max_seconds=0.5)


async def test_an_export_pushed_with_a_password_and_a_key_leaks_no_secret(
    db: Database,
    storage: Storage,
    tenant_with_keys: Tenant,
    tenant_keys: KeyPair,
    secret_settings: Settings,
    secrets: Secrets,
    app: FastAPI,
    logs: Logs,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The vendor's SFTP server is a Courier gateway: it takes password and key."""
    settings = secret_settings
    secrets.add("Courier's OpenPGP secret key", tenant_keys.secret)
    vendor = await provision.ensure_tenant(db, "vendorco", "Vendor Co", "Europe/London")
    key_path = tmp_path / "courier_to_vendor"
    public = secrets.key("Courier's private key for the vendor", key_path)
    vendor_password = secrets.new("vendor's password", "Vp-3c-")
    await admin.create_account(
        db, vendor, "vendor-in", password=vendor_password, keys=[public], allow=["127.0.0.1/32"]
    )
    monkeypatch.setenv("VENDOR_SFTP_PASSWORD", vendor_password)
    monkeypatch.setenv("VENDOR_OLD_PASSWORD", secrets.new("vendor's old password"))
    exporter = Exporter(db, storage, tuning=FAST, pgp_passphrase=settings.pgp_passphrase)

    async with running("gateway", settings):
        fingerprint = hostkeys.fingerprints(settings.gateway_host_key_dir)["ssh-rsa"]
        host_key = (settings.gateway_host_key_dir / "ssh_host_ed25519_key").read_text()
        secrets.add("the gateway's host key", "".join(host_key.splitlines()[1:-1]))

        def to_vendor(password_ref: str) -> list[dict[str, Any]]:
            return [
                {
                    "type": "sftp",
                    "host": "127.0.0.1",
                    "port": settings.gateway_port,
                    "user": "vendor-in",
                    "password": password_ref,
                    "private_key": f"file:{key_path}",
                    "host_key_sha256": fingerprint,
                    "directory": "inbound",
                }
            ]

        pushed = await run_export(
            db, exporter, tenant_with_keys, destinations=to_vendor("env:VENDOR_SFTP_PASSWORD"),
            encrypt={"sign": True},
        )  # fmt: skip
        assert pushed.status == "delivered", pushed.error
        spec = await make_spec(
            db, tenant_with_keys, name="payroll-old-password",
            destinations=to_vendor("env:VENDOR_OLD_PASSWORD"),
        )  # fmt: skip
        export = await claim_period(db, spec, Run(exporter.clock(), DAY, DAY))
        assert export is not None
        await exporter.process(export.id, single_attempt=True)
        async with db.session() as s:
            refused = await s.get(Export, export.id)
        assert refused and refused.status != "delivered"  # the vendor refused the login

    assert await leaks(secrets, db, app, logs) == []


# ------------------------------------------------------------------ paging


def _page(tenant: Tenant, clock: ManualClock, summary: str) -> list[Signal]:
    """An incident that pages on-call by SMS and one that e-mails the feed's contacts."""
    common = {"tenant_id": tenant.id, "tenant": tenant.slug}
    return [
        Signal(
            kind="import_failed",
            cause_key=f"{uuid.uuid4()}",
            event_key=f"t:{uuid.uuid4()}",
            summary=summary,
            **common,
        ),
        Signal(
            kind="file_rejected",
            cause_key=f"{uuid.uuid4()}",
            event_key=f"t:{uuid.uuid4()}",
            summary=f"{summary}: file rejected",
            file_name="wrong.csv",
            contacts=[{"name": "Payroll IT", "email": "payroll-it@acme.example"}],
            **common,
        ),
    ]


async def test_paging_by_email_and_sms_leaks_no_credential(
    db: Database,
    tenant: Tenant,
    paging: Settings,
    rota: Rota,
    clock: ManualClock,
    sns: Sns,
    secrets: Secrets,
    secret_settings: Settings,
    app: FastAPI,
    logs: Logs,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secrets.new("AWS secret access key"))
    smtp_login = ("courier", secrets.new("SMTP password"))
    sid, token = f"AC{uuid.uuid4().hex}", secrets.new("Twilio auth token")
    (tmp_path / "smtp").mkdir()
    services = {k: getattr(secret_settings, k) for k in ("nats_url", "database_url")}
    with smtp_server(tmp_path / "smtp", smtp_login) as mailbox, twilio_server(sid, token) as twilio:
        by_sns = paging.model_copy(
            update={"smtp_url": SecretStr(mailbox.url), "smtp_ca_file": mailbox.ca_file, **services}
        )
        async with running("notifier", by_sns, clock):
            async with db.transaction() as s:
                await record_signals(s, _page(tenant, clock, "by SNS"), clock.now(), SlaPolicy())
            await eventually(lambda: at_once(sns.to(ANA)))
            await eventually(lambda: at_once(mailbox.to("payroll-it@acme.example")))

        wrong = mailbox.url.replace(smtp_login[1], secrets.new("wrong SMTP password"))
        by_twilio = by_sns.model_copy(
            update={
                "sms_provider": "twilio",
                "twilio_base_url": twilio.url,
                "twilio_account_sid": sid,
                "twilio_auth_token": SecretStr(token),
                "twilio_from": "+447700900999",
                "smtp_url": SecretStr(wrong),
            }
        )
        async with running("notifier", by_twilio, clock):
            async with db.transaction() as s:
                await record_signals(s, _page(tenant, clock, "by Twilio"), clock.now(), SlaPolicy())
            await eventually(lambda: at_once(twilio.to(ANA)))

            async def mail_refused() -> bool:
                async with db.session() as s:
                    return bool(
                        await s.scalar(
                            select(Notification.id).where(
                                Notification.channel == "email",
                                Notification.status.in_(["failed", "gave_up"]),
                            )
                        )
                    )

            await eventually(mail_refused)

    assert await leaks(secrets, db, app, logs) == []


# ------------------------------------------------------------------ settings and errors


def test_settings_print_no_password(secret_settings: Settings, secrets: Secrets) -> None:
    shown = repr(secret_settings) + str(secret_settings)
    assert "courier:***@" in shown
    assert secrets.found_in(shown) == []


async def test_commands_name_the_database_and_the_bus_without_their_passwords(
    settings: Settings, secrets: Secrets
) -> None:
    dead = free_port()
    database = f"postgresql+asyncpg://courier:{secrets.new('database')}@127.0.0.1:{dead}/courier"
    code, said = await courier(cli_env(settings, COURIER_DATABASE_URL=database), "imports", "list")
    assert code == 1 and f"courier:***@127.0.0.1:{dead}" in said, said
    bus = f"nats://courier:{secrets.new('bus')}@127.0.0.1:{dead}"
    code, said = await courier(cli_env(settings, COURIER_NATS_URL=bus), "outbox", "flush")
    assert code == 1 and f"127.0.0.1:{dead}" in said, said
    assert secrets.found_in(said) == []


async def test_a_password_written_into_a_spec_is_refused_without_being_repeated(
    settings: Settings, tenant: Tenant, secrets: Secrets, tmp_path: Path
) -> None:
    """Specs hold references (`env:NAME`, `file:/path`); a password typed in its place is
    refused, and the refusal (which may end up in a CI log) does not repeat it."""
    password = secrets.new("a password typed into a spec")
    spec = tmp_path / "acme.yaml"
    spec.write_text(
        f"""tenant: acme
exports:
  - name: payroll
    kind: timesheets
    schedule: {{cron: "0 6 * * *"}}
    period: previous_day
    file_name: "t_{{start:%Y%m%d}}.csv"
    destinations:
      - type: sftp
        host: sftp.payroll.example
        user: acme
        password: "{password}"
        host_key_sha256: "SHA256:4b1vZ5v1hW9mXr0cQ5l2r8H3p7kB0nJ9yE6tA1sD2fG"
"""
    )
    code, said = await courier(cli_env(settings), "feeds", "apply", str(spec))
    assert code == 1 and "secret reference" in said, said
    assert secrets.found_in(said) == []
