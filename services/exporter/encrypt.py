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

from courier.common import pgp_keys
from courier.common.db.engine import Database
from courier.common.logging import get_logger
from courier.common.pgp import PgpRefused
from courier.common.storage import Storage, file_url, open_storage, put_file
from courier.exporter.build import BuildError, Built, build_file
from courier.exporter.spec import Encryption, ExportSpecModel

log = get_logger(__name__)

PLAIN = "plain"


class EncryptionError(BuildError):
    """The export cannot be encrypted as its spec asks; the message says what to fix."""


@dataclass(frozen=True)
class Encrypted(Built):
    """The stored (encrypted) file, and what was encrypted, to whom, signed by whom."""

    plain_size: int = 0
    plain_sha256: str = ""
    recipients: tuple[str, ...] = ()
    signer: str | None = None


def _recipients(encryption: Encryption) -> dict[str, Any]:
    """`encrypt.to` as the key choice of `pgp_keys.encryption_keys`."""
    if encryption.to == "partner":
        return {}
    if encryption.to.startswith("account:"):
        return {"account": encryption.to.split(":", 1)[1]}
    return {"recipients": [encryption.to]}


async def keys_for(
    db: Database,
    tenant_id: Any,
    encryption: Encryption,
    passphrase: SecretStr | None,
    now: datetime,
) -> pgp_keys.KeySet:
    """The keys `encryption` needs, or EncryptionError saying which is missing."""
    try:
        async with db.session() as s:
            return await pgp_keys.encryption_keys(
                s,
                tenant_id,
                **_recipients(encryption),
                sign=encryption.sign,
                passphrase=passphrase,
                now=now,
            )
    except pgp_keys.KeysNotConfigured as exc:
        raise EncryptionError(str(exc)) from exc


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
    keys = await keys_for(db, tenant_id, encryption, passphrase, now)
    with tempfile.TemporaryDirectory(prefix="courier-export-") as tmp:
        folder = Path(tmp)
        plain = await build_file(
            db, open_storage(file_url(folder)), spec, tenant_id, start, end, PLAIN
        )
        sealed = folder / "sealed"
        try:
            signer = await asyncio.to_thread(_seal, folder / PLAIN, sealed, keys, encryption)
        except PgpRefused as exc:
            raise EncryptionError(exc.reason) from exc
        info, sha256 = await put_file(storage, key, sealed)
    log.info(
        "export encrypted",
        key=key,
        plaintext_sha256=plain.sha256,
        plaintext_size=plain.size,
        recipients=keys.partners,
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
        recipients=tuple(keys.partners),
        signer=signer,
    )


def _seal(src: Path, dst: Path, keys: pgp_keys.KeySet, encryption: Encryption) -> str | None:
    """gpg's part (blocking: run in a thread); the fingerprint that signed, if any."""
    with keys.keyring() as ring:
        ring.encrypt(
            src, dst, recipients=keys.partners, sign=encryption.sign, armor=encryption.armor
        )
        return ring.own[0] if encryption.sign else None
