"""OpenPGP from the partner's side: the `gpg` command line in its own GNUPGHOME.

The partner's tools are the peer nobody here wrote, so tests make partner keys, encrypt
what partners send and decrypt what they collect with `gpg` itself, never with
`courier.common.pgp`. Courier's own key pair for the tenant is made once per session
(key generation and agents cost seconds).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

# COURIER_PGP_PASSPHRASE in tests: protects the tenant's secret key.
PASSPHRASE = "correct horse battery staple for pgp"


class GpgFailed(Exception):
    """`gpg` exited non-zero; the message holds its status lines."""


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    # gpg's `[GNUPG:] …` status lines and messages.
    status: str


@dataclass(frozen=True)
class KeyPair:
    """Courier's key pair for a tenant, as `courier keys generate` would store it."""

    fingerprint: str
    public: str
    secret: str
    passphrase: str = PASSPHRASE


class GpgHome:
    """One person's `gpg` with its own keyring (a short path: gpg-agent's socket limit)."""

    def __init__(self, name: str) -> None:
        self.home = Path(tempfile.mkdtemp(prefix=f"tgpg-{name[:6]}-", dir="/tmp"))
        self.home.chmod(0o700)
        self.fingerprint = ""

    def gpg(self, *args: str, stdin: bytes | None = None, check: bool = True) -> Ran:
        """Run `gpg ARGS…` in this home."""
        proc = subprocess.run(
            ["gpg", "--batch", "--yes", "--status-fd", "2", "--trust-model", "always", *args],
            env={**os.environ, "GNUPGHOME": str(self.home)},
            input=stdin,
            capture_output=True,
            timeout=120,
            check=False,
        )
        ran = Ran(proc.returncode, proc.stdout.decode(errors="replace"),
                  proc.stderr.decode(errors="replace"))  # fmt: skip
        if check and ran.code != 0:
            raise GpgFailed(ran.status)
        return ran

    def generate(
        self, uid: str, expire: str = "2y", *, passphrase: str = "", faked_time: str | None = None
    ) -> str:
        """A new ed25519/cv25519 key pair here (`faked_time`: made back then, so it can
        be expired already); its fingerprint."""
        when = ["--faked-system-time", faked_time] if faked_time else []
        secret = ["--pinentry-mode", "loopback", "--passphrase", passphrase]
        self.gpg(*when, *secret, "--quick-gen-key", uid, "ed25519", "sign", expire)
        fingerprint = self.fingerprints(uid)[-1]
        self.gpg(*when, *secret, "--quick-add-key", fingerprint, "cv25519", "encr", expire)
        self.fingerprint = self.fingerprint or fingerprint
        return fingerprint

    def fingerprints(self, match: str = "") -> list[str]:
        return _primary_fingerprints(
            self.gpg("--with-colons", "--list-keys", *([match] if match else [])).out
        )

    def export(self, fingerprint: str | None = None) -> str:
        """The public key, armored, as a partner sends it."""
        return self.gpg("--armor", "--export", fingerprint or self.fingerprint).out

    def export_secret(self, fingerprint: str | None = None, passphrase: str = "") -> str:
        return self.gpg(
            "--pinentry-mode", "loopback", "--passphrase", passphrase,
            "--armor", "--export-secret-keys", fingerprint or self.fingerprint,
        ).out  # fmt: skip

    def import_key(self, armored: str) -> None:
        self.gpg("--import", stdin=armored.encode())

    def encrypt(
        self,
        src: Path,
        recipient: str,
        *,
        sign: bool = False,
        armor: bool = False,
        dst: Path | None = None,
    ) -> Path:
        """`gpg --encrypt` `src` to `recipient` (a fingerprint known here), signed with
        this home's own key when `sign`."""
        dst = dst or src.with_name(src.name + (".asc" if armor else ".pgp"))
        args = ["--encrypt", "--recipient", recipient, "--output", str(dst)]
        if sign:
            args = ["--sign", "--local-user", self.fingerprint, *args]
        if armor:
            args = ["--armor", *args]
        self.gpg(*args, str(src))
        return dst

    def decrypt(self, src: Path, dst: Path | None = None) -> tuple[Path, str]:
        """`gpg --decrypt` `src` with this home's secret key: the plaintext file and gpg's
        status lines (GOODSIG … when signed)."""
        dst = dst or src.with_name(src.name + ".out")
        return dst, self.gpg("--output", str(dst), "--decrypt", str(src)).status

    def close(self) -> None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                ["gpgconf", "--kill", "gpg-agent"],
                env={**os.environ, "GNUPGHOME": str(self.home)},
                capture_output=True,
                timeout=10,
                check=False,
            )
        subprocess.run(["rm", "-rf", str(self.home)], check=False)


def gpg_encrypt(
    path: Path,
    recipient: KeyPair | str,
    signer: GpgHome | None = None,
    armor: bool = False,
    dst: Path | None = None,
) -> Path:
    """What a partner runs to send `path`: encrypted to `recipient` (Courier's key pair
    or an armored public key), signed by `signer` when given."""
    public = recipient.public if isinstance(recipient, KeyPair) else recipient
    home = signer or GpgHome("anon")
    try:
        home.import_key(public)
        [fingerprint] = _fingerprints_in(home, public)
        return home.encrypt(path, fingerprint, sign=signer is not None, armor=armor, dst=dst)
    finally:
        if signer is None:
            home.close()


def gpg_decrypt(path: Path, home: GpgHome) -> tuple[bytes, str]:
    """What a partner runs on a collected file: the plaintext and gpg's status lines."""
    out, status = home.decrypt(path)
    try:
        return out.read_bytes(), status
    finally:
        out.unlink(missing_ok=True)


def _fingerprints_in(home: GpgHome, armored: str) -> list[str]:
    shown = home.gpg("--with-colons", "--import-options", "show-only", "--import",
                     stdin=armored.encode())  # fmt: skip
    return _primary_fingerprints(shown.out)


def _primary_fingerprints(colons: str) -> list[str]:
    """The primary keys' fingerprints in `gpg --with-colons` output."""
    lines = colons.splitlines()
    return [
        lines[i + 1].split(":")[9]
        for i, line in enumerate(lines)
        if line.startswith(("pub:", "sec:")) and i + 1 < len(lines)
        and lines[i + 1].startswith("fpr:")
    ]  # fmt: skip


def tenant_key_pair(name: str = "Courier acme", email: str = "pgp@acme.courier.example") -> KeyPair:
    """Courier's key pair for a tenant, made by `gpg` and protected by PASSPHRASE."""
    home = GpgHome("tenant")
    try:
        fingerprint = home.generate(f"{name} <{email}>", passphrase=PASSPHRASE)
        return KeyPair(fingerprint, home.export(), home.export_secret(passphrase=PASSPHRASE))
    finally:
        home.close()
