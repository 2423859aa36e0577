"""asyncssh SFTP server adapter: protocol calls in, storage calls out, never the local disk."""

from __future__ import annotations

import errno
import functools
import hashlib
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import asyncssh
from asyncssh import SFTPAttrs, SFTPName

from courier.common.areas import is_temporary_name
from courier.common.events import FileDownloaded
from courier.common.metrics import SFTP_BYTES, SFTP_UPLOAD_SECONDS
from courier.common.outbox import stage
from courier.common.received import record_file
from courier.common.regions import RegionViolation
from courier.common.storage import NotFound, Reader, Storage, Writer
from courier.gateway.accounts import Principal
from courier.gateway.metrics import SFTP_DOWNLOAD_SECONDS, SFTP_REFUSED_NAMES
from courier.gateway.vfs import (
    Entry,
    Location,
    NameRefused,
    TenantTree,
    VfsError,
    check_upload,
    printable,
    resolve,
)

if TYPE_CHECKING:
    from courier.gateway.server import GatewayContext, Session

P = ParamSpec("P")
R = TypeVar("R")

_DIR_MODE = 0o40750
_FILE_MODE = 0o100640

_ERRORS = {
    "no_such_file": asyncssh.SFTPNoSuchFile,
    # NO_SUCH_PATH is SFTP v4+: asyncssh turns it into a bare FAILURE for v3 clients
    # (OpenSSH, most others), where internal-sftp answers NO_SUCH_FILE.
    "no_such_path": asyncssh.SFTPNoSuchFile,
    "permission_denied": asyncssh.SFTPPermissionDenied,
    "failure": asyncssh.SFTPFailure,
    "op_unsupported": asyncssh.SFTPOpUnsupported,
}


def _sftp_error(exc: VfsError) -> asyncssh.SFTPError:
    return _ERRORS.get(exc.code, asyncssh.SFTPFailure)(str(exc))


def _region_refused(server: CourierSFTPServer, exc: RegionViolation) -> asyncssh.SFTPError:
    """What a partner is told when storage refuses a call to keep data in its region: a
    plain permission denied. The reason names regions and the configuration; it is for
    our log (and the alert the storage raised), never for the client."""
    server.session.log.warning("refused to keep data in its region", reason=str(exc))
    return asyncssh.SFTPPermissionDenied("permission denied")


