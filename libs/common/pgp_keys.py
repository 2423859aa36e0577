"""OpenPGP keys per tenant: imported, generated, listed, removed, reminded of before they
expire, and chosen for each decryption and encryption.

Courier's key pair for a tenant decrypts what partners send and signs what they collect;
its secret half is stored only as gpg exported it under COURIER_PGP_PASSPHRASE, which
lives in the settings or a Secret. A partner's public key belongs to the tenant, to one
SFTP account or to one feed, and verifies that partner's signatures and receives the
tenant's encrypted exports.

What leaves this module (views, audit lines, alerts, logs) carries fingerprints, user
ids and dates, never key material: the public key only through `courier_public_key`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, SecretStr
from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from courier.common import console_audit, pgp
from courier.common.db.engine import Database
from courier.common.db.models import Feed, SftpAccount, Tenant
from courier.common.db.models_keys import KEY_OWNERS, PgpKey
from courier.common.events import AlertRaised
from courier.common.logging import get_logger
from courier.common.outbox import stage
from courier.common.reminders import KEY_REMINDER_DAYS, days_left, plural, reminder_pending

log = get_logger(__name__)

# Courier's own key pairs last this long when generated (rotate before: reminders).
GENERATED_LIFETIME = "2y"


NO_PASSPHRASE = "set COURIER_PGP_PASSPHRASE first: secret keys are stored only under it"


class KeyRefused(Exception):
    """An operator's key action refused; the message says what to do, in one line."""


class KeysNotConfigured(Exception):
    """Courier cannot use the tenant's key pair: a platform fault, not the partner's."""


class PgpKeyView(BaseModel):
    """A key as the CLI and the console show it: public facts, never the key itself."""

    tenant: str
    fingerprint: str
    # courier: Courier's key pair (partners encrypt to it); partner: a partner's public key.
    owner: str
    # tenant | account | feed: where a partner key counts.
    scope: str
    account: str | None = None
    feed: str | None = None
    algorithm: str
    bits: int | None
    user_ids: list[str]
    created_at: datetime | None
    # None: the key does not expire.
    expires_at: datetime | None
    days_left: int | None
    expired: bool
    added_at: datetime
    # The last expiry reminder sent, in days before expiry (30, 7, 1).
    reminded_days: int | None = None


@dataclass(frozen=True)
class Imported:
    key: PgpKey
    view: PgpKeyView
    # The same key was there already: its public part (a new expiry, new uids) refreshed.
    updated: bool


@dataclass(frozen=True)
class KeySet:
    """The keys one decryption or encryption may use: `with keys.keyring() as ring`."""

    secret_keys: list[str]
    public_keys: list[str]
    # The partner keys' fingerprints: recipients of an encryption, allowed signers.
    partners: list[str]
    passphrase: str | None = None

    def keyring(self) -> pgp.Keyring:
        return pgp.Keyring(self.secret_keys, self.public_keys, self.passphrase)


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def _expired(key: PgpKey, now: datetime) -> bool:
    return key.expires_at is not None and key.expires_at <= now


async def tenant_by_slug(session: AsyncSession, slug: str) -> Tenant:
    tenant = await session.scalar(select(Tenant).where(Tenant.slug == slug))
    if tenant is None:
        raise KeyRefused(f"no tenant {slug!r}")
    return tenant


@dataclass(frozen=True)
class _Names:
    tenants: dict[uuid.UUID, str]
    accounts: dict[uuid.UUID, str]
    feeds: dict[uuid.UUID, str]


async def _names(session: AsyncSession, keys: Sequence[PgpKey]) -> _Names:
    """Slugs of the keys' tenants, user names of the accounts and names of the feeds
    the keys are limited to."""
    tenant_ids = {k.tenant_id for k in keys}
    account_ids = {k.account_id for k in keys if k.account_id}
    feed_ids = {k.feed_id for k in keys if k.feed_id}
    tenants: dict[uuid.UUID, str] = {}
    accounts: dict[uuid.UUID, str] = {}
    feeds: dict[uuid.UUID, str] = {}
    if tenant_ids:
        found = await session.execute(
            select(Tenant.id, Tenant.slug).where(Tenant.id.in_(tenant_ids))
        )
        tenants = {row[0]: row[1] for row in found}
    if account_ids:
        found = await session.execute(
            select(SftpAccount.id, SftpAccount.username).where(SftpAccount.id.in_(account_ids))
        )
        accounts = {row[0]: row[1] for row in found}
    if feed_ids:
        found = await session.execute(select(Feed.id, Feed.name).where(Feed.id.in_(feed_ids)))
        feeds = {row[0]: row[1] for row in found}
    return _Names(tenants, accounts, feeds)


