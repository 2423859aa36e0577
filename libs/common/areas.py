"""Where a tenant's files live in object storage.

`inbound` and `outbound` are what partners see over SFTP; `received` holds an
immutable copy of every announced file (the one imports read and the audit serves).
"""

from __future__ import annotations

import uuid

AREAS = ("inbound", "outbound")
# Names that clients use while an upload is in progress (WinSCP, lftp, curl, ...).
TEMPORARY_SUFFIXES = (".filepart", ".part", ".partial", ".tmp", ".temp", ".crdownload")


def area_key(tenant: str, area: str, relpath: str = "") -> str:
    base = f"tenants/{tenant}/{area}"
    return f"{base}/{relpath}" if relpath else base


def received_key(tenant: str, file_id: uuid.UUID, name: str) -> str:
    return f"tenants/{tenant}/received/{file_id}/{name}"


def is_temporary_name(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base.startswith(".") or base.lower().endswith(TEMPORARY_SUFFIXES)
