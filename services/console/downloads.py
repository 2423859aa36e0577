"""Every file the console hands out: a safe Content-Disposition, an audit line, a stream.

A file name is partner text: it may hold any Unicode, quotes, `;` or a line break.
Headers are latin-1 on the wire, so a raw name either breaks the response (HTTP 500)
or splits the header. `content_disposition` gives RFC 6266's two forms: an ASCII
fallback with every dangerous character replaced, and `filename*` percent-encoded
UTF-8 that browsers prefer. Every download is audited in its own small transaction
before the first byte is sent, so a download that was served is always on record.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from urllib.parse import quote

from fastapi import HTTPException, Request
from fastapi.responses import StreamingResponse

from courier.common.storage import NotFound, Storage
from courier.console.access import Viewer, audit

# What a fallback name may keep: printable ASCII but quotes, backslash, `;` and `,`.
_UNSAFE_ASCII = re.compile(r'[^\x20-\x7e]|["\\;,]')
# RFC 8187 attr-char beyond letters, digits and `-._~` (which `quote` always keeps).
_ATTR_CHARS = "!#$&+^`|"


def ascii_fallback(filename: str) -> str:
    """The name as old clients see it: one `_` per character that is not plain ASCII."""
    return _UNSAFE_ASCII.sub("_", filename).strip() or "download"


def content_disposition(filename: str) -> str:
    """`attachment; filename="…"; filename*=UTF-8''…`, ASCII only, whatever `filename` holds."""
    encoded = quote(filename or "download", safe=_ATTR_CHARS, encoding="utf-8")
    return f"attachment; filename=\"{ascii_fallback(filename)}\"; filename*=UTF-8''{encoded}"


def attachment(
    body: AsyncIterator[bytes],
    filename: str,
    *,
    media_type: str = "application/octet-stream",
    size: int | None = None,
    sha256: str | None = None,
) -> StreamingResponse:
    """A streamed file response; size and checksum headers only when they are known."""
    headers = {"Content-Disposition": content_disposition(filename)}
    if size is not None:
        headers["Content-Length"] = str(size)
    if sha256 and re.fullmatch(r"[0-9a-f]{64}", sha256):
        headers["X-Checksum-Sha256"] = sha256
    return StreamingResponse(body, media_type=media_type, headers=headers)


async def audit_download(
    request: Request,
    viewer: Viewer,
    *,
    what: str,
    file_name: str,
    target_type: str,
    target_id: object,
    tenant_id: uuid.UUID | None,
) -> None:
    """Record who downloaded which file, committed before the file is streamed."""
    async with request.app.state.db.transaction() as s:
        audit(
            s,
            request,
            viewer,
            action="download",
            tenant_id=tenant_id,
            target_type=target_type,
            target_id=target_id,
            summary=f"downloaded the {what} file {file_name!r}",
            details={"what": what, "file_name": file_name},
        )


async def stored_file(
    request: Request,
    viewer: Viewer,
    *,
    key: str | None,
    file_name: str,
    what: str,
    target_type: str,
    target_id: object,
    tenant_id: uuid.UUID | None,
    sha256: str | None = None,
    media_type: str = "application/octet-stream",
    storage: Storage | None = None,
) -> StreamingResponse:
    """Audit, then stream `key` from storage (the app's unless given) as `file_name`.

    410 when the object is gone (or never existed: `key` None), so the person
    learns the record exists and only the bytes are missing.
    """
    store: Storage = storage or request.app.state.storage
    if key is None:
        raise HTTPException(410, f"there is no {what} file for this {target_type}")
    try:
        info = await store.stat(key)
    except NotFound as exc:
        raise HTTPException(410, f"the {what} file is no longer in storage") from exc
    await audit_download(
        request,
        viewer,
        what=what,
        file_name=file_name,
        target_type=target_type,
        target_id=target_id,
        tenant_id=tenant_id,
    )
    return attachment(
        store.get(key), file_name, media_type=media_type, size=info.size, sha256=sha256
    )


async def generated_file(
    request: Request,
    viewer: Viewer,
    body: AsyncIterator[bytes],
    *,
    file_name: str,
    what: str,
    target_type: str,
    target_id: object,
    tenant_id: uuid.UUID | None,
    media_type: str = "text/csv; charset=utf-8",
) -> StreamingResponse:
    """Audit, then stream bytes made on the fly (no length or checksum is known ahead)."""
    await audit_download(
        request,
        viewer,
        what=what,
        file_name=file_name,
        target_type=target_type,
        target_id=target_id,
        tenant_id=tenant_id,
    )
    return attachment(body, file_name, media_type=media_type)


__all__ = [
    "ascii_fallback",
    "attachment",
    "audit_download",
    "content_disposition",
    "generated_file",
    "stored_file",
]