def _view(key: PgpKey, names: _Names, now: datetime) -> PgpKeyView:
    return PgpKeyView(
        tenant=names.tenants.get(key.tenant_id, ""),
        fingerprint=key.fingerprint,
        owner=key.owner,
        scope="account" if key.account_id else "feed" if key.feed_id else "tenant",
        account=names.accounts.get(key.account_id) if key.account_id else None,
        feed=names.feeds.get(key.feed_id) if key.feed_id else None,
        algorithm=key.algorithm,
        bits=key.bits,
        user_ids=list(key.user_ids or []),
        created_at=key.key_created_at,
        expires_at=key.expires_at,
        days_left=days_left(key.expires_at, now) if key.expires_at else None,
        expired=_expired(key, now),
        added_at=key.created_at,
        reminded_days=key.reminded_days,
    )


async def views(
    session: AsyncSession, keys: Sequence[PgpKey], now: datetime | None = None
) -> list[PgpKeyView]:
    names = await _names(session, keys)
    return [_view(k, names, _now(now)) for k in keys]


async def keys_of(
    session: AsyncSession,
    tenant_ids: Sequence[uuid.UUID] | None = None,
    *,
    account_ids: Sequence[uuid.UUID] | None = None,
) -> list[PgpKey]:
    """Keys of these tenants (None: every tenant), Courier's first, newest first;
    with `account_ids`, the partner keys limited to those accounts."""
    query = select(PgpKey).order_by(
        PgpKey.tenant_id, PgpKey.owner, PgpKey.created_at.desc(), PgpKey.fingerprint
    )
    if tenant_ids is not None:
        query = query.where(PgpKey.tenant_id.in_(tenant_ids))
    if account_ids is not None:
        query = query.where(PgpKey.account_id.in_(account_ids))
    return list(await session.scalars(query))


async def list_keys(db: Database, tenant: str, now: datetime | None = None) -> list[PgpKeyView]:
    async with db.session() as session:
        t = await tenant_by_slug(session, tenant)
        return await views(session, await keys_of(session, [t.id]), now)


# ------------------------------------------------------------------ import / generate


def _passphrase(passphrase: SecretStr | str | None) -> str | None:
    value = passphrase.get_secret_value() if isinstance(passphrase, SecretStr) else passphrase
    return value or None


def _read(
    data: bytes, owner: str, passphrase: str | None, now: datetime
) -> tuple[pgp.KeyInfo, str]:
    """The one key in `data` and its public part, checked for its owner (runs gpg: call
    in a thread)."""
    try:
        found, public = pgp.read_keys(data)
    except pgp.PgpRefused as exc:
        raise KeyRefused(exc.reason) from exc
    if len(found) != 1:
        raise KeyRefused(f"the file holds {len(found)} keys: import one key at a time")
    [info] = found
    if info.expired(now):
        assert info.expires_at is not None
        raise KeyRefused(
            f"key {info.fingerprint} expired on {info.expires_at:%Y-%m-%d}: "
            "extend its expiry (gpg --quick-set-expire) or use a new key"
        )
    if owner == "partner" and info.has_secret:
        raise KeyRefused(
            "the file holds a secret key: a partner's key is imported public only "
            "(gpg --armor --export); for Courier's own key pair use --owner courier"
        )
    if owner == "courier":
        if not info.has_secret:
            raise KeyRefused(
                "Courier's key pair needs its secret key (gpg --armor --export-secret-keys)"
            )
        if passphrase is None:
            raise KeyRefused(NO_PASSPHRASE)
        if not data.lstrip().startswith(b"-----BEGIN PGP"):
            raise KeyRefused("give Courier's secret key armored (gpg --armor --export-secret-keys)")
        try:
            pgp.check_secret_key(data.decode("ascii"), passphrase)
        except (pgp.PgpRefused, UnicodeDecodeError) as exc:
            raise KeyRefused(getattr(exc, "reason", "the armored key is not ASCII")) from exc
    return info, public


