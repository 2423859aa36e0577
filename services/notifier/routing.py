"""Who hears about a notice, on which channel, with what words.

Every page goes by SMS to the rota's person on call (a breach also to the next one);
`partner` incidents, a failed import of their file, and reminders before a window
closes, are e-mailed to the tenant's contacts. Pure functions: the rota and the notice
in, messages out.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader

from courier.notifier.rota import Person

TEMPLATES = Path(__file__).resolve().parent / "templates"
PAGED = ("opened", "sla_warning", "sla_breach")
CONTACT_REASONS = ("opened", "resolved", "window_warning")
# Failures on our side with a partner's own file: its contacts hear that it is in hand.
CONTACTS_TOLD_OF = frozenset({"import_failed"})
SMS_LIMIT = 1600  # SNS and Twilio both stop at 1600 characters

_env = Environment(
    loader=FileSystemLoader(TEMPLATES), autoescape=False, keep_trailing_newline=False
)


@dataclass
class Message:
    channel: str  # sms | email
    recipient: str
    recipient_name: str
    level: int
    body: str
    subject: str | None = None


def link(base_url: str, payload: dict[str, Any]) -> str:
    base = base_url.rstrip("/")
    if payload.get("incident_id"):
        return f"{base}/incidents/{payload['incident_id']}"
    return f"{base}/incidents?tenant={payload.get('tenant') or ''}"


def page_text(reason: str, payload: dict[str, Any], base_url: str, **extra: Any) -> str:
    text = _env.get_template("page.sms.j2").render(
        reason=reason, link=link(base_url, payload), **{**payload, **extra}
    )
    return " ".join(text.split())[:SMS_LIMIT]


def digest_text(payloads: list[dict[str, Any]], base_url: str) -> str:
    kinds = Counter(p.get("kind") for p in payloads).most_common()
    tenants = {p.get("tenant") for p in payloads if p.get("tenant")}
    text = _env.get_template("digest.sms.j2").render(
        pages=payloads,
        kinds=kinds,
        tenants=tenants,
        first=payloads[0],
        link=f"{base_url.rstrip('/')}/incidents?state=open",
    )
    return " ".join(text.split())[:SMS_LIMIT]


def contact_email(
    reason: str, payload: dict[str, Any], base_url: str, contact: dict[str, Any]
) -> tuple[str, str]:
    text = _env.get_template("contact.email.j2").render(
        reason=reason,
        link=link(base_url, payload),
        contact_name=contact.get("name"),
        note=payload.get("note"),
        **{k: v for k, v in payload.items() if k != "note"},
    )
    head, _, body = text.partition("\n\n")
    return head.removeprefix("Subject: ").strip(), body.strip() + "\n"


def plan(
    reason: str, payload: dict[str, Any], chain: list[Person], base_url: str, brief: bool = False
) -> list[Message]:
    """`brief`: the page will go out inside a digest, so its log line is the summary."""
    out: list[Message] = []
    if reason in PAGED and chain:
        to = chain[:2] if reason == "sla_breach" else chain[:1]
        text = str(payload.get("summary")) if brief else page_text(reason, payload, base_url)
        out += [Message("sms", p.phone, p.name, 0, text) for p in to]
    if reason in CONTACT_REASONS and (
        payload.get("class") == "partner"
        or reason == "window_warning"
        or payload.get("kind") in CONTACTS_TOLD_OF
    ):
        for contact in payload.get("contacts") or []:
            if contact.get("email"):
                subject, body = contact_email(reason, payload, base_url, contact)
                out.append(
                    Message("email", contact["email"], contact.get("name") or "", 0, body, subject)
                )
    return out
