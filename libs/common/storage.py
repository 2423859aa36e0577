"""One object-storage interface over a local directory (`file://`) or an S3 bucket (`s3://`).

Keys are `/`-separated relative paths. Writers go to a temporary object and only
`finalize()` makes the final key visible, so a reader never sees half a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Protocol
from urllib.parse import parse_qs, urlparse

CHUNK = 1024 * 1024


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


class Storage(Protocol):
    url: str

    async def put(self, key: str, data: bytes) -> ObjectInfo: ...

    async def open_write(self, key: str) -> Writer: ...

    def get(self, key: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]: ...

    async def read(self, key: str) -> bytes: ...

    async def stat(self, key: str) -> ObjectInfo: ...

    async def exists(self, key: str) -> bool: ...

    async def list(self, prefix: str) -> list[ObjectInfo]: ...

    async def delete(self, key: str) -> None: ...

    async def copy(self, src: str, dst: str) -> ObjectInfo: ...

    async def local_path(self, key: str) -> Path | None: ...


async def sha256_of(storage: Storage, key: str) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    async for chunk in storage.get(key):
        h.update(chunk)
        size += len(chunk)
    return h.hexdigest(), size


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
        os.pwrite(self._fd, data, offset)
        self._pos = offset + len(data)
        self.size = max(self.size, self._pos)

    async def finalize(self) -> ObjectInfo:
        os.fsync(self._fd)
        os.close(self._fd)
        dest = self.storage.path(self.key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._tmp, dest)
        return await self.storage.stat(self.key)

    async def abort(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._tmp.unlink(missing_ok=True)


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


# ---------------------------------------------------------------- s3://


class _S3Writer:
    """S3 has no random-access writes: spool locally, upload on finalize."""

    def __init__(self, storage: S3Storage, key: str) -> None:
        self.storage = storage
        self.key = key
        self.size = 0
        self._spool = tempfile.TemporaryFile()  # noqa: SIM115
        self._pos = 0

    async def write(self, data: bytes, offset: int | None = None) -> None:
        if offset is None:
            offset = self._pos
        self._spool.seek(offset)
        self._spool.write(data)
        self._pos = offset + len(data)
        self.size = max(self.size, self._pos)

    async def finalize(self) -> ObjectInfo:
        self._spool.flush()
        self._spool.seek(0)
        try:
            # A completed (multipart) upload is atomic: the key appears whole or not at all.
            await asyncio.to_thread(
                self.storage.client.upload_fileobj,
                self._spool,
                self.storage.bucket,
                self.storage.full(self.key),
            )
        finally:
            self._spool.close()
        return await self.storage.stat(self.key)

    async def abort(self) -> None:
        self._spool.close()


class S3Storage:
    def __init__(self, url: str, client: Any | None = None) -> None:
        import boto3

        self.url = url
        parsed = urlparse(url)
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        endpoint = query.get("endpoint") or os.environ.get("COURIER_S3_ENDPOINT_URL")
        region = query.get("region") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self.client = client or boto3.client("s3", endpoint_url=endpoint, region_name=region)

    def full(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _strip(self, full_key: str) -> str:
        return full_key[len(self.prefix) + 1 :] if self.prefix else full_key

    async def put(self, key: str, data: bytes) -> ObjectInfo:
        await asyncio.to_thread(
            self.client.put_object, Bucket=self.bucket, Key=self.full(key), Body=data
        )
        return await self.stat(key)

    async def open_write(self, key: str) -> Writer:
        check_key(key)
        return _S3Writer(self, key)

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

    async def stat(self, key: str) -> ObjectInfo:
        try:
            head = await asyncio.to_thread(
                self.client.head_object, Bucket=self.bucket, Key=self.full(key)
            )
        except self.client.exceptions.ClientError as exc:
            raise NotFound(key) from exc
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
        )
        return await self.stat(dst)

    async def local_path(self, key: str) -> Path | None:
        return None


def open_storage(url: str) -> Storage:
    scheme = urlparse(url).scheme
    if scheme == "file":
        return FileStorage(url)
    if scheme == "s3":
        return S3Storage(url)
    raise StorageError(f"unsupported storage URL scheme {scheme!r} (use file:// or s3://)")


def file_url(path: Path | str) -> str:
    return Path(path).resolve().as_uri()
