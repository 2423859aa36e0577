"""E-mail over SMTP with STARTTLS (aiosmtplib), from `COURIER_SMTP_URL`:
`smtp://user:password@host:587` (STARTTLS required), `smtps://…:465` (TLS from the
start), `smtp://host:25?starttls=false` only for a local catcher."""

from __future__ import annotations

import ssl
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from courier.common.settings import Settings


class SmtpMail:
    def __init__(self, url: str, sender: str, ca_file: Path | None = None) -> None:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        self.sender = sender
        self.hostname = parts.hostname or "localhost"
        self.implicit_tls = parts.scheme == "smtps"
        self.port = parts.port or (465 if self.implicit_tls else 587)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.start_tls = not self.implicit_tls and query.get("starttls", ["true"])[0] != "false"
        self.tls_context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)

    async def send(self, to: str, subject: str, body: str) -> str:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = self.sender, to, subject
        message["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or None)
        message.set_content(body)
        await aiosmtplib.send(
            message,
            hostname=self.hostname,
            port=self.port,
            username=self.username,
            password=self.password,
            use_tls=self.implicit_tls,
            start_tls=self.start_tls,
            tls_context=self.tls_context,
            timeout=30,
        )
        return str(message["Message-ID"])


def smtp_mail(settings: Settings) -> SmtpMail | None:
    if settings.smtp_url is None:
        return None
    return SmtpMail(settings.smtp_url.get_secret_value(), settings.smtp_from, settings.smtp_ca_file)
