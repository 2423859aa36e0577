"""Host keys generated once and kept, so partners' pinned fingerprints stay valid."""

from __future__ import annotations

import os
from pathlib import Path

import asyncssh

KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512")
_FILES = {"ssh-ed25519": "ssh_host_ed25519_key", "ecdsa-sha2-nistp256": "ssh_host_ecdsa_key"}


def load_or_create(directory: Path) -> list[asyncssh.SSHKey]:
    directory.mkdir(parents=True, exist_ok=True)
    keys = []
    for alg, filename in _FILES.items():
        path = directory / filename
        if not path.exists():
            key = asyncssh.generate_private_key(alg)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(key.export_private_key())
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
            path.with_suffix(".pub").write_bytes(key.export_public_key())
        keys.append(asyncssh.read_private_key(path))
    return keys


def fingerprints(directory: Path) -> dict[str, str]:
    return {key.get_algorithm(): key.get_fingerprint("sha256") for key in load_or_create(directory)}