async def _scope(
    session: AsyncSession, tenant: Tenant, account: str | None, feed: str | None
) -> tuple[uuid.UUID | None, uuid.UUID | None]:
    if account and feed:
        raise KeyRefused("a key is limited to an account or to a feed, not both")
    if account:
        found = await session.scalar(
            select(SftpAccount.id).where(
                SftpAccount.username == account, SftpAccount.tenant_id == tenant.id
            )
        )
        if found is None:
            raise KeyRefused(f"tenant {tenant.slug} has no SFTP account {account!r}")
        return found, None
    if feed:
        found = await session.scalar(
            select(Feed.id).where(Feed.name == feed, Feed.tenant_id == tenant.id)
        )
        if found is None:
            raise KeyRefused(f"tenant {tenant.slug} has no feed {feed!r}")
        return None, found
    return None, None


async def import_key(
    db: Database,
    tenant: str,
    data: bytes | str,
    *,
    owner: str = "partner",
    account: str | None = None,
    feed: str | None = None,
    passphrase: SecretStr | str | None = None,
    actor: str,
    now: datetime | None = None,
) -> Imported:
    """Store a partner's public key, or Courier's key pair for the tenant (its secret key
    must be protected by `passphrase`). The same key again refreshes its public part,
    so a partner who extended their key's expiry just sends it again."""
    if owner not in KEY_OWNERS:
        raise KeyRefused(f"owner must be one of {', '.join(KEY_OWNERS)}")
    if owner == "courier" and (account or feed):
        raise KeyRefused(
            "Courier's key pair is the tenant's: --account and --feed are for partner keys"
        )
    now = _now(now)
    secret = _passphrase(passphrase)
    raw = data.encode() if isinstance(data, str) else data
    info, public = await asyncio.to_thread(_read, raw, owner, secret, now)
    async with db.transaction() as session:
        t = await tenant_by_slug(session, tenant)
        account_id, feed_id = await _scope(session, t, account, feed)
        key = await session.scalar(
            select(PgpKey).where(PgpKey.tenant_id == t.id, PgpKey.fingerprint == info.fingerprint)
        )
        updated = key is not None
        if key is None:
            key = PgpKey(
                id=uuid.uuid4(), tenant_id=t.id, owner=owner, account_id=account_id,
                feed_id=feed_id, fingerprint=info.fingerprint, created_at=now,
            )  # fmt: skip
            session.add(key)
        elif (key.owner, key.account_id, key.feed_id) != (owner, account_id, feed_id):
            raise KeyRefused(
                f"key {info.fingerprint} is imported already for another owner or scope: "
                "remove it first to move it"
            )
        if key.expires_at != info.expires_at:
            key.reminded_days = None  # a new expiry, new reminders
        key.algorithm = info.algorithm
        key.bits = info.bits
        key.user_ids = info.user_ids
        key.key_created_at = info.created_at
        key.expires_at = info.expires_at
        key.public_key = public
        if owner == "courier":
            key.secret_key = raw.decode("ascii")
        await session.flush()
        view = (await views(session, [key], now))[0]
        console_audit.record(
            session,
            actor=actor,
            action="pgp_key.update" if updated else "pgp_key.import",
            tenant_id=t.id,
            target_type="pgp_key",
            target_id=key.id,
            summary=f"{t.slug}: {owner} key {info.fingerprint} "
            f"{'refreshed' if updated else 'imported'} ({_scope_label(view)})",
            details=_audit_details(view),
        )
    log.info(
        "pgp key imported", tenant=tenant, owner=owner, fingerprint=info.fingerprint,
        updated=updated,
    )  # fmt: skip
    return Imported(key, view, updated)


def _scope_label(view: PgpKeyView) -> str:
    if view.owner == "courier":
        return "Courier's key pair"
    if view.account:
        return f"account {view.account}"
    if view.feed:
        return f"feed {view.feed}"
    return "the tenant's partners"