def _in_region(
    method: Callable[Concatenate[CourierSFTPServer, P], Awaitable[R]],
) -> Callable[Concatenate[CourierSFTPServer, P], Awaitable[R]]:
    """A handler whose RegionViolation reaches the client as `_region_refused`, and
    whose unexpected failure reaches it as a plain failure (the detail is logged)."""

    @functools.wraps(method)
    async def handler(self: CourierSFTPServer, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(self, *args, **kwargs)
        except RegionViolation as exc:
            raise _region_refused(self, exc) from None
        except asyncssh.SFTPError:
            raise
        except Exception as exc:
            # asyncssh would send the exception's text, which can name buckets or hosts.
            self.session.log.exception("sftp request failed", request=method.__name__)
            raise asyncssh.SFTPFailure(
                "the server could not complete this request; it was logged for support"
            ) from exc

    return handler


# Why an upload was refused after its open (the audit's reason, the partner's message).
QUOTA_EXCEEDED = "quota exceeded"
NO_SPACE = "no space left in storage"
STORAGE_FAILED = "storage failed"


def _refusal(path: str, reason: str) -> asyncssh.SFTPError:
    """What the partner is told of an upload refused mid-way: nothing of it was kept.
    (SFTP v3 clients get FAILURE with this text; the text never names hosts or buckets.)"""
    if reason == QUOTA_EXCEEDED:
        return asyncssh.SFTPQuotaExceeded(f"{path}: upload quota exceeded")
    if reason == NO_SPACE:
        return asyncssh.SFTPNoSpaceOnFilesystem(
            f"{path}: no space left to store this file; it was not received, send it again later"
        )
    return asyncssh.SFTPFailure(
        f"{path}: the file could not be stored; it was not received and this was logged for support"
    )


def _storage_refusal(exc: BaseException) -> str:
    full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return NO_SPACE if full else STORAGE_FAILED


def _attrs(entry: Entry) -> SFTPAttrs:
    mtime = int(entry.modified.timestamp()) if entry.modified else int(time.time())
    if entry.is_dir:
        return SFTPAttrs(permissions=_DIR_MODE, size=0, uid=0, gid=0, mtime=mtime, atime=mtime)
    return SFTPAttrs(
        permissions=_FILE_MODE, size=entry.size, uid=0, gid=0, mtime=mtime, atime=mtime
    )


@dataclass
class Upload:
    loc: Location
    key: str
    writer: Writer
    started: float = field(default_factory=time.monotonic)
    digest: Any = field(default_factory=hashlib.sha256)
    next_offset: int = 0
    sequential: bool = True
    # Bytes /inbound may still take before the account's quota is reached (None = no limit).
    room: int | None = None
    refused: str | None = None
    # A modification time the client set, applied once the file is stored.
    mtime: datetime | None = None


@dataclass
class Download:
    loc: Location
    key: str
    size: int
    reader: Reader
    sent: int = 0
    started: float = field(default_factory=time.monotonic)

    def seek(self, offset: int, whence: int) -> int:
        """Where data lies, for asyncssh's `ranges@asyncssh.com` (its clients ask before
        every download): an object in storage has no holes, so all of it is data."""
        if whence == os.SEEK_DATA and offset < self.size:
            return offset
        if whence == os.SEEK_HOLE:
            return self.size
        raise OSError(errno.ENXIO, "no data past the end of the file")


class CourierSFTPServer(asyncssh.SFTPServer):
    def __init__(self, chan: asyncssh.SSHServerChannel, ctx: GatewayContext) -> None:
        super().__init__(chan)
        self.ctx = ctx
        self.session: Session = chan.get_connection().get_owner().session  # type: ignore[attr-defined]
        assert self.session.principal is not None
        self.principal: Principal = self.session.principal
        self.tree = TenantTree(ctx.storage, self.principal.tenant.slug)
        self.storage: Storage = ctx.storage

    def _audit(
        self, kind: str, path: str, size: int | None = None, reason: str | None = None
    ) -> None:
        self.ctx.audit.add(self.session.ref, kind, path=path, size=size, reason=reason)

    # ------------------------------------------------------------ paths

    def _resolve(self, path: bytes) -> Location:
        try:
            return resolve(path)
        except VfsError as exc:
            raise _sftp_error(exc) from exc

    def realpath(self, path: bytes) -> bytes:
        return self._resolve(path).path.encode()

    @_in_region
    async def stat(self, path: bytes) -> SFTPAttrs:
        loc = self._resolve(path)
        try:
            return _attrs(await self.tree.stat(loc))
        except VfsError as exc:
            raise _sftp_error(exc) from exc

    lstat = stat

    async def scandir(self, path: bytes):  # type: ignore[no-untyped-def,override]
        loc = self._resolve(path)
        try:
            entries = await self.tree.listdir(loc)
        except VfsError as exc:
            raise _sftp_error(exc) from exc
        except RegionViolation as exc:
            raise _region_refused(self, exc) from None
        yield SFTPName(b".", attrs=_attrs(Entry(".", True)))
        yield SFTPName(b"..", attrs=_attrs(Entry("..", True)))
        for entry in entries:
            yield SFTPName(entry.name.encode(), attrs=_attrs(entry))

    # ------------------------------------------------------------ files

    @_in_region
    async def open(self, path: bytes, pflags: int, attrs: SFTPAttrs) -> Upload | Download:
        writing = bool(pflags & (asyncssh.FXF_WRITE | asyncssh.FXF_APPEND | asyncssh.FXF_CREAT))
        try:
            loc = resolve(path)
        except VfsError as exc:
            if not writing:
                raise _sftp_error(exc) from exc
            self._name_refused(path, exc)
            if isinstance(exc, NameRefused):
                # A name any file system would take, but not one this gateway stores.
                raise asyncssh.SFTPPermissionDenied(str(exc)) from exc
            raise _sftp_error(exc) from exc
        if loc.is_directory:
            raise asyncssh.SFTPFailure(f"{loc.path} is a directory")
        key = self.tree.key(loc)
        if writing:
            if loc.is_result:
                raise asyncssh.SFTPPermissionDenied(f"{loc.path}: result files are read-only")
            if loc.area != "inbound":
                raise asyncssh.SFTPPermissionDenied(f"{loc.path}: uploads go to /inbound")
            if not self.principal.can_upload:
                self._audit("upload_refused", loc.path, reason="read-only account")
                raise asyncssh.SFTPPermissionDenied(f"{loc.path}: this account cannot upload")
            self._check_name(loc)
            room = await self._room()
            if room is not None and room <= 0:
                self._audit("upload_refused", loc.path, reason="quota exceeded")
                raise asyncssh.SFTPQuotaExceeded(f"{loc.path}: upload quota exceeded")
            writer = await self.storage.open_write(key)
            self.session.log.info("upload started", path=loc.path)
            return Upload(loc, key, writer, room=room)
        if not self.principal.can_read:
            raise asyncssh.SFTPPermissionDenied(f"{loc.path}: this account cannot download")
        try:
            reader = await self.storage.open_read(key)
        except NotFound as exc:
            raise asyncssh.SFTPNoSuchFile(f"{loc.path}: no such file") from exc
        return Download(loc, key, reader.size, reader)

    def _check_name(self, loc: Location) -> None:
        """Refuse at open (or rename) a name that could not be stored and imported whole."""
        try:
            check_upload(loc)
        except VfsError as exc:
            self._name_refused(loc.path, exc)
            raise _sftp_error(exc) from exc

    def _name_refused(self, path: bytes | str, exc: VfsError) -> None:
        """The partner is told at once; support finds the name (escaped) in the audit."""
        raw = path.decode("utf-8", "backslashreplace") if isinstance(path, bytes) else path
        shown = printable(raw)
        reason = exc.reason if isinstance(exc, NameRefused) else "invalid_path"
        SFTP_REFUSED_NAMES.labels(reason=reason).inc()
        self.session.log.warning("upload refused", path=shown, reason=reason)
        self._audit("upload_refused", shown, reason=f"file name refused: {exc}")

    async def _room(self) -> int | None:
        quota = self.principal.quota_bytes
        if quota is None:
            return None
        used = sum(o.size for o in await self.storage.list(self.tree.key(resolve("/inbound"))))
        return quota - used

    async def read(self, file_obj: object, offset: int, size: int) -> bytes:
        if not isinstance(file_obj, Download):
            raise asyncssh.SFTPPermissionDenied("file not open for reading")
        data = await file_obj.reader.read_at(offset, size)
        SFTP_BYTES.labels(direction="out").inc(len(data))
        self.session.bytes_out += len(data)
        file_obj.sent += len(data)
        return data

    async def write(self, file_obj: object, offset: int, data: bytes) -> int:
        if not isinstance(file_obj, Upload):
            raise asyncssh.SFTPPermissionDenied("file not open for writing")
        if file_obj.refused:
            raise _refusal(file_obj.loc.path, file_obj.refused)
        if file_obj.room is not None and offset + len(data) > file_obj.room:
            # Nothing of it becomes visible: close() discards the partial object.
            file_obj.refused = QUOTA_EXCEEDED
            raise _refusal(file_obj.loc.path, file_obj.refused)
        try:
            await file_obj.writer.write(data, offset)
        except Exception as exc:
            # A write storage did not take leaves a hole: the file is refused whole, and
            # close() discards what was written, whatever the client does next.
            file_obj.refused = _storage_refusal(exc)
            self.session.log.warning(
                "upload write failed", path=file_obj.loc.path, reason=file_obj.refused,
                error=f"{type(exc).__name__}: {exc}",
            )  # fmt: skip
            raise _refusal(file_obj.loc.path, file_obj.refused) from None
        if file_obj.sequential and offset == file_obj.next_offset:
            file_obj.digest.update(data)
            file_obj.next_offset += len(data)
        else:
            file_obj.sequential = False
        SFTP_BYTES.labels(direction="in").inc(len(data))
        self.session.bytes_in += len(data)
        return len(data)

    async def fstat(self, file_obj: object) -> SFTPAttrs:
        if isinstance(file_obj, Upload):
            return _attrs(Entry(file_obj.loc.relpath, False, file_obj.writer.size))
        assert isinstance(file_obj, Download)
        return _attrs(Entry(file_obj.loc.relpath, False, file_obj.size))

    # Attribute changes answer as OpenSSH's internal-sftp would in a chroot where the
    # platform owns the directories and the pickup files, and the partner the files it
    # uploaded: directories and others' files PERMISSION_DENIED, a missing file
    # NO_SUCH_FILE. On its own files a modification time is kept where storage can keep
    # one; a mode, a size or an owner storage cannot keep is OP_UNSUPPORTED, never a
    # success that changes nothing.

    @_in_region
    async def setstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        loc = self._resolve(path)
        if loc.is_directory:
            raise asyncssh.SFTPPermissionDenied(f"{loc.path}: directories cannot be changed")
        try:
            entry = await self.tree.stat(loc)
        except VfsError as exc:
            raise _sftp_error(exc) from exc
        if entry.is_dir or not self._owns(loc):
            raise asyncssh.SFTPPermissionDenied(f"{loc.path}: this file cannot be changed")
        key = self.tree.key(loc)
        mtime = await self._settable(loc, key, attrs, entry.size)
        if mtime is not None:
            await self.storage.set_modified(key, mtime)

    @_in_region
    async def fsetstat(self, file_obj: object, attrs: SFTPAttrs) -> None:
        if not isinstance(file_obj, Upload):
            assert isinstance(file_obj, Download)
            raise asyncssh.SFTPPermissionDenied(f"{file_obj.loc.path}: this file cannot be changed")
        # Clients set the time after the last write: it is applied once the file is stored.
        file_obj.mtime = await self._settable(
            file_obj.loc, file_obj.key, attrs, file_obj.writer.size
        )

    def _owns(self, loc: Location) -> bool:
        """The partner's own files: uploads in /inbound, for an account that uploads."""
        return loc.area == "inbound" and self.principal.can_upload and not loc.is_directory

    async def _settable(
        self, loc: Location, key: str, attrs: SFTPAttrs, size: int
    ) -> datetime | None:
        """The modification time to set, once every other attribute is known to need no
        change; a change storage cannot keep is refused."""
        if attrs.uid is not None or attrs.gid is not None or attrs.owner or attrs.group:
            raise asyncssh.SFTPPermissionDenied(f"{loc.path}: owners cannot be changed")
        if attrs.size is not None and attrs.size != size:
            raise asyncssh.SFTPOpUnsupported(f"{loc.path}: files cannot be truncated here")
        if attrs.permissions is not None and attrs.permissions & 0o7777 != _FILE_MODE & 0o7777:
            raise asyncssh.SFTPOpUnsupported(f"{loc.path}: file modes are not kept here")
        if attrs.mtime is None:
            return None
        if not await self.storage.keeps_times(key):
            raise asyncssh.SFTPOpUnsupported(f"{loc.path}: modification times are not kept here")
        return datetime.fromtimestamp(attrs.mtime, UTC)

    @_in_region
    async def close(self, file_obj: object) -> None:
        if isinstance(file_obj, Download):
            await file_obj.reader.close()
            SFTP_DOWNLOAD_SECONDS.observe(time.monotonic() - file_obj.started)
            self.session.log.info("download", path=file_obj.loc.path, size=file_obj.sent)
            self._audit("download", file_obj.loc.path, file_obj.sent)
            if file_obj.sent >= file_obj.size and not self.session.lost:
                await self._downloaded(file_obj)
            return
        assert isinstance(file_obj, Upload)
        if file_obj.refused:
            await file_obj.writer.abort()
            self.session.log.warning(
                "upload refused", path=file_obj.loc.path, reason=file_obj.refused
            )
            self._audit("upload_refused", file_obj.loc.path, reason=file_obj.refused)
            raise _refusal(file_obj.loc.path, file_obj.refused)
        if self.channel.is_closing() or self.session.lost:
            # The connection died with the file open: the upload is incomplete.
            await file_obj.writer.abort()
            self.session.log.warning("upload aborted", path=file_obj.loc.path)
            self._audit(
                "upload_refused", file_obj.loc.path, file_obj.writer.size, "connection lost"
            )
            return
        try:
            await file_obj.writer.finalize()
        except Exception as exc:
            # Nothing of it stays: neither the file nor its temporary object.
            await file_obj.writer.abort()
            self.session.log.exception("upload not stored", path=file_obj.loc.path)
            reason = _storage_refusal(exc)
            self._audit("upload_refused", file_obj.loc.path, file_obj.writer.size, reason)
            raise _refusal(file_obj.loc.path, reason) from exc
        if file_obj.mtime is not None:
            try:
                await self.storage.set_modified(file_obj.key, file_obj.mtime)
            except Exception:
                # The file is whole and stored: a time not kept must not lose it.
                self.session.log.exception("modification time not set", path=file_obj.loc.path)
        SFTP_UPLOAD_SECONDS.observe(time.monotonic() - file_obj.started)
        sha = file_obj.digest.hexdigest() if file_obj.sequential else None
        self.session.log.info("upload completed", path=file_obj.loc.path, size=file_obj.writer.size)
        self._audit("upload", file_obj.loc.path, file_obj.writer.size)
        if not is_temporary_name(file_obj.loc.relpath):
            await self._announce(file_obj.loc, file_obj.key, sha)

    async def _downloaded(self, file_obj: Download) -> None:
        """Tell the monitor a partner collected a file (it closes an export's loop)."""
        event = FileDownloaded(
            tenant_id=self.principal.tenant.id,
            tenant=self.principal.tenant.slug,
            path=file_obj.loc.path,
            size=file_obj.size,
            username=self.principal.username,
        )
        try:
            async with self.ctx.db.transaction() as session:
                stage(session, event)
        except Exception:
            # The partner has the file; a lost pickup notice is the monitor's to alert on.
            self.session.log.exception("download not recorded", path=file_obj.loc.path)

    async def _announce(self, loc: Location, key: str, sha: str | None) -> None:
        """Record the file with its event; returns once both are committed (not published)."""
        await record_file(
            self.ctx.db,
            self.storage,
            self.principal.tenant,
            loc.relpath,
            key,
            source="gateway",
            account=self.principal.username,
            sha256=sha,
        )

    # ------------------------------------------------------------ names

    @_in_region
    async def remove(self, path: bytes) -> None:
        loc = self._resolve(path)
        if loc.is_directory:
            raise asyncssh.SFTPPermissionDenied(f"{loc.path} cannot be removed")
        if loc.is_result:
            # Whatever the account's delete right: the partner's record of what we did.
            raise asyncssh.SFTPPermissionDenied(f"{loc.path}: result files are read-only")
        # Uploaders may clean up their own drops; pickup files need the delete right.
        may = self.principal.can_upload if loc.area == "inbound" else self.principal.can_delete
        if not may:
            raise asyncssh.SFTPPermissionDenied(f"{loc.path}: this account cannot delete here")
        try:
            await self.storage.delete(self.tree.key(loc))
        except NotFound as exc:
            raise asyncssh.SFTPNoSuchFile(f"{loc.path}: no such file") from exc
        self.session.log.info("file deleted", path=loc.path)
        self._audit("delete", loc.path)

    @_in_region
    async def rename(self, oldpath: bytes, newpath: bytes) -> None:
        old, new = self._resolve(oldpath), self._resolve(newpath)
        if old.area != "inbound" or new.area != "inbound" or old.is_directory or new.is_directory:
            raise asyncssh.SFTPPermissionDenied("only files in /inbound can be renamed")
        if not self.principal.can_upload:
            raise asyncssh.SFTPPermissionDenied("this account cannot change /inbound")
        self._check_name(new)
        src, dst = self.tree.key(old), self.tree.key(new)
        try:
            await self.storage.copy(src, dst)
        except NotFound as exc:
            raise asyncssh.SFTPNoSuchFile(f"{old.path}: no such file") from exc
        await self.storage.delete(src)
        self.session.log.info("file renamed", path=old.path, to=new.path)
        self._audit("rename", new.path, reason=f"from {old.path}")
        # Clients upload to a temporary name and rename when done: announce the final name.
        if is_temporary_name(old.relpath) and not is_temporary_name(new.relpath):
            await self._announce(new, dst, None)

    posix_rename = rename

    def mkdir(self, path: bytes, attrs: SFTPAttrs) -> None:
        raise asyncssh.SFTPPermissionDenied("directories cannot be created here")

    def rmdir(self, path: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("directories cannot be removed")

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("symbolic links are not allowed")

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("hard links are not allowed")

    def readlink(self, path: bytes) -> bytes:
        raise asyncssh.SFTPNoSuchFile("no symbolic links here")
