"""Copying one object from a primary store to a backup store, and proving the copy whole.

Nothing counts as backed up unless the backup store itself vouches for the bytes: on
S3, the checksum S3 computed on receipt (`ChecksumAlgorithm=SHA256`) must equal the
sha256 Courier recorded; on a `file://` store, the copy is read back and hashed.
Every failure carries a short `reason` (a metric label) and a message for the ledger.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass
from typing import IO, Any

from courier.common.logging import get_logger
from courier.common.storage import CHUNK, MiB, NotFound, Storage, sha256_of

log = get_logger(__name__)

# Below this an object goes up in one PUT whose body S3 checks against our sha256; above
# it, a multipart upload with a checksum per part (boto3's managed transfer).
MULTIPART_THRESHOLD = 16 * MiB
MULTIPART_CHUNK = 16 * MiB


class BackupFailed(Exception):
    """A copy that did not happen or could not be verified; `reason` is a metric label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Encryption:
    """Server-side encryption of a region's backup bucket: `AES256`, `aws:kms` or none."""

    sse: str | None = None
    kms_key_id: str | None = None

    def s3_args(self) -> dict[str, str]:
        args: dict[str, str] = {}
        if self.sse:
            args["ServerSideEncryption"] = self.sse
        if self.sse == "aws:kms" and self.kms_key_id:
            args["SSEKMSKeyId"] = self.kms_key_id
        return args


@dataclass(frozen=True)
class Copied:
    size: int
    sha256: str
    # The backup bucket's version of the object (None: the store keeps no versions).
    version_id: str | None
    encryption: str | None


