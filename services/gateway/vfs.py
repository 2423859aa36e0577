"""A tenant's virtual SFTP tree over object storage.

`/` holds two directories, `inbound` and `outbound`; everything below maps to
keys under `tenants/<slug>/<area>/`. Directories are implied by keys (S3 has none),
except the fixed ones every account sees from its creation: `/inbound/test` (test
files), `/outbound/results` (the answer to each processed file, read-only to the
partner) and `/outbound/test` (sample exports).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from datetime import datetime

from courier.common.areas import AREAS, area_key
from courier.common.storage import ObjectInfo, Storage, StorageError

# Directories that exist whether or not they hold anything, by area.
FIXED_DIRS: dict[str, tuple[str, ...]] = {"inbound": ("test",), "outbound": ("results", "test")}
RESULTS = "results"


class VfsError(Exception):
    """Refusal to hand back to the client; `code` is the SFTP status to send."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Entry:
    name: str
    is_dir: bool
    size: int = 0
    modified: datetime | None = None


@dataclass(frozen=True)
class Location:
    """A client path resolved inside the tenant's tree."""

    path: str  # normalised, absolute, e.g. /inbound/leave.csv
    area: str | None  # None for the root
    relpath: str  # below the area, "" for the area itself

    @property
    def is_root(self) -> bool:
        return self.area is None

    @property
    def is_area(self) -> bool:
        return self.area is not None and not self.relpath

    @property
    def is_fixed(self) -> bool:
        """One of the fixed directories (`/inbound/test`, `/outbound/results`, ...)."""
        return self.area is not None and self.relpath in FIXED_DIRS.get(self.area, ())

    @property
    def is_directory(self) -> bool:
        """A directory whatever storage holds: the root, an area or a fixed directory."""
        return self.is_root or self.is_area or self.is_fixed

    @property
    def is_result(self) -> bool:
        """In `/outbound/results`: partners read these, never change them."""
        return self.area == "outbound" and self.relpath.startswith(RESULTS + "/")


def resolve(raw: bytes | str, cwd: str = "/") -> Location:
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise VfsError("no_such_path", "file names must be UTF-8") from exc
    if "\x00" in text or "\\" in text:
        raise VfsError("permission_denied", "invalid character in path")
    joined = posixpath.join(cwd, text) if text else cwd
    if ".." in joined.split("/"):
        raise VfsError("permission_denied", "parent references are not allowed")
    path = posixpath.normpath(joined)
    if path.startswith("//"):
        path = path[1:]
    parts = [p for p in path.split("/") if p]
    if not parts:
        return Location("/", None, "")
    if parts[0] not in AREAS:
        raise VfsError("no_such_path", f"{path}: only /inbound and /outbound exist")
    return Location("/" + "/".join(parts), parts[0], "/".join(parts[1:]))


class TenantTree:
    def __init__(self, storage: Storage, tenant: str) -> None:
        self.storage = storage
        self.tenant = tenant

    def key(self, loc: Location) -> str:
        assert loc.area is not None
        return area_key(self.tenant, loc.area, loc.relpath)

    async def stat(self, loc: Location) -> Entry:
        if loc.is_directory:
            return Entry(posixpath.basename(loc.path) or "/", True)
        try:
            info = await self.storage.stat(self.key(loc))
            return Entry(posixpath.basename(loc.path), False, info.size, info.modified)
        except StorageError:
            pass
        if await self._has_children(loc):
            return Entry(posixpath.basename(loc.path), True)
        raise VfsError("no_such_file", f"{loc.path}: no such file")

    async def _has_children(self, loc: Location) -> bool:
        return bool(await self.storage.list(self.key(loc)))

    async def listdir(self, loc: Location) -> list[Entry]:
        if loc.is_root:
            return [Entry(area, True) for area in AREAS]
        prefix = self.key(loc)
        objects: list[ObjectInfo] = await self.storage.list(prefix)
        if not objects and not loc.is_directory:
            if await self.storage.exists(prefix):
                raise VfsError("no_such_file", f"{loc.path}: not a directory")
            raise VfsError("no_such_file", f"{loc.path}: no such directory")
        seen: dict[str, Entry] = {}
        for obj in objects:
            rest = obj.key[len(prefix) + 1 :]
            head, sep, _ = rest.partition("/")
            if sep:
                seen.setdefault(head, Entry(head, True))
            else:
                seen[head] = Entry(head, False, obj.size, obj.modified)
        if loc.is_area:
            for name in FIXED_DIRS.get(loc.area or "", ()):
                seen[name] = Entry(name, True)
        return sorted(seen.values(), key=lambda e: e.name)
