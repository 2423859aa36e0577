"""Whatever bytes a client sends as a path, resolution stays inside the tenant's tree.

`resolve` either refuses with a VfsError carrying an SFTP status, or names a place
under `/inbound` or `/outbound` whose storage key lies under the tenant's own prefix.
"""

from __future__ import annotations

import posixpath

from hypothesis import example, given
from hypothesis import strategies as st

from courier.common.areas import AREAS
from courier.gateway.vfs import Location, TenantTree, VfsError, resolve

TENANT = "acme"
STATUSES = {"no_such_file", "no_such_path", "permission_denied", "failure", "op_unsupported"}
# Where a session may stand when it sends a relative path.
CWDS = ["/", "/inbound", "/outbound", "/inbound/test", "/outbound/results", "/outbound/test"]

# Path pieces that try to climb out, hide a separator, or confuse normalisation.
TRICKS = [
    "..", ".", "", "...", "inbound", "outbound", "test", "results", "tenants", TENANT, "other",
    "\\", "..\\..", "\x00", "%2e%2e", "..%2f", "\u2025", "\uff0e\uff0e", "\u202e", "~", "//",
    " ", "\t", "\r\n", "a" * 300,
]  # fmt: skip
segments = st.one_of(st.sampled_from(TRICKS), st.text(max_size=12))
crafted = st.builds(
    lambda lead, parts: (lead + "/".join(parts)).encode("utf-8", "surrogatepass"),
    st.sampled_from(["", "/", "//", "///"]),
    st.lists(segments, max_size=8),
)
paths = st.one_of(crafted, st.binary(max_size=300), st.text(max_size=100).map(str.encode))


class _NoStorage:
    """`TenantTree.key` is pure; the tree never touches storage here."""


def _check_inside(loc: Location) -> None:
    assert loc.path.startswith("/") and posixpath.normpath(loc.path) == loc.path
    parts = [p for p in loc.path.split("/") if p]
    assert ".." not in parts and "." not in parts
    assert "\x00" not in loc.path and "\\" not in loc.path
    if loc.area is None:
        assert loc.path == "/" and loc.relpath == ""
        return
    assert loc.area in AREAS and parts[0] == loc.area
    assert loc.relpath == "/".join(parts[1:])
    key = TenantTree(_NoStorage(), TENANT).key(loc)  # type: ignore[arg-type]
    prefix = f"tenants/{TENANT}/{loc.area}"
    assert key == prefix or key.startswith(prefix + "/")
    assert posixpath.normpath(key) == key, key


@given(raw=paths, cwd=st.sampled_from(CWDS))
@example(raw=b"../../tenants/other/inbound/x", cwd="/inbound")
@example(raw=b"/inbound/../../etc/passwd", cwd="/")
@example(raw=b"//inbound//./x", cwd="/")
@example(raw=b"\xff\xfe", cwd="/")
@example(raw=b"inbound\\..\\..\\x", cwd="/")
@example(raw=b"x\x00.csv", cwd="/inbound")
def test_a_path_resolves_inside_the_tenant_tree_or_is_refused(raw: bytes, cwd: str) -> None:
    try:
        loc = resolve(raw, cwd)
    except VfsError as exc:
        assert exc.code in STATUSES and str(exc)
        return
    _check_inside(loc)


@given(first=paths, then=paths)
def test_a_path_relative_to_a_resolved_directory_stays_inside(first: bytes, then: bytes) -> None:
    """A client that changed directory first (its cwd is whatever the gateway resolved)."""
    try:
        cwd = resolve(first).path
        loc = resolve(then, cwd)
    except VfsError:
        return
    _check_inside(loc)
