"""Encrypted and packed files opened for their feed's checks, as streams, within limits.

A feed that declares `decrypt: pgp` or `unpack: zip|gzip|auto` gets its files opened
here before the usual checks read them. The stored file stays the partner's original
bytes (what the audit offers for download, and whose sha256 the announcement carries);
the plaintext goes to temporary files that live as long as the import's transaction.
Nothing is held in memory whole: gpg streams to a file, gzip and zip are read in
chunks, and every layer is stopped at the limits (`unpack_max_bytes`, and
`unpack_max_ratio` times the size received) so a zip bomb never fills the disk.

A zip is not imported itself: each member that a feed takes becomes a received file
of its own (source `unpack`), announced in the zip's transaction, and is imported by
the normal path, in name order. A file that cannot be opened is refused with the
exact reason (`FileRejected`), so nothing of it is applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import re
import tempfile
import uuid
import zipfile
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from courier.common import pgp
from courier.common.areas import received_key
from courier.common.db.models import Feed, Import, ReceivedFile, Tenant
from courier.common.feeds import TEST_FOLDER, match_feed, seen_by, split_test, unwrap_name
from courier.common.logging import get_logger
from courier.common.pgp_keys import KeySet, KeysNotConfigured, decryption_keys
from courier.common.received import add_received
from courier.common.settings import Settings
from courier.common.storage import put_file
from courier.common.uow import UnitOfWork
from courier.importer.decode import FileRejected as Refused
from courier.importer.ordering import enabled_feeds
from courier.importer.spec import FeedSpec

log = get_logger(__name__)

CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
# Compression methods Python's zipfile reads: stored, deflate, bzip2, lzma.
ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}

# What the partner reads.
BOMB = "the file expands beyond {limit}: refused as a possible zip bomb"
NOT_GZIP = "the file is not gzip data"
BAD_GZIP = "the gzip data is damaged or cut short: send the file again"
NOT_ZIP = "the file is not a zip archive"
BAD_ZIP = "the zip archive is damaged or cut short: send the file again"
ZIP_PATH = "zip members must be plain file names: {name!r} has a path"
ZIP_ENCRYPTED = (
    "zip member {name!r} is protected by a zip password: Courier cannot open it "
    "(encrypt the whole file with OpenPGP instead)"
)
ZIP_METHOD = "zip member {name!r} is compressed in a way Courier cannot read: use deflate"
ZIP_TWICE = "the zip holds {name!r} twice"
ZIP_EMPTY = "the zip holds no files"
ZIP_NOTHING = "no file in the zip has a name a feed takes: expected one of {patterns}"
NESTED = "a packed or encrypted file inside a zip is not opened: send it on its own"
UNTAKEN = "no feed takes this name"
UNSEALED = "its feed takes OpenPGP-encrypted files only, and the zip was not encrypted"
UNSIGNED = "its feed takes signed files only, and the zip was not signed"
# What support reads when the platform, not the partner, is at fault.
KEYS_MISSING = (
    "the file could not be decrypted on our side; nothing was changed and our support "
    "team has been alerted"
)


class ChecksumMismatch(Exception):
    """The stored bytes are not the ones announced."""


class CannotOpen(Exception):
    """Courier cannot open the file through no fault of the partner (keys not set up)."""

    def __init__(self, reason: str, cause: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.cause = cause


@dataclass(frozen=True)
class Limits:
    """How far a file may expand: at most `max_bytes`, and `max_ratio` times its size."""

    max_bytes: int
    max_ratio: int

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(settings.unpack_max_bytes, settings.unpack_max_ratio)

    def ceiling(self, received: int) -> int:
        return min(self.max_bytes, self.max_ratio * max(received, 1))

    def refusal(self, received: int) -> Refused:
        limit = self.ceiling(received)
        if limit == self.max_bytes:
            said = f"{_size(limit)} (the largest file Courier unpacks)"
        else:
            said = f"{_size(limit)} ({self.max_ratio} times the {_size(received)} received)"
        return Refused(BOMB.format(limit=said), limit_bytes=limit, received_bytes=received)


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.4g} {unit}"
    return f"{n} bytes"


@dataclass
class Opened:
    """A file as its feed reads it: one plaintext file, or a zip of members."""

    path: Path
    sha256: str
    zip: bool = False
    details: dict[str, Any] = field(default_factory=dict)


def wraps(spec: FeedSpec) -> bool:
    return spec.decrypt != "none" or spec.unpack != "none"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _head(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(4)


def decrypt(
    keys: KeySet, src: Path, dst: Path, *, require_signature: bool, max_output: int
) -> pgp.Decrypted:
    """gpg in a keyring of exactly `keys`: blocking, call in a thread."""
    with keys.keyring() as ring:
        return ring.decrypt(src, dst, require_signature=require_signature, max_output=max_output)


def gunzip(src: Path, dst: Path, ceiling: int) -> tuple[str, int]:
    """Unpack a gzip file (all its members) into `dst`; its sha256 and size.
    `_TooLarge` past `ceiling` bytes: stopped before the disk holds more."""
    if _head(src)[:2] != GZIP_MAGIC:
        raise Refused(NOT_GZIP)
    digest, size = hashlib.sha256(), 0
    try:
        with gzip.open(src, "rb") as packed, dst.open("wb") as out:
            while chunk := packed.read(CHUNK):
                size += len(chunk)
                if size > ceiling:
                    raise _TooLarge
                digest.update(chunk)
                out.write(chunk)
    except (gzip.BadGzipFile, EOFError, zlib.error, OSError) as exc:
        dst.unlink(missing_ok=True)
        raise Refused(BAD_GZIP) from exc
    except _TooLarge:
        dst.unlink(missing_ok=True)
        raise
    return digest.hexdigest(), size


class _TooLarge(Exception):
    pass


_DRIVE = re.compile(r"^[A-Za-z]:")


def plain_name(name: str) -> bool:
    return (
        bool(name)
        and "/" not in name
        and "\\" not in name
        and not _DRIVE.match(name)
        and (name not in (".", ".."))
    )


def members(path: Path, ceiling: int) -> list[zipfile.ZipInfo]:
    """The zip's members in name order, each checked before any is read: plain names,
    no zip passwords, methods Courier reads, and declared sizes within `ceiling`."""
    if _head(path) not in ZIP_MAGICS:
        raise Refused(NOT_ZIP)
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise Refused(BAD_ZIP) from exc
    seen: set[str] = set()
    for info in infos:
        name = info.filename
        if not plain_name(name):
            raise Refused(ZIP_PATH.format(name=name), member=name)
        if name in seen:
            raise Refused(ZIP_TWICE.format(name=name), member=name)
        seen.add(name)
        if info.flag_bits & 0x1:
            raise Refused(ZIP_ENCRYPTED.format(name=name), member=name)
        if info.compress_type not in ZIP_METHODS:
            raise Refused(ZIP_METHOD.format(name=name), member=name)
    if not infos:
        raise Refused(ZIP_EMPTY)
    if sum(i.file_size for i in infos) > ceiling:
        raise _TooLarge
    return sorted(infos, key=lambda i: i.filename)


def extract(path: Path, info: zipfile.ZipInfo, dst: Path, budget: int) -> tuple[str, int]:
    """One member into `dst`, counting what actually comes out (a header can lie):
    its sha256 and size; `_TooLarge` past `budget` or past the size it declared."""
    digest, size = hashlib.sha256(), 0
    try:
        with zipfile.ZipFile(path) as zf, zf.open(info) as src, dst.open("wb") as out:
            while chunk := src.read(CHUNK):
                size += len(chunk)
                if size > budget or size > info.file_size:
                    raise _TooLarge
                digest.update(chunk)
                out.write(chunk)
    except (zipfile.BadZipFile, EOFError, zlib.error, OSError, NotImplementedError) as exc:
        dst.unlink(missing_ok=True)
        raise Refused(BAD_ZIP, member=info.filename) from exc
    except _TooLarge:
        dst.unlink(missing_ok=True)
        raise
    return digest.hexdigest(), size


async def _keys(uow: UnitOfWork, imp: Import) -> KeySet:
    try:
        return await decryption_keys(
            uow.session,
            imp.tenant_id,
            account=await _account_of(uow, imp),
            feed_id=imp.feed_id,
            passphrase=uow.settings.pgp_passphrase,
            now=uow.clock.now(),
        )
    except pgp.PgpRefused as exc:
        raise Refused(exc.reason) from exc
    except KeysNotConfigured as exc:
        raise CannotOpen(KEYS_MISSING, str(exc)) from exc


@contextlib.asynccontextmanager
async def opened(
    uow: UnitOfWork, imp: Import, spec: FeedSpec, stored: Path
) -> AsyncIterator[Opened]:
    """The plaintext of the stored file `stored`, for as long as the block runs.

    The stored bytes of a wrapped file are checked against the announced sha256 first
    (a plain file's are checked as its rows are read). Raises
    `Refused` (the partner's file), `CannotOpen` (ours) or `ChecksumMismatch`."""
    if not wraps(spec) or await is_member(uow, imp):
        # The feed's checks hash a plain file as they read it.
        yield Opened(stored, imp.sha256)
        return
    original = await asyncio.to_thread(sha256_file, stored)
    if original != imp.sha256:
        raise ChecksumMismatch(original)
    limits = Limits.of(uow.settings)
    ceiling = limits.ceiling(imp.size)
    layers = unwrap_name(split_test(imp.file_name)[0], spec.decrypt, spec.unpack).layers
    details: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="courier-unwrap-") as work:
        current, sha256 = stored, original
        if spec.decrypt == "pgp":
            keys = await _keys(uow, imp)
            plain = Path(work) / "decrypted"
            try:
                found = await asyncio.to_thread(
                    decrypt,
                    keys,
                    current,
                    plain,
                    require_signature=spec.require_signature,
                    max_output=ceiling,
                )
            except pgp.PgpTooLarge as exc:
                raise limits.refusal(imp.size) from exc
            except pgp.PgpRefused as exc:
                raise Refused(exc.reason) from exc
            except pgp.PgpKeyLocked as exc:
                raise CannotOpen(KEYS_MISSING, str(exc)) from exc
            details |= {"decrypted": True, "signed_by": found.signer}
            current, sha256 = plain, await asyncio.to_thread(sha256_file, plain)
        kind = spec.unpack
        if kind == "auto":
            kind = next((k for k in ("gzip", "zip") if k in layers), None) or _by_magic(
                await asyncio.to_thread(_head, current)
            )
        if kind == "gzip":
            plain = Path(work) / "unpacked"
            try:
                sha256, _ = await asyncio.to_thread(gunzip, current, plain, ceiling)
            except _TooLarge as exc:
                raise limits.refusal(imp.size) from exc
            current = plain
            details["unpacked"] = "gzip"
        if kind == "zip":
            yield Opened(current, sha256, zip=True, details=details | {"unpacked": "zip"})
            return
        if current is not stored:
            details["plaintext_sha256"] = sha256
        yield Opened(current, sha256, details=details)


def _by_magic(head: bytes) -> str:
    if head[:2] == GZIP_MAGIC:
        return "gzip"
    return "zip" if head in ZIP_MAGICS else "none"


def member_id(zip_file: uuid.UUID, name: str) -> uuid.UUID:
    """The same member of the same zip is the same received file, however often it is
    unpacked (a retried transaction overwrites, never adds)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"courier:unpack:{zip_file}:{name}")


async def unpack(uow: UnitOfWork, imp: Import, zipped: Opened) -> None:
    """Announce each member of the zip that a feed takes as a received file, in name
    order (one microsecond apart, so the feed takes them in that order), in the zip's
    transaction; the zip's import becomes `unpacked` and lists them."""
    session, storage = uow.session, uow.storage
    limits = Limits.of(uow.settings)
    budget = limits.ceiling(imp.size)
    try:
        infos = await asyncio.to_thread(members, zipped.path, budget)
    except _TooLarge as exc:
        raise limits.refusal(imp.size) from exc
    feeds = await enabled_feeds(session, imp.tenant_id)
    in_test = split_test(imp.file_name)[1]
    taken, skipped = [], []
    for info in infos:
        feed = match_feed(feeds, info.filename)
        if feed is None:
            skipped.append({"name": info.filename, "reason": UNTAKEN})
        elif seen_by(feed, info.filename).layers:
            skipped.append({"name": info.filename, "reason": NESTED})
        elif why := _unsealed(feed, zipped.details):
            skipped.append({"name": info.filename, "reason": why})
        else:
            taken.append(info)
    if not taken:
        if any(m["reason"] != UNTAKEN for m in skipped):
            why = "; ".join(f"{m['name']}: {m['reason']}" for m in skipped)
            raise Refused(f"nothing in the zip can be imported ({why})", skipped=skipped)
        patterns = ", ".join(f.pattern for f in feeds) or "none (no feed takes files yet)"
        raise Refused(ZIP_NOTHING.format(patterns=patterns), skipped=skipped)
    tenant = await session.get(Tenant, imp.tenant_id)
    assert tenant is not None
    account = await _account_of(uow, imp)
    stored: list[str] = []
    listed = []
    try:
        with tempfile.TemporaryDirectory(prefix="courier-unzip-") as work:
            for n, info in enumerate(taken, start=1):
                plain = Path(work) / f"member-{n}"
                try:
                    sha256, size = await asyncio.to_thread(
                        extract, zipped.path, info, plain, budget
                    )
                except _TooLarge as exc:
                    raise limits.refusal(imp.size) from exc
                budget -= size
                name = f"{TEST_FOLDER}{info.filename}" if in_test else info.filename
                file_id = member_id(imp.file_id, info.filename)
                key = received_key(tenant.slug, file_id, name)
                stored.append(key)
                await put_file(storage, key, plain)
                plain.unlink()
                row = await session.get(ReceivedFile, file_id)
                if row is None:
                    row = ReceivedFile(
                        id=file_id,
                        tenant_id=tenant.id,
                        name=name,
                        storage_key=key,
                        inbound_key=None,
                        size=size,
                        sha256=sha256,
                        source="unpack",
                        account=account,
                        received_at=imp.received_at + timedelta(microseconds=n),
                    )
                    add_received(session, row, tenant)
                listed.append({"name": info.filename, "file_id": str(file_id), "size": size,
                               "sha256": sha256})  # fmt: skip
    except BaseException:
        for key in stored:
            with contextlib.suppress(Exception):
                await storage.delete(key)
        raise
    imp.status, imp.error = "unpacked", None
    imp.details = {**zipped.details, "members": listed, "skipped": skipped}
    log.info("zip unpacked", members=len(listed), skipped=len(skipped))


def _unsealed(feed: Feed, opened: dict[str, Any]) -> str | None:
    """Why a member may not go to `feed`: it asks for more than the zip had (a plain zip
    never carries a file past a feed that takes encrypted files only)."""
    spec = FeedSpec.of_feed(feed.name, feed.kind, feed.pattern, feed.spec or {})
    if spec.decrypt == "pgp" and not opened.get("decrypted"):
        return UNSEALED
    if spec.require_signature and not opened.get("signed_by"):
        return UNSIGNED
    return None


async def is_member(uow: UnitOfWork, imp: Import) -> bool:
    """A file unpacked from a zip: opened already, with the zip (see `unpack`)."""
    source = await uow.session.scalar(
        select(ReceivedFile.source).where(ReceivedFile.id == imp.file_id)
    )
    return source == "unpack"


async def _account_of(uow: UnitOfWork, imp: Import) -> str | None:
    return await uow.session.scalar(
        select(ReceivedFile.account).where(ReceivedFile.id == imp.file_id)
    )
