"""Real peers for paging tests: an SMTP server with STARTTLS (aiosmtpd) and SNS in a moto
server."""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

from courier.common.clock import Clock
from courier.common.events import ImportCompleted, ImportCounts
from tests.support.infra import free_port, wait_port

SNS_REGION = "eu-west-1"
ACCOUNT = "123456789012"


@dataclass
class Sns:
    url: str

    def reset(self) -> None:
        urllib.request.urlopen(
            urllib.request.Request(f"{self.url}/moto-api/reset", method="POST"), timeout=10
        ).read()

    def sms(self) -> list[tuple[str, str]]:
        """(phone, text) of every SMS the provider accepted, read back from moto."""
        from moto.sns.models import sns_backends

        return list(sns_backends[ACCOUNT][SNS_REGION].sms_messages.values())

    def to(self, phone: str) -> list[str]:
        return [text for number, text in self.sms() if number == phone]


@contextlib.contextmanager
def moto_sns() -> Iterator[Sns]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    wait_port("127.0.0.1", port)
    try:
        yield Sns(f"http://127.0.0.1:{port}")
    finally:
        server.stop()


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that the client trusts through `smtp_ca_file`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp.crt", directory / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class Mailbox:
    url: str
    ca_file: Path
    messages: list[Message] = field(default_factory=list)
    starttls: list[bool] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.starttls.append(session.ssl is not None)
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"

    def to(self, address: str) -> list[Message]:
        return [m for m in self.messages if address in (m["To"] or "")]


@contextlib.contextmanager
def smtp_server(
    directory: Path, login: tuple[str, str] | None = None, port: int | None = None
) -> Iterator[Mailbox]:
    """aiosmtpd that refuses mail until the client has switched to TLS (and, given a
    `login` (user, password), until it has authenticated as that user). Given the
    `directory` and `port` of an earlier one, it is that server back (same certificate)."""
    import ssl
    from urllib.parse import quote

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        known = isinstance(data, LoginPassword) and login is not None
        ok = known and (data.login.decode(), data.password.decode()) == login
        return AuthResult(success=ok, handled=False)

    cert, key = directory / "smtp.crt", directory / "smtp.key"
    if not (cert.exists() and key.exists()):
        cert, key = self_signed(directory)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    port = port or free_port()
    userinfo = f"{quote(login[0], safe='')}:{quote(login[1], safe='')}@" if login else ""
    box = Mailbox(f"smtp://{userinfo}127.0.0.1:{port}", cert)
    auth: dict[str, Any] = {"authenticator": authenticator, "auth_required": True} if login else {}
    controller = Controller(
        box, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True, **auth
    )
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


def body(message: Message) -> str:
    payload = message.get_payload(decode=True)
    return payload.decode() if isinstance(payload, bytes) else str(message.get_payload())


async def announced(db: Any) -> list[list[int]]:
    """Take what the outbox holds, as its relay would, and return the notice ids of each
    `NoticesRaised` in it (what the notifier's consumer would be handed)."""
    from courier.common.events import Event, NoticesRaised
    from courier.common.outbox import flush

    events: list[Event] = []

    async def publish(event: Event) -> None:
        events.append(event)

    await flush(db, publish)
    return [e.notice_ids for e in events if isinstance(e, NoticesRaised)]


def imported(feed: Any, tenant: Any, name: str, clock: Clock) -> ImportCompleted:
    """The importer's word that `feed` took the file `name`, which arrived just now."""
    return ImportCompleted(
        import_id=uuid.uuid4(),
        file_id=uuid.uuid4(),
        tenant_id=tenant.id,
        tenant=tenant.slug,
        feed_id=feed.id,
        feed=feed.name,
        name=name,
        status="completed",
        counts=ImportCounts(created=1),
        received_at=clock.now(),
        occurred_at=clock.now(),
    )
