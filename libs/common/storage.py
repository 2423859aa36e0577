"""One object-storage interface over a local directory (`file://`) or an S3 bucket (`s3://`).

Keys are `/`-separated relative paths. Writers go to a temporary object and only
`finalize()` makes the final key visible, so a reader never sees half a file. Readers
serve positional reads (what an SFTP server is asked for) from an open object.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import shutil
import stat
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Protocol
from urllib.parse import parse_qs, urlparse

MiB = 1024 * 1024
CHUNK = MiB


class StorageError(Exception):
    pass


class NotFound(StorageError):
    pass


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    modified: datetime


def check_key(key: str) -> str:
    """Refuse keys that could escape the storage root, whatever the backend."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise StorageError(f"invalid storage key {key!r}")
    if any(p in ("", ".", "..") for p in key.split("/")):
        raise StorageError(f"invalid storage key {key!r}")
    return key


class Writer(Protocol):
    """A pending object: random-access writes, then `finalize()` or `abort()`."""

    key: str
    size: int

    async def write(self, data: bytes, offset: int | None = None) -> None: ...

    async def finalize(self) -> ObjectInfo: ...

    async def abort(self) -> None: ...


class Reader(Protocol):
    """An object opened for positional reads; its size is fixed when it is opened."""

    key: str
    size: int

    async def read_at(self, offset: int, size: int) -> bytes:
        """Up to `size` bytes from `offset`: fewer at the end of the object, b"" past it."""
        ...

    async def close(self) -> None: ...


def _check_range(offset: int, size: int) -> None:
    if offset < 0 or size < 0:
        raise StorageError(f"invalid read of {size} bytes at offset {offset}")


class Storage(Protocol):
    url: str

    async def put(self, key: str, data: bytes) -> ObjectInfo: ...

    async def open_write(self, key: str) -> Writer: ...

    async def open_read(self, key: str) -> Reader:
        """Open `key` for `read_at`; raises NotFound when there is no such object."""
        ...

    def get(self, key: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]: ...

    async def read(self, key: str) -> bytes: ...

    async def stat(self, key: str) -> ObjectInfo: ...

    async def exists(self, key: str) -> bool: ...

    async def list(self, prefix: str) -> list[ObjectInfo]: ...

    async def delete(self, key: str) -> None: ...

    async def copy(self, src: str, dst: str) -> ObjectInfo: ...

    async def local_path(self, key: str) -> Path | None: ...

    async def sweep_temporary(self, older_than: datetime) -> int:
        """Remove what writers left unfinished and untouched since `older_than` (a crash
        mid-upload leaves it); returns how many were removed."""
        ...

    async def keeps_times(self, key: str) -> bool:
        """Whether `set_modified` can change the modification time of `key`."""
        ...

    async def set_modified(self, key: str, when: datetime) -> None:
        """Set the modification time of `key` (only where `keeps_times`)."""
        ...


async def sha256_of(storage: Storage, key: str) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    async for chunk in storage.get(key):
        h.update(chunk)
        size += len(chunk)
    return h.hexdigest(), size


async def put_file(storage: Storage, key: str, path: Path) -> tuple[ObjectInfo, str]:
    """Stream a local file into `key`, all or nothing; what was stored, and its sha256."""
    h = hashlib.sha256()
    writer = await storage.open_write(key)
    try:
        with path.open("rb") as fh:
            while chunk := await asyncio.to_thread(fh.read, CHUNK):
                h.update(chunk)
                await writer.write(chunk)
        info = await writer.finalize()
    except BaseException:
        with contextlib.suppress(Exception):
            await writer.abort()
        raise
    return info, h.hexdigest()


