"""Putting a built file where it is collected: the tenant's pickup area or a vendor's SFTP.

A push writes to a hidden temporary name, renames it into place and checks the size
the server reports, so the vendor never picks up half a file.
"""

from __future__ import annotations

import posixpath

import asyncssh

from courier.common.areas import area_key
from courier.common.remote import RemoteError, connect, describe
from courier.common.storage import Storage
from courier.exporter.spec import PickupDestination, SftpDestination

WRITE_BLOCK = 256 * 1024


class DeliveryError(Exception):
    pass


async def to_pickup(
    storage: Storage, key: str, tenant: str, dest: PickupDestination, name: str
) -> int:
    relpath = f"{dest.directory}/{name}" if dest.directory else name
    # Storage copies are atomic (link or server-side copy): the partner sees all or nothing.
    info = await storage.copy(key, area_key(tenant, "outbound", relpath))
    return info.size


async def to_sftp(storage: Storage, key: str, dest: SftpDestination, name: str) -> int:
    expected = (await storage.stat(key)).size
    final = posixpath.join(dest.directory, name)
    temporary = posixpath.join(dest.directory, f".{name}.part")
    try:
        async with await connect(dest) as conn, conn.start_sftp_client() as sftp:
            async with sftp.open(temporary, "wb") as remote:
                async for chunk in storage.get(key):
                    await remote.write(chunk)
            try:
                await sftp.posix_rename(temporary, final)
            except asyncssh.SFTPOpUnsupported:
                if await sftp.exists(final):
                    await sftp.remove(final)
                await sftp.rename(temporary, final)
            size = (await sftp.stat(final)).size
    except RemoteError:
        raise
    except (asyncssh.Error, OSError) as exc:
        raise DeliveryError(f"{dest.label}: {describe(exc)}") from exc
    if size != expected:
        raise DeliveryError(
            f"{dest.label}: {final} has {size} bytes on the server, sent {expected}"
        )
    return expected