def _audit_details(view: PgpKeyView) -> dict[str, object]:
    return {
        "fingerprint": view.fingerprint,
        "owner": view.owner,
        "scope": view.scope,
        "account": view.account,
        "feed": view.feed,
        "user_ids": view.user_ids,
        "expires_at": view.expires_at.isoformat() if view.expires_at else None,
    }


async def generate_key(
    db: Database,
    tenant: str,
    *,
    passphrase: SecretStr | str | None,
    actor: str,
    now: datetime | None = None,
    expire: str = GENERATED_LIFETIME,
) -> Imported:
    """A new Courier key pair for the tenant, its secret key under `passphrase`. An older
    pair stays until removed, so files partners still encrypt to it keep opening."""
    secret = _passphrase(passphrase)
    if secret is None:
        raise KeyRefused(NO_PASSPHRASE)
    async with db.session() as session:
        t = await tenant_by_slug(session, tenant)
    _, secret_key = await asyncio.to_thread(
        pgp.generate, f"Courier {t.name}", f"pgp@{t.slug}.courier.invalid", secret, expire
    )
    return await import_key(
        db, tenant, secret_key, owner="courier", passphrase=secret, actor=actor, now=now
    )


# ------------------------------------------------------------------ remove / export


async def remove_key(db: Database, tenant: str, fingerprint: str, *, actor: str) -> PgpKeyView:
    """Remove a key; audited with what it was, so a removal can be traced and undone."""
    wanted = fingerprint.replace(" ", "").upper()
    async with db.transaction() as session:
        t = await tenant_by_slug(session, tenant)
        key = await session.scalar(
            select(PgpKey).where(PgpKey.tenant_id == t.id, PgpKey.fingerprint == wanted)
        )
        if key is None:
            raise KeyRefused(f"tenant {t.slug} has no OpenPGP key {fingerprint}")
        view = (await views(session, [key]))[0]
        console_audit.record(
            session,
            actor=actor,
            action="pgp_key.remove",
            tenant_id=t.id,
            target_type="pgp_key",
            target_id=key.id,
            summary=f"{t.slug}: {key.owner} key {key.fingerprint} removed ({_scope_label(view)})",
            details=_audit_details(view),
        )
        await session.delete(key)
    log.info("pgp key removed", tenant=tenant, fingerprint=view.fingerprint, owner=view.owner)
    return view


def _newest_valid(keys: Sequence[PgpKey], now: datetime) -> PgpKey | None:
    valid = [k for k in keys if not _expired(k, now)]
    return max(valid, key=lambda k: (k.created_at, k.fingerprint)) if valid else None


async def courier_public_key(
    db: Database, tenant: str, now: datetime | None = None
) -> tuple[PgpKeyView, str]:
    """The tenant's current Courier public key (newest not expired), armored, for partners."""
    async with db.session() as session:
        t = await tenant_by_slug(session, tenant)
        keys = list(
            await session.scalars(
                select(PgpKey).where(PgpKey.tenant_id == t.id, PgpKey.owner == "courier")
            )
        )
        key = _newest_valid(keys, _now(now))
        if key is None:
            raise KeyRefused(
                f"tenant {t.slug} has no valid Courier key pair: "
                f"run `courier keys generate --tenant {t.slug}`"
            )
        return (await views(session, [key], now))[0], key.public_key


# ------------------------------------------------------------------ which keys to use


def _partner_scope(account_id: uuid.UUID | None, feed_id: uuid.UUID | None) -> ColumnElement[bool]:
    """A partner key counts tenant-wide, or for the one account or feed it is limited to."""
    clauses = [PgpKey.account_id.is_(None) & PgpKey.feed_id.is_(None)]
    if account_id is not None:
        clauses.append(PgpKey.account_id == account_id)
    if feed_id is not None:
        clauses.append(PgpKey.feed_id == feed_id)
    return or_(*clauses)


async def _account_id(
    session: AsyncSession, tenant_id: uuid.UUID, username: str | None
) -> uuid.UUID | None:
    if not username:
        return None
    return await session.scalar(
        select(SftpAccount.id).where(
            SftpAccount.username == username, SftpAccount.tenant_id == tenant_id
        )
    )