def pwrite_all(fd: int, data: bytes, offset: int) -> None:
    """Write all of `data` at `offset`, or raise. A disk that fills up mid-way takes part
    of a write and returns the count: that is ENOSPC too, never a silently short file."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        if written <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view, offset = view[written:], offset + written


# ---------------------------------------------------------------- file://

_TMP_DIR = ".tmp"


class _FileWriter:
    def __init__(self, storage: FileStorage, key: str) -> None:
        self.storage = storage
        self.key = key
        self.size = 0
        tmp_root = storage.root / _TMP_DIR
        tmp_root.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=tmp_root, prefix="w-")
        self._fd = fd
        self._tmp = Path(name)
        self._pos = 0

    async def write(self, data: bytes, offset: int | None = None) -> None:
        if offset is None:
            offset = self._pos
        # pwrite on a local file is fast enough that a thread hop costs more than it saves.
        pwrite_all(self._fd, data, offset)
        self._pos = offset + len(data)
        self.size = max(self.size, self._pos)

    async def finalize(self) -> ObjectInfo:
        os.fsync(self._fd)
        # Marked closed first: the number may be reused at once by another open file,
        # which an abort after a failed rename below must not close.
        fd, self._fd = self._fd, -1
        os.close(fd)
        dest = self.storage.path(self.key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._tmp, dest)
        return await self.storage.stat(self.key)

    async def abort(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._tmp.unlink(missing_ok=True)


# Reads up to this size are done on the event loop: a pread of a cached block takes
# less time than the thread hop around it (OpenSSH's sftp asks for 255 KiB at a time).
# Larger ones may keep the loop waiting on the disk.
_INLINE_READ = 1 * MiB


class _FileReader:
    def __init__(self, key: str, fd: int, size: int) -> None:
        self.key = key
        self.size = size
        self._fd = fd

    async def read_at(self, offset: int, size: int) -> bytes:
        _check_range(offset, size)
        if size <= _INLINE_READ:
            return os.pread(self._fd, size, offset)
        return await asyncio.to_thread(os.pread, self._fd, size, offset)

    async def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


class FileStorage:
    def __init__(self, url: str) -> None:
        self.url = url
        parsed = urlparse(url)
        # file:///abs/dir is absolute; file://./rel/dir is relative to the working directory.
        raw = parsed.path if parsed.netloc in ("", "localhost") else parsed.netloc + parsed.path
        self.root = Path(raw).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root.joinpath(*PurePosixPath(check_key(key)).parts)

    async def put(self, key: str, data: bytes) -> ObjectInfo:
        writer = await self.open_write(key)
        try:
            await writer.write(data)
            return await writer.finalize()
        except BaseException:
            await writer.abort()
            raise

    async def open_write(self, key: str) -> Writer:
        check_key(key)
        return _FileWriter(self, key)

    async def open_read(self, key: str) -> Reader:
        try:
            fd = os.open(self.path(key), os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise NotFound(key) from exc
        try:
            st = os.fstat(fd)
        except BaseException:
            os.close(fd)
            raise
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise NotFound(key)
        # Finalized objects are replaced, never changed in place: the open file stays whole.
        return _FileReader(key, fd, st.st_size)

    async def get(
        self, key: str, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        path = self.path(key)
        try:
            fh = open(path, "rb")  # noqa: SIM115 - streamed below
        except FileNotFoundError as exc:
            raise NotFound(key) from exc
        with fh:
            fh.seek(offset)
            remaining = length
            while remaining is None or remaining > 0:
                n = CHUNK if remaining is None else min(CHUNK, remaining)
                chunk = fh.read(n)
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    async def read(self, key: str) -> bytes:
        return b"".join([c async for c in self.get(key)])

    async def stat(self, key: str) -> ObjectInfo:
        try:
            st = self.path(key).stat()
        except FileNotFoundError as exc:
            raise NotFound(key) from exc
        if not self.path(key).is_file():
            raise NotFound(key)
        return ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    async def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    async def list(self, prefix: str) -> list[ObjectInfo]:
        base = self.root / prefix if prefix else self.root
        if prefix:
            check_key(prefix.rstrip("/"))
        out: list[ObjectInfo] = []
        if not base.is_dir():
            return out
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if d != _TMP_DIR]
            for fn in filenames:
                full = Path(dirpath) / fn
                key = full.relative_to(self.root).as_posix()
                try:
                    st = full.stat()
                except FileNotFoundError:
                    continue
                out.append(ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC)))
        out.sort(key=lambda o: o.key)
        return out

    async def delete(self, key: str) -> None:
        path = self.path(key)
        try:
            path.unlink()
        except FileNotFoundError as exc:
            raise NotFound(key) from exc
        # Empty directories are an artefact of this backend; S3 has none.
        parent = path.parent
        while parent != self.root:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    async def copy(self, src: str, dst: str) -> ObjectInfo:
        source = self.path(src)
        if not source.is_file():
            raise NotFound(src)
        dest = self.path(dst)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}")
        try:
            # A hard link costs nothing and objects are immutable once finalized.
            os.link(source, tmp)
        except OSError:
            await asyncio.to_thread(shutil.copyfile, source, tmp)
        os.replace(tmp, dest)
        return await self.stat(dst)

    async def local_path(self, key: str) -> Path | None:
        return self.path(key)

    async def keeps_times(self, key: str) -> bool:
        return True

    async def set_modified(self, key: str, when: datetime) -> None:
        try:
            os.utime(self.path(key), (when.timestamp(), when.timestamp()))
        except FileNotFoundError as exc:
            raise NotFound(key) from exc

    async def sweep_temporary(self, older_than: datetime) -> int:
        """Writers' files in `.tmp` not written to since `older_than` (a live writer's
        file changes with every write)."""
        removed = 0
        cutoff = older_than.timestamp()
        for path in (self.root / _TMP_DIR).glob("w-*"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue  # finalized or aborted meanwhile
        return removed


# ---------------------------------------------------------------- s3://


# Parts of a multipart upload: S3 wants at least 5 MiB for all but the last and at most
# 10,000 of them. Parts grow by 8 MiB every 1,000, so 10,000 parts hold 430 GiB while
# one part stays small enough to hold in memory.
_PART = 8 * MiB
_PARTS_PER_SIZE = 1000
# Parts uploading while the client goes on writing: memory per writer is this many parts.
_PARTS_IN_FLIGHT = 2


def _part_size(number: int) -> int:
    return _PART * (1 + (number - 1) // _PARTS_PER_SIZE)


class _S3Writer:
    """Sequential writes go up as multipart parts while the client is still sending.

    Every write also lands in a local spool file, so whatever the client does the bytes
    are at hand and memory holds no more than the parts in flight. A full part is read
    back from the spool and uploaded in the background while writes arrive in order. The
    first write that is not at the current end stops that: from then on finalize sends
    what is left from the spool, and if the write went below what was already sent those
    parts are stale, so the multipart upload is dropped and the spool is sent whole.
    Objects smaller than one part go up with a single put. Only completing the upload
    (or that put) makes the key visible, so it appears whole or not at all.
    """

    def __init__(self, storage: S3Storage, key: str) -> None:
        self.storage = storage
        self.key = key
        self.size = 0
        self._spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed by finalize/abort
        self._fd = self._spool.fileno()
        self._pos = 0
        self._sequential = True
        self._stale = False
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._next_part = 1
        self._sent = 0
        self._in_flight: set[asyncio.Task[dict[str, Any]]] = set()
        self._error: BaseException | None = None
        self._closed = False

    async def write(self, data: bytes, offset: int | None = None) -> None:
        if offset is None:
            offset = self._pos
        if offset != self.size:
            self._sequential = False
            if offset < self._sent:
                self._stale = True
        # pwrite on a local file is fast enough that a thread hop costs more than it saves.
        pwrite_all(self._fd, data, offset)
        self._pos = offset + len(data)
        self.size = max(self.size, self._pos)
        self._reap()
        while self._sequential and self.size - self._sent >= _part_size(self._next_part):
            await self._send(_part_size(self._next_part))

    async def finalize(self) -> ObjectInfo:
        try:
            await self._drain()
            if self._stale:
                await self._drop_upload()
            if self._upload_id is None and self.size < _PART:
                await asyncio.to_thread(self._put_whole)
            else:
                while self._sent < self.size:
                    await self._send(min(_part_size(self._next_part), self.size - self._sent))
                await self._drain()
                if self._error is not None:
                    raise StorageError(f"{self.key}: a part did not upload") from self._error
                await asyncio.to_thread(
                    self.storage.client.complete_multipart_upload,
                    Bucket=self.storage.bucket,
                    Key=self.storage.full(self.key),
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": sorted(self._parts, key=lambda p: p["PartNumber"])},
                )
                self._upload_id = None
        except BaseException:
            with contextlib.suppress(Exception):
                await self.abort()
            raise
        self._close_spool()
        return await self.storage.stat(self.key)

    async def abort(self) -> None:
        try:
            # A part still uploading could land after the abort and be kept: wait for it.
            await self._drain()
            await self._drop_upload()
        finally:
            self._close_spool()

    def _close_spool(self) -> None:
        if not self._closed:
            self._closed = True
            self._spool.close()

    async def _send(self, length: int) -> None:
        """Upload the next `length` bytes of the spool as the next part, in the background."""
        while len(self._in_flight) >= _PARTS_IN_FLIGHT:
            await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
            self._reap()
        if self._upload_id is None:
            created = await asyncio.to_thread(
                self.storage.client.create_multipart_upload,
                Bucket=self.storage.bucket,
                Key=self.storage.full(self.key),
                **self.storage.encryption,
            )
            self._upload_id = created["UploadId"]
        number, start = self._next_part, self._sent
        self._next_part += 1
        self._sent += length
        task = asyncio.create_task(
            asyncio.to_thread(self._upload_part, self._upload_id, number, start, length)
        )
        self._in_flight.add(task)

    def _put_whole(self) -> None:
        self.storage.client.put_object(
            Bucket=self.storage.bucket,
            Key=self.storage.full(self.key),
            Body=os.pread(self._fd, self.size, 0),
            **self.storage.encryption,
        )

    def _upload_part(self, upload_id: str, number: int, start: int, length: int) -> dict[str, Any]:
        body = os.pread(self._fd, length, start)
        done = self.storage.client.upload_part(
            Bucket=self.storage.bucket,
            Key=self.storage.full(self.key),
            UploadId=upload_id,
            PartNumber=number,
            Body=body,
        )
        return {"PartNumber": number, "ETag": done["ETag"]}

    def _reap(self) -> None:
        """Collect finished parts; a failed one makes the parts sent so far stale."""
        for task in [t for t in self._in_flight if t.done()]:
            self._in_flight.discard(task)
            error = task.exception() if not task.cancelled() else asyncio.CancelledError()
            if error is None:
                self._parts.append(task.result())
            else:
                self._error = self._error or error
                self._sequential = False
                self._stale = True

    async def _drain(self) -> None:
        if self._in_flight:
            await asyncio.wait(self._in_flight)
        self._reap()

    async def _drop_upload(self) -> None:
        """Abort the multipart upload (if any): the spool is sent again from the start."""
        upload_id, self._upload_id = self._upload_id, None
        self._parts, self._next_part, self._sent = [], 1, 0
        self._stale, self._error = False, None
        if upload_id is not None:
            await asyncio.to_thread(
                self.storage.client.abort_multipart_upload,
                Bucket=self.storage.bucket,
                Key=self.storage.full(self.key),
                UploadId=upload_id,
            )


# A sequential reader is served from a window fetched with one ranged GET; the window
# grows from the first size to the largest while reads stay sequential, and the next
# one is fetched once half of the current one has been read.
_FIRST_WINDOW = 1 * MiB
_READ_WINDOW = 8 * MiB


class _S3Reader:
    """Ranged GETs of one version of an object (pinned by its ETag)."""

    def __init__(self, storage: S3Storage, key: str, size: int, etag: str | None) -> None:
        self.storage = storage
        self.key = key
        self.size = size
        self._etag = etag
        self._buf = b""
        self._buf_at = 0
        self._next = 0
        self._window = _FIRST_WINDOW
        self._ahead: asyncio.Task[bytes] | None = None
        self._ahead_at = self._ahead_end = 0
        self._lock = asyncio.Lock()

    async def read_at(self, offset: int, size: int) -> bytes:
        _check_range(offset, size)
        end = min(offset + size, self.size)
        if offset >= end:
            return b""
        async with self._lock:
            sequential = offset == self._next
            self._next = end
            if not sequential:
                self._window = _FIRST_WINDOW
            pieces: list[bytes] = []
            pos = offset
            while pos < end:
                buf_end = self._buf_at + len(self._buf)
                if self._buf_at <= pos < buf_end:
                    stop = min(end, buf_end)
                    pieces.append(self._buf[pos - self._buf_at : stop - self._buf_at])
                    pos = stop
                elif sequential:
                    await self._move_window(pos)
                    if len(self._buf) == 0:
                        break
                else:
                    pieces.append(await self._fetch(pos, end))
                    pos = end
            if sequential:
                self._read_ahead(end)
            return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    async def close(self) -> None:
        self._cancel_ahead()
        self._buf = b""

    async def _move_window(self, pos: int) -> None:
        task, self._ahead = self._ahead, None
        if task is not None and self._ahead_at <= pos < self._ahead_end:
            self._buf, self._buf_at = await task, self._ahead_at
            return
        if task is not None:
            task.cancel()
        self._buf, self._buf_at = b"", pos
        self._buf = await self._fetch(pos, min(pos + self._window, self.size))

    def _read_ahead(self, pos: int) -> None:
        buf_end = self._buf_at + len(self._buf)
        if self._ahead is not None or buf_end >= self.size:
            return
        if pos - self._buf_at < len(self._buf) // 2:
            return
        self._window = min(self._window * 2, _READ_WINDOW)
        self._ahead_at, self._ahead_end = buf_end, min(buf_end + self._window, self.size)
        self._ahead = asyncio.create_task(self._fetch(self._ahead_at, self._ahead_end))
        self._ahead.add_done_callback(_retrieve)

    def _cancel_ahead(self) -> None:
        task, self._ahead = self._ahead, None
        if task is not None:
            task.cancel()

    async def _fetch(self, start: int, end: int) -> bytes:
        return await asyncio.to_thread(self.storage._get_range, self.key, start, end, self._etag)


def _retrieve(task: asyncio.Task[bytes]) -> None:
    """A read-ahead nobody waits for any more must not log its error as unretrieved."""
    if not task.cancelled():
        task.exception()


SSE_MODES = ("AES256", "aws:kms")


def sse_args(sse: str | None, kms_key_id: str | None) -> dict[str, str]:
    """The S3 request arguments of a server-side encryption setting (none: {})."""
    if sse is None:
        if kms_key_id:
            raise StorageError("a KMS key id needs server-side encryption 'aws:kms'")
        return {}
    if sse not in SSE_MODES:
        raise StorageError(f"server-side encryption {sse!r}: use one of {', '.join(SSE_MODES)}")
    args = {"ServerSideEncryption": sse}
    if kms_key_id:
        if sse != "aws:kms":
            raise StorageError("a KMS key id needs server-side encryption 'aws:kms'")
        args["SSEKMSKeyId"] = kms_key_id
    return args


class S3Storage:
    """An S3 bucket (under an optional prefix).

    `sse` ("AES256" or "aws:kms") and `kms_key_id` encrypt every object this store
    writes (puts, multipart uploads, copies); they come from the region's settings or
    from the URL's `?sse=…&kms_key_id=…`, the arguments winning.
    """

    def __init__(
        self,
        url: str,
        client: Any | None = None,
        *,
        sse: str | None = None,
        kms_key_id: str | None = None,
    ) -> None:
        import boto3

        self.url = url
        parsed = urlparse(url)
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        endpoint = query.get("endpoint") or os.environ.get("COURIER_S3_ENDPOINT_URL")
        region = query.get("region") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self.sse = sse or query.get("sse") or None
        self.kms_key_id = kms_key_id or query.get("kms_key_id") or None
        # Checked here, so a wrong setting stops a service at start, not at its first write.
        self.encryption: dict[str, str] = sse_args(self.sse, self.kms_key_id)
        self.client = client or boto3.client("s3", endpoint_url=endpoint, region_name=region)

    def full(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _strip(self, full_key: str) -> str:
        return full_key[len(self.prefix) + 1 :] if self.prefix else full_key

    async def put(self, key: str, data: bytes) -> ObjectInfo:
        await asyncio.to_thread(
            self.client.put_object,
            Bucket=self.bucket,
            Key=self.full(key),
            Body=data,
            **self.encryption,
        )
        return await self.stat(key)

    async def open_write(self, key: str) -> Writer:
        check_key(key)
        return _S3Writer(self, key)

    async def open_read(self, key: str) -> Reader:
        head = await self._head(key)
        return _S3Reader(self, key, int(head["ContentLength"]), head.get("ETag"))

    def _get_range(self, key: str, start: int, end: int, etag: str | None) -> bytes:
        """Bytes [start, end) of the version of `key` with `etag` (blocking: run in a thread)."""
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self.full(key),
            "Range": f"bytes={start}-{end - 1}",
        }
        if etag:
            kwargs["IfMatch"] = etag
        try:
            resp = self.client.get_object(**kwargs)
        except self.client.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("404", "NoSuchKey"):
                raise NotFound(key) from exc
            if code in ("412", "PreconditionFailed"):
                raise StorageError(f"{key} was replaced while it was being read") from exc
            raise
        with contextlib.closing(resp["Body"]) as body:
            return body.read()

    async def get(
        self, key: str, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self.full(key)}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            kwargs["Range"] = f"bytes={offset}-{end}"
        try:
            resp = await asyncio.to_thread(self.client.get_object, **kwargs)
        except self.client.exceptions.NoSuchKey as exc:
            raise NotFound(key) from exc
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                raise NotFound(key) from exc
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                return
            raise
        body = resp["Body"]
        try:
            while True:
                chunk = await asyncio.to_thread(body.read, CHUNK)
                if not chunk:
                    break
                yield chunk
        finally:
            body.close()

    async def read(self, key: str) -> bytes:
        return b"".join([c async for c in self.get(key)])

    async def _head(self, key: str) -> dict[str, Any]:
        try:
            return await asyncio.to_thread(
                self.client.head_object, Bucket=self.bucket, Key=self.full(key)
            )
        except self.client.exceptions.ClientError as exc:
            raise NotFound(key) from exc

    async def stat(self, key: str) -> ObjectInfo:
        head = await self._head(key)
        return ObjectInfo(key, int(head["ContentLength"]), head["LastModified"])

    async def exists(self, key: str) -> bool:
        try:
            await self.stat(key)
        except NotFound:
            return False
        return True

    async def list(self, prefix: str) -> list[ObjectInfo]:
        full_prefix = (
            self.full(prefix.rstrip("/")) + "/"
            if prefix
            else (f"{self.prefix}/" if self.prefix else "")
        )

        def _list() -> list[ObjectInfo]:
            out: list[ObjectInfo] = []
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full_prefix):
                for obj in page.get("Contents", []):
                    out.append(
                        ObjectInfo(self._strip(obj["Key"]), int(obj["Size"]), obj["LastModified"])
                    )
            return out

        return sorted(await asyncio.to_thread(_list), key=lambda o: o.key)

    async def delete(self, key: str) -> None:
        if not await self.exists(key):
            raise NotFound(key)
        await asyncio.to_thread(self.client.delete_object, Bucket=self.bucket, Key=self.full(key))

    async def copy(self, src: str, dst: str) -> ObjectInfo:
        if not await self.exists(src):
            raise NotFound(src)
        await asyncio.to_thread(
            self.client.copy,
            {"Bucket": self.bucket, "Key": self.full(src)},
            self.bucket,
            self.full(dst),
            # A copy is encrypted by what the request asks, not by its source's setting.
            ExtraArgs=dict(self.encryption) or None,
        )
        return await self.stat(dst)

    async def local_path(self, key: str) -> Path | None:
        return None

    async def keeps_times(self, key: str) -> bool:
        # S3 sets LastModified itself; a copy to change it would rewrite the object.
        return False

    async def set_modified(self, key: str, when: datetime) -> None:
        raise StorageError("S3 keeps no modification time of its own choosing")

    async def sweep_temporary(self, older_than: datetime) -> int:
        """Abort multipart uploads under this store's prefix begun before `older_than`
        and with no part uploaded since (their parts cost storage and are never seen)."""

        def _sweep() -> int:
            removed = 0
            prefix = f"{self.prefix}/" if self.prefix else ""
            paginator = self.client.get_paginator("list_multipart_uploads")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for upload in page.get("Uploads", []):
                    if upload["Initiated"] >= older_than:
                        continue
                    ids = {"Bucket": self.bucket, "Key": upload["Key"]}
                    parts = self.client.list_parts(**ids, UploadId=upload["UploadId"])
                    if any(p["LastModified"] >= older_than for p in parts.get("Parts", [])):
                        continue  # a long upload still under way
                    with contextlib.suppress(self.client.exceptions.NoSuchUpload):
                        self.client.abort_multipart_upload(**ids, UploadId=upload["UploadId"])
                        removed += 1
            return removed

        return await asyncio.to_thread(_sweep)


def open_storage(url: str, *, sse: str | None = None, kms_key_id: str | None = None) -> Storage:
    """The store at `url`; `sse`/`kms_key_id` encrypt an `s3://` store's objects (a local
    directory has no server-side encryption and ignores them)."""
    scheme = urlparse(url).scheme
    if scheme == "file":
        return FileStorage(url)
    if scheme == "s3":
        return S3Storage(url, sse=sse, kms_key_id=kms_key_id)
    raise StorageError(f"unsupported storage URL scheme {scheme!r} (use file:// or s3://)")


def file_url(path: Path | str) -> str:
    return Path(path).resolve().as_uri()