def b64_sha256(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


def is_s3(store: Storage) -> bool:
    return hasattr(store, "client") and hasattr(store, "bucket")


async def copy_object(
    source: Storage,
    key: str,
    target: Storage,
    *,
    expected_sha256: str | None,
    encryption: Encryption = Encryption(),
    multipart_threshold: int = MULTIPART_THRESHOLD,
    multipart_chunk: int = MULTIPART_CHUNK,
) -> Copied:
    """Copy `key` from `source` to the same key in `target` and verify it there.

    The source is spooled to a local temporary file while it is hashed: a content that
    no longer matches what Courier recorded is refused before anything is sent, and
    the upload (and its retries) read a seekable file, not a stream.
    """
    with tempfile.TemporaryFile() as spool:
        sha256, size = await _spool(source, key, spool)
        if expected_sha256 is not None and sha256 != expected_sha256:
            raise BackupFailed(
                "source_changed",
                f"{key}: the primary store holds sha256 {sha256}, Courier recorded "
                f"{expected_sha256}",
            )
        if is_s3(target):
            return await asyncio.to_thread(
                _to_s3,
                spool,
                target,
                key,
                sha256,
                size,
                encryption,
                multipart_threshold,
                multipart_chunk,
            )
        return await _to_storage(spool, target, key, sha256, size)


async def _spool(source: Storage, key: str, spool: IO[bytes]) -> tuple[str, int]:
    sha256, size = await _copy_hashing(
        source, key, spool, "source_missing", f"{key} is not in the primary store"
    )
    spool.flush()
    spool.seek(0)
    return sha256, size


async def _copy_hashing(
    store: Storage, key: str, sink: IO[bytes], missing: str, message: str
) -> tuple[str, int]:
    """Stream `key` into `sink`; its sha256 and size. Absent: BackupFailed(`missing`)."""
    digest = hashlib.sha256()
    size = 0
    try:
        async for chunk in store.get(key):
            digest.update(chunk)
            sink.write(chunk)
            size += len(chunk)
    except NotFound as exc:
        raise BackupFailed(missing, message) from exc
    return digest.hexdigest(), size


def _unreachable(exc: Exception) -> BackupFailed:
    return BackupFailed("unreachable", f"backup store unreachable: {type(exc).__name__}: {exc}")


def _to_s3(
    spool: IO[bytes],
    target: Any,
    key: str,
    sha256: str,
    size: int,
    encryption: Encryption,
    multipart_threshold: int,
    multipart_chunk: int,
) -> Copied:
    """Blocking (run in a thread): upload, then ask S3 what it holds and compare."""
    from boto3.s3.transfer import TransferConfig
    from botocore.exceptions import BotoCoreError, ClientError

    client, bucket, full = target.client, target.bucket, target.full(key)
    extra = encryption.s3_args()
    try:
        if size < multipart_threshold:
            # S3 refuses the PUT if the body's sha256 is not the one we send with it.
            put = client.put_object(
                Bucket=bucket,
                Key=full,
                Body=spool,
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=b64_sha256(sha256),
                **extra,
            )
            version_id = put.get("VersionId")
        else:
            config = TransferConfig(
                multipart_threshold=multipart_threshold,
                multipart_chunksize=multipart_chunk,
                use_threads=True,
            )
            client.upload_fileobj(
                spool, bucket, full, ExtraArgs={"ChecksumAlgorithm": "SHA256", **extra},
                Config=config,
            )  # fmt: skip
            version_id = None
        head_args: dict[str, Any] = {"Bucket": bucket, "Key": full, "ChecksumMode": "ENABLED"}
        if version_id:
            head_args["VersionId"] = version_id
        head = client.head_object(**head_args)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if "Checksum" in code or code == "BadDigest":
            raise BackupFailed("checksum_mismatch", f"{key}: S3 refused the body: {code}") from exc
        raise BackupFailed("s3_error", f"{key}: {code or exc}") from exc
    except BotoCoreError as exc:
        raise _unreachable(exc) from exc
    version_id = head.get("VersionId") or version_id
    if version_id == "null":
        version_id = None
    if int(head["ContentLength"]) != size:
        raise BackupFailed(
            "checksum_mismatch", f"{key}: backup holds {head['ContentLength']} bytes, sent {size}"
        )
    _check_encryption(key, head, encryption)
    reported = head.get("ChecksumSHA256")
    multipart = "-" in str(head.get("ETag", "")) or (reported is not None and "-" in reported)
    if reported is None:
        raise BackupFailed("checksum_mismatch", f"{key}: S3 reports no SHA256 checksum")
    if multipart:
        # A multipart object's checksum is one of its parts' checksums (each part checked
        # by S3 on receipt): the whole is proven by reading it back.
        stored = _hash_s3(client, bucket, full, version_id)
    else:
        stored = base64.b64decode(reported).hex()
    if stored != sha256:
        raise BackupFailed(
            "checksum_mismatch", f"{key}: backup sha256 {stored}, Courier recorded {sha256}"
        )
    return Copied(size, sha256, version_id, head.get("ServerSideEncryption"))


def _check_encryption(key: str, head: dict[str, Any], encryption: Encryption) -> None:
    if encryption.sse and head.get("ServerSideEncryption") != encryption.sse:
        raise BackupFailed(
            "not_encrypted",
            f"{key}: backup encrypted with {head.get('ServerSideEncryption')!r}, "
            f"asked for {encryption.sse!r}",
        )


def _hash_s3(client: Any, bucket: str, full: str, version_id: str | None) -> str:
    args: dict[str, Any] = {"Bucket": bucket, "Key": full}
    if version_id:
        args["VersionId"] = version_id
    digest = hashlib.sha256()
    body = client.get_object(**args)["Body"]
    with contextlib.closing(body):
        while chunk := body.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


async def write_spool(target: Storage, key: str, spool: IO[bytes]) -> None:
    """Write the whole of `spool` to `key` through the Storage interface (all or nothing)."""
    writer = await target.open_write(key)
    try:
        offset = 0
        while chunk := os.pread(spool.fileno(), CHUNK, offset):
            await writer.write(chunk, offset)
            offset += len(chunk)
        await writer.finalize()
    except BaseException:
        with contextlib.suppress(Exception):
            await writer.abort()
        raise


async def _to_storage(
    spool: IO[bytes], target: Storage, key: str, sha256: str, size: int
) -> Copied:
    """Through the Storage interface (a `file://` backup): write, then read back and hash."""
    await write_spool(target, key, spool)
    stored, stored_size = await sha256_of(target, key)
    if stored != sha256 or stored_size != size:
        raise BackupFailed(
            "checksum_mismatch", f"{key}: backup sha256 {stored}, Courier recorded {sha256}"
        )
    return Copied(size, sha256, None, None)


async def read_backup(
    target: Storage, key: str, version_id: str | None, sink: IO[bytes]
) -> tuple[str, int]:
    """Stream one backed-up object (a given version on S3) into `sink`; its sha256 and size."""
    if not is_s3(target):
        if version_id:
            raise BackupFailed("no_versions", "the backup store keeps no earlier versions")
        return await _copy_hashing(
            target, key, sink, "backup_missing", f"{key} is not in the backup store"
        )
    return await asyncio.to_thread(_read_s3, target, key, version_id, sink)


def _read_s3(target: Any, key: str, version_id: str | None, sink: IO[bytes]) -> tuple[str, int]:
    from botocore.exceptions import BotoCoreError, ClientError

    args: dict[str, Any] = {"Bucket": target.bucket, "Key": target.full(key)}
    if version_id:
        args["VersionId"] = version_id
    try:
        body = target.client.get_object(**args)["Body"]
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        raise BackupFailed("backup_missing", f"{key}: {code or exc}") from exc
    except BotoCoreError as exc:
        raise _unreachable(exc) from exc
    digest = hashlib.sha256()
    size = 0
    with contextlib.closing(body):
        while chunk := body.read(CHUNK):
            digest.update(chunk)
            sink.write(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
