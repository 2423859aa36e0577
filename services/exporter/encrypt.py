"""Encrypted exports: the plain file is built as usual, but into a private temporary
folder, then encrypted by gpg to the partner's public key (and signed with the tenant's
Courier key when asked); only the encrypted file reaches the tenant's store, the pickup
area and the vendor. Every step streams, so memory does not grow with the file.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import select

from courier.common.db.engine import Database
from courier.common.db.models import SftpAccount
from courier.common.db.models_keys import PgpKey
from courier.common.logging import get_logger
from courier.common.pgp import Keyring, PgpRefused
from courier.common.storage import Storage, file_url, open_storage, put_file
from courier.exporter.build import BuildError, Built, build_file
from courier.exporter.spec import Encryption, ExportSpecModel

log = get_logger(__name__)

PLAIN = "plain"


class EncryptionError(BuildError):
    """The export cannot be encrypted as its spec asks; the message says what to fix."""


@dataclass(frozen=True)
class Keys:
    """What one encryption uses: the partner keys it goes to, the key that signs it."""

    recipients: list[PgpKey]
    signer: PgpKey | None


async def partner_keys(db: Database, tenant_id: Any, to: str) -> list[PgpKey]:
    """The tenant's partner keys that `encrypt.to` names, oldest first."""
    query = select(PgpKey).where(PgpKey.tenant_id == tenant_id, PgpKey.owner == "partner")
    if to == "partner":
        query = query.where(PgpKey.account_id.is_(None), PgpKey.feed_id.is_(None))
    elif to.startswith("account:"):
        query = query.join(SftpAccount, SftpAccount.id == PgpKey.account_id).where(
            SftpAccount.tenant_id == tenant_id, SftpAccount.username == to.split(":", 1)[1]
        )
    else:
        query = query.where(PgpKey.fingerprint == to)
    async with db.session() as s:
        return list(await s.scalars(query.order_by(PgpKey.key_created_at, PgpKey.created_at)))


async def courier_key(db: Database, tenant_id: Any, now: datetime) -> PgpKey | None:
    """The tenant's newest unexpired Courier key pair, which signs what it sends."""
    async with db.session() as s:
        keys = await s.scalars(
            select(PgpKey)
            .where(
                PgpKey.tenant_id == tenant_id,
                PgpKey.owner == "courier",
                PgpKey.secret_key.is_not(None),
            )
            .order_by(PgpKey.key_created_at.desc(), PgpKey.created_at.desc())
        )
        return next((k for k in keys if not _expired(k, now)), None)


def _expired(key: PgpKey, now: datetime) -> bool:
    return key.expires_at is not None and key.expires_at <= now


async def keys_for(
    db: Database, tenant_id: Any, encryption: Encryption, now: datetime, *, can_sign: bool
) -> Keys:
    """The keys `encryption` needs, or EncryptionError saying which is missing."""
    found = await partner_keys(db, tenant_id, encryption.to)
    if not found:
        raise EncryptionError(
            f"no partner OpenPGP key to encrypt to (encrypt.to: {encryption.to}): "
            "import the partner's public key with `courier keys import`"
        )
    live = [k for k in found if not _expired(k, now)]
    if not live:
        newest = found[-1]
        assert newest.expires_at is not None
        raise EncryptionError(
            f"the partner's OpenPGP key {newest.fingerprint} expired on "
            f"{newest.expires_at:%Y-%m-%d}: import their new key with `courier keys import`"
        )
    signer = None
    if encryption.sign:
        signer = await courier_key(db, tenant_id, now)
        if signer is None:
            raise EncryptionError(
                "encrypt.sign needs the tenant's Courier key pair and it has none "
                "unexpired: create one with `courier keys generate`"
            )
        if not can_sign:
            raise EncryptionError(
                "encrypt.sign needs COURIER_PGP_PASSPHRASE, which unlocks the tenant's "
                "Courier key, and it is not set"
            )
    return Keys(recipients=live, signer=signer)


@dataclass(frozen=True)
class Encrypted(Built):
    """The stored (encrypted) file, and what was encrypted, to whom, signed by whom."""

    plain_size: int = 0
    plain_sha256: str = ""
    recipients: tuple[str, ...] = ()
    signer: str | None = None


async def build_encrypted(
    db: Database,
    storage: Storage,
    spec: ExportSpecModel,
    tenant_id: Any,
    start: date,
    end: date,
    key: str,
    *,
    passphrase: SecretStr | None,
    now: datetime,
) -> Encrypted:
    """Build the period's file and store it encrypted under `key`; the plaintext never
    leaves a private temporary folder, which is removed whatever happens."""
    encryption = spec.encrypt
    assert encryption is not None
    keys = await keys_for(db, tenant_id, encryption, now, can_sign=passphrase is not None)
    with tempfile.TemporaryDirectory(prefix="courier-export-") as tmp:
        folder = Path(tmp)
        plain = await build_file(
            db, open_storage(file_url(folder)), spec, tenant_id, start, end, PLAIN
        )
        sealed = folder / "sealed"
        recipients = [k.fingerprint for k in keys.recipients]
        try:
            await asyncio.to_thread(
                _seal, folder / PLAIN, sealed, keys, recipients, encryption, passphrase
            )
        except PgpRefused as exc:
            raise EncryptionError(exc.reason) from exc
        info, sha256 = await put_file(storage, key, sealed)
    signer = keys.signer.fingerprint if keys.signer else None
    log.info(
        "export encrypted",
        key=key,
        plaintext_sha256=plain.sha256,
        plaintext_size=plain.size,
        recipients=recipients,
        signed_by=signer,
        armor=encryption.armor,
    )
    return Encrypted(
        key=key,
        rows=plain.rows,
        size=info.size,
        sha256=sha256,
        plain_size=plain.size,
        plain_sha256=plain.sha256,
        recipients=tuple(recipients),
        signer=signer,
    )


def _seal(
    src: Path,
    dst: Path,
    keys: Keys,
    recipients: list[str],
    encryption: Encryption,
    passphrase: SecretStr | None,
) -> None:
    """gpg's part (blocking: run in a thread)."""
    secret = [keys.signer.secret_key] if keys.signer and keys.signer.secret_key else []
    with Keyring(
        secret_keys=secret,
        public_keys=[k.public_key for k in keys.recipients],
        passphrase=passphrase.get_secret_value() if passphrase else None,
    ) as ring:
        ring.encrypt(src, dst, recipients=recipients, sign=encryption.sign, armor=encryption.armor)