async def decryption_keys(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    account: str | None = None,
    feed_id: uuid.UUID | None = None,
    passphrase: SecretStr | str | None,
    now: datetime | None = None,
) -> KeySet:
    """What may open a file a partner sent: every Courier key pair of the tenant (an
    expired one still opens files encrypted to it), and as signers the partner keys not
    expired that count for the uploading `account` (user name) or the `feed`.

    Raises `pgp.PgpRefused` (for the partner) when the tenant has no key pair, and
    `KeysNotConfigured` (for support) when COURIER_PGP_PASSPHRASE is missing."""
    now = _now(now)
    own = list(
        await session.scalars(
            select(PgpKey)
            .where(PgpKey.tenant_id == tenant_id, PgpKey.owner == "courier")
            .order_by(PgpKey.created_at.desc())
        )
    )
    if not own:
        raise pgp.PgpRefused(
            "this tenant has no OpenPGP key to decrypt with yet: ask support for the "
            "tenant's public key and send the file again encrypted to it"
        )
    secret = _passphrase(passphrase)
    if secret is None:
        raise KeysNotConfigured("COURIER_PGP_PASSPHRASE is not set: Courier cannot decrypt")
    account_id = await _account_id(session, tenant_id, account)
    partners = [
        k
        for k in await session.scalars(
            select(PgpKey).where(
                PgpKey.tenant_id == tenant_id,
                PgpKey.owner == "partner",
                _partner_scope(account_id, feed_id),
            )
        )
        if not _expired(k, now)
    ]
    return KeySet(
        secret_keys=[k.secret_key for k in own if k.secret_key],
        public_keys=[k.public_key for k in partners],
        partners=[k.fingerprint for k in partners],
        passphrase=secret,
    )


async def encryption_keys(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    recipients: Sequence[str] = (),
    account: str | None = None,
    feed_id: uuid.UUID | None = None,
    sign: bool = False,
    passphrase: SecretStr | str | None = None,
    now: datetime | None = None,
) -> KeySet:
    """Whom an export is encrypted to: the partner keys it names by fingerprint, else
    every valid partner key that counts for `account` or `feed` (limited keys before
    tenant-wide ones: when a limited key exists only those are used). With `sign`,
    Courier's newest valid key pair signs.

    Raises `KeysNotConfigured` (support must act) when there is no key to use."""
    now = _now(now)
    partner_keys = list(
        await session.scalars(
            select(PgpKey)
            .where(PgpKey.tenant_id == tenant_id, PgpKey.owner == "partner")
            .order_by(PgpKey.created_at, PgpKey.fingerprint)
        )
    )
    if recipients:
        wanted = {r.replace(" ", "").upper() for r in recipients}
        chosen = [k for k in partner_keys if k.fingerprint in wanted]
        missing = wanted - {k.fingerprint for k in chosen}
        if missing:
            raise KeysNotConfigured(
                f"no partner key {', '.join(sorted(missing))} for this tenant: "
                "import it with `courier keys import`"
            )
        expired = [k.fingerprint for k in chosen if _expired(k, now)]
        if expired:
            raise KeysNotConfigured(f"partner key {', '.join(expired)} has expired")
    else:
        account_id = await _account_id(session, tenant_id, account)
        valid = [k for k in partner_keys if not _expired(k, now)]
        limited = [
            k
            for k in valid
            if (account_id and k.account_id == account_id) or (feed_id and k.feed_id == feed_id)
        ]
        chosen = limited or [k for k in valid if k.account_id is None and k.feed_id is None]
        if not chosen:
            # An expired key is the usual cause: name it, so support asks for its successor.
            lapsed = ", ".join(
                f"{k.fingerprint} on {k.expires_at:%Y-%m-%d}"
                for k in partner_keys
                if _expired(k, now)
                and (
                    (k.account_id is None and k.feed_id is None)
                    or (account_id and k.account_id == account_id)
                    or (feed_id and k.feed_id == feed_id)
                )
            )
            raise KeysNotConfigured(
                "no valid partner key to encrypt to"
                + (f" (expired: {lapsed})" if lapsed else "")
                + ": import the partner's public key with `courier keys import FILE --tenant …`"
            )
    secret_keys: list[str] = []
    secret = _passphrase(passphrase)
    if sign:
        own = list(
            await session.scalars(
                select(PgpKey).where(PgpKey.tenant_id == tenant_id, PgpKey.owner == "courier")
            )
        )
        signer = _newest_valid(own, now)
        if signer is None or not signer.secret_key:
            raise KeysNotConfigured(
                "no valid Courier key pair to sign with: run `courier keys generate`"
            )
        if secret is None:
            raise KeysNotConfigured("COURIER_PGP_PASSPHRASE is not set: Courier cannot sign")
        secret_keys = [signer.secret_key]
    return KeySet(
        secret_keys=secret_keys,
        public_keys=[k.public_key for k in chosen],
        partners=[k.fingerprint for k in chosen],
        passphrase=secret,
    )


