"""Host keys generated once and kept, so partners' pinned fingerprints stay valid.

ed25519 and RSA (3072 bits, signed with SHA-2 only). An ECDSA key left by an older
version stays on disk but is no longer offered: NIST-curve host keys fail an audit.

Rotation: a key to come sits next to the current one as `<file>.next` (e.g.
`ssh_host_ed25519_key.next`). It is not used in key exchange; after login the gateway
announces it with OpenSSH's `hostkeys-00` extension, so OpenSSH clients add it to
their known_hosts, while the operator publishes its fingerprint to everyone else.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import asyncssh

from courier.common.logging import get_logger

log = get_logger(__name__)

RSA_BITS = 3072
# Algorithm, file, generation options; the first is required, the others are offered
# when present or creatable (a read-only mount missing one starts without it).
_KEYS: tuple[tuple[str, str, dict[str, int]], ...] = (
    ("ssh-ed25519", "ssh_host_ed25519_key", {}),
    ("ssh-rsa", "ssh_host_rsa_key", {"key_size": RSA_BITS}),
)


def _create(path: Path, alg: str, options: dict[str, int]) -> None:
    """Create the key unless another process got there first, whose key is then kept.

    Replicas sharing a key directory start together: each finds the key missing and
    generates one. The first to link its key in wins and the others read that one, so
    every replica serves the same host key (a plain replace let each keep its own, and a
    shared temporary name made one fail to start)."""
    key = asyncssh.generate_private_key(alg, **options)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(key.export_private_key())
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return
        except OSError:
            # A filesystem without hard links: last writer wins, as before.
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    path.with_suffix(".pub").write_bytes(key.export_public_key())


def load_or_create(directory: Path) -> list[asyncssh.SSHKey]:
    # A read-only mount exists already; a key missing from it is reported below.
    with contextlib.suppress(OSError):
        directory.mkdir(parents=True, exist_ok=True)
    keys = []
    for index, (alg, filename, options) in enumerate(_KEYS):
        path = directory / filename
        if not path.exists():
            try:
                _create(path, alg, options)
            except OSError as exc:
                if index == 0:
                    raise
                log.warning("host key missing and not creatable", file=str(path), error=str(exc))
                continue
        keys.append(asyncssh.read_private_key(path))
    return keys


NEXT = ".next"


def load_next(directory: Path) -> list[asyncssh.SSHKey]:
    """The keys to come (`<file>.next`), announced but not yet used; never created here."""
    paths = [directory / f"{filename}{NEXT}" for _, filename, _ in _KEYS]
    return [asyncssh.read_private_key(path) for path in paths if path.exists()]


def fingerprints(directory: Path, *, coming: bool = False) -> dict[str, str]:
    """SHA256 fingerprint by key type, as `ssh-keygen -lf` and OpenSSH clients show it:
    of the keys in use, or (`coming`) of the keys to come."""
    keys = load_next(directory) if coming else load_or_create(directory)
    return {key.get_algorithm(): key.get_fingerprint("sha256") for key in keys}
