"""A tenant's virtual SFTP tree over object storage.

`/` holds two directories, `inbound` and `outbound`; everything below maps to
keys under `tenants/<slug>/<area>/`. Directories are implied by keys (S3 has none),
except the fixed ones every account sees from its creation: `/inbound/test` (test
files), `/outbound/results` (the answer to each processed file, read-only to the
partner) and `/outbound/test` (sample exports).
"""

from __future__ import annotations

import posixpath
import unicodedata
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
        raise NameRefused("no_such_path", "not_utf8", "file names must be UTF-8") from exc
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


# The longest file name an upload may have, in UTF-8 bytes. What the name becomes must
# fit everywhere: a file system's 255-byte names with the result file's suffix
# (`.<UTC stamp>-<id>.result.csv`, 37 bytes) added, and the 255-character columns that
# hold it (with `test/` in front for a test file).
MAX_NAME_BYTES = 200
# Bidirectional controls make a name read differently from what it is
# (`invoice\u202ecsv.exe`); no partner's file needs them.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class NameRefused(VfsError):
    """An upload refused for its name: `reason` is a short token for audit and metrics."""

    def __init__(self, code: str, reason: str, message: str) -> None:
        super().__init__(code, message)
        self.reason = reason


def check_upload(loc: Location) -> None:
    """Refuse, before a byte is written, a name that could not be stored, announced and
    imported whole: so no upload fails at its end, and none is stored but never seen.

    Uploads go into `/inbound` or `/inbound/test`; other folders do not exist (they cannot
    be made), as OpenSSH would say for a missing directory. The name holds no control
    or bidirectional-control character, does not begin with a space nor end with a space
    or a dot (names Windows cannot hold), and is at most `MAX_NAME_BYTES` long.
    """
    folder, _, name = loc.relpath.rpartition("/")
    if folder and folder not in FIXED_DIRS.get(loc.area or "", ()):
        raise NameRefused(
            "no_such_file",
            "no_such_folder",
            f"{printable(loc.path)}: no such folder; uploads go to /inbound or /inbound/test",
        )
    if any(unicodedata.category(c) == "Cc" or c in _BIDI_CONTROLS for c in name):
        raise NameRefused(
            "permission_denied",
            "control_character",
            f"{printable(loc.path)}: file names may not hold control characters",
        )
    if name != name.lstrip() or name != name.rstrip(" ."):
        raise NameRefused(
            "permission_denied",
            "edge_space_or_dot",
            f"{printable(loc.path)}: file names may not begin with a space "
            "or end with a space or a dot",
        )
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise NameRefused(
            "permission_denied",
            "too_long",
            f"{printable(loc.path)[:80]}...: file names are limited to {MAX_NAME_BYTES} bytes",
        )


def printable(text: str) -> str:
    """`text` safe for a log line, the audit and a terminal: control and bidirectional
    characters shown as escapes (`\\x01`, `\\u202e`)."""
    return "".join(
        c.encode("unicode_escape").decode("ascii")
        if unicodedata.category(c) == "Cc" or c in _BIDI_CONTROLS
        else c
        for c in text
    )


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