# ------------------------------------------------------------------ expiry reminders


def _alert(tenant: Tenant, view: PgpKeyView, due: int, now: datetime) -> AlertRaised:
    assert view.expires_at is not None
    days = days_left(view.expires_at, now)
    when = f"{view.expires_at:%Y-%m-%d %H:%M} UTC"
    if view.owner == "courier":
        what = f"Courier's OpenPGP key {view.fingerprint} for {tenant.slug}"
        todo = (
            "a new key pair will be issued (`courier keys generate`): encrypt to the new "
            "public key once you receive it"
        )
    else:
        uid = f" ({view.user_ids[0]})" if view.user_ids else ""
        what = f"OpenPGP key {view.fingerprint}{uid} of {_scope_label(view)}"
        todo = "send support the key with its expiry extended, or a new public key, before then"
    return AlertRaised(
        kind="pgp_key_expiring",
        # One incident (and so one e-mail to the partner) per key, expiry and reminder.
        cause_key=(
            f"pgp_key_expiring:{tenant.slug}:{view.fingerprint}:{view.expires_at.date()}:{due}"
        ),
        tenant_id=tenant.id,
        tenant=tenant.slug,
        summary=f"{what} expires in {plural(days, 'day')} ({when}): {todo}",
        details={
            "fingerprint": view.fingerprint,
            "owner": view.owner,
            "scope": view.scope,
            "account": view.account,
            "feed": view.feed,
            "user_ids": view.user_ids,
            "expires_at": view.expires_at.isoformat(),
            "days_left": days,
            "reminder_days": due,
        },
    )


async def raise_pgp_key_expiry_alerts(
    db: Database, now: datetime | None = None
) -> list[AlertRaised]:
    """Stage a `pgp_key_expiring` alert for each key that has come within 30, 7 or 1
    days of its expiry since its last reminder, in the transaction that marks it."""
    now = _now(now)
    horizon = now + timedelta(days=max(KEY_REMINDER_DAYS))
    staged: list[AlertRaised] = []
    async with db.transaction() as session:
        keys = list(
            await session.scalars(
                select(PgpKey)
                .where(
                    PgpKey.expires_at.is_not(None),
                    PgpKey.expires_at > now,
                    PgpKey.expires_at <= horizon,
                )
                .order_by(PgpKey.expires_at)
                # Replicas check at the same time: a key is one replica's to remind.
                .with_for_update(of=PgpKey, skip_locked=True)
            )
        )
        due_keys = [
            (k, due)
            for k in keys
            if k.expires_at and (due := reminder_pending(k.expires_at, k.reminded_days, now))
        ]
        if due_keys:
            tenants = {
                t.id: t
                for t in await session.scalars(
                    select(Tenant).where(Tenant.id.in_({k.tenant_id for k, _ in due_keys}))
                )
            }
            shown = await views(session, [k for k, _ in due_keys], now)
            for (key, due), view in zip(due_keys, shown, strict=True):
                alert = _alert(tenants[key.tenant_id], view, due, now)
                stage(session, alert)
                key.reminded_days = due
                staged.append(alert)
    for alert in staged:
        log.info(
            "pgp key expiring",
            tenant=alert.tenant,
            fingerprint=alert.details["fingerprint"],
            days=alert.details["reminder_days"],
        )
    return staged
