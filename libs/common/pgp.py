"""OpenPGP through Debian's `gnupg`, driven by python-gnupg.

Keys live in the database (`pgp_keys`), not in a long-lived keyring: each operation
builds a throw-away GNUPGHOME holding exactly the keys it may use (the tenant's own
key pair, the partner keys allowed to sign or receive), so a file can only be
decrypted with its tenant's key and a signature only counts from the partner it is
expected from. gpg streams: plaintext goes to a file, never into memory.

Errors are `PgpRefused` with a reason written for the partner who sent the file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import gnupg

GPG_BINARY = "gpg"

# What gpg's status lines mean, for the partner who sent the file.
WRONG_KEY = (
    "the file is not encrypted to this tenant's key: encrypt it to the key "
    "`courier keys export-public` gives (fingerprint {fingerprints})"
)
CORRUPT = "the encrypted data is damaged or cut short: send the file again"
BAD_SIGNATURE = "the signature does not match the file: it was changed after signing"
UNKNOWN_SIGNER = "the file is signed by a key this tenant does not know ({signer})"
UNSIGNED = "the file must be signed with your registered key, and it is not signed"
NOT_PGP = "the file is not OpenPGP data"


class PgpRefused(Exception):
    """The file or key is refused; `reason` is shown to the partner and support."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PgpTooLarge(PgpRefused):
    """The plaintext would pass the size the caller allowed (see `Keyring.decrypt`)."""


def gpg_available() -> bool:
    return shutil.which(GPG_BINARY) is not None


class PgpKeyLocked(Exception):
    """Our secret key would not open with the configured passphrase: our fault, not
    the partner's file."""


@dataclass(frozen=True)
class KeyInfo:
    """What people see of a key: never its secret part."""

    fingerprint: str
    algorithm: str
    bits: int | None
    user_ids: list[str]
    created_at: datetime | None
    expires_at: datetime | None
    has_secret: bool = False

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


# RFC 4880/9580 public-key algorithm ids as gpg reports them.
_ALGORITHMS = {
    "1": "rsa",
    "2": "rsa",
    "3": "rsa",
    "16": "elgamal",
    "17": "dsa",
    "18": "ecdh",
    "19": "ecdsa",
    "22": "eddsa",
    "25": "x25519",
    "27": "ed25519",
}


def _when(stamp: str | None) -> datetime | None:
    return datetime.fromtimestamp(int(stamp), UTC) if stamp else None


def _info(raw: dict, has_secret: bool) -> KeyInfo:
    algorithm = _ALGORITHMS.get(str(raw.get("algo")), f"algo-{raw.get('algo')}")
    if raw.get("curve"):
        algorithm = f"{algorithm}/{raw['curve']}"
    length = raw.get("length")
    return KeyInfo(
        fingerprint=raw["fingerprint"],
        algorithm=algorithm,
        bits=int(length) if length else None,
        user_ids=list(raw.get("uids") or []),
        created_at=_when(raw.get("date")),
        expires_at=_when(raw.get("expires")),
        has_secret=has_secret,
    )


@contextlib.contextmanager
def _home() -> Iterator[gnupg.GPG]:
    """A private GNUPGHOME, and its agent stopped afterwards (short path: socket limit)."""
    home = tempfile.mkdtemp(prefix="cgpg-", dir="/tmp" if os.path.isdir("/tmp") else None)
    os.chmod(home, 0o700)
    try:
        gpg = gnupg.GPG(gpgbinary=GPG_BINARY, gnupghome=home)
        gpg.encoding = "utf-8"
        yield gpg
    finally:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                ["gpgconf", "--kill", "gpg-agent"],
                env={**os.environ, "GNUPGHOME": home},
                capture_output=True,
                timeout=10,
                check=False,
            )
        shutil.rmtree(home, ignore_errors=True)


def inspect(armored: str | bytes) -> list[KeyInfo]:
    """The keys in an export (public or secret) without keeping them anywhere."""
    text = armored.decode("utf-8", "replace") if isinstance(armored, bytes) else armored
    with _home() as gpg:
        result = gpg.import_keys(text)
        if not result.fingerprints:
            raise PgpRefused("no OpenPGP key found in the given data")
        secret = {k["fingerprint"] for k in gpg.list_keys(secret=True)}
        return [_info(k, k["fingerprint"] in secret) for k in gpg.list_keys()]


def read_keys(data: bytes) -> tuple[list[KeyInfo], str]:
    """The keys in an export (armored or binary, public or secret) and their public
    part as gpg exports it, armored: what is stored for others to encrypt to."""
    with _home() as gpg:
        result = gpg.import_keys(data)
        if not result.fingerprints:
            raise PgpRefused("no OpenPGP key found in the given data")
        secret = {k["fingerprint"] for k in gpg.list_keys(secret=True)}
        keys = gpg.list_keys()
        public = str(gpg.export_keys([k["fingerprint"] for k in keys]))
        return [_info(k, k["fingerprint"] in secret) for k in keys], public


def generate(name: str, email: str, passphrase: str, expire: str = "2y") -> tuple[str, str]:
    """A new key pair (ed25519 signing, cv25519 encryption subkey): (public, secret)
    armored; the secret one protected by `passphrase`."""
    with _home() as gpg:
        params = gpg.gen_key_input(
            key_type="EDDSA",
            key_curve="ed25519",
            key_usage="sign",
            subkey_type="ECDH",
            subkey_curve="cv25519",
            subkey_usage="encrypt",
            name_real=name,
            name_email=email,
            expire_date=expire,
            passphrase=passphrase,
        )
        key = gpg.gen_key(params)
        if not key.fingerprint:
            raise PgpRefused(f"gpg could not generate a key: {key.stderr.strip()[-200:]}")
        public = gpg.export_keys(key.fingerprint)
        secret = gpg.export_keys(key.fingerprint, secret=True, passphrase=passphrase)
        return public, secret


def check_secret_key(armored: str, passphrase: str) -> None:
    """Refuse a secret key that `passphrase` does not unlock, or that no passphrase
    protects (it would sit in the database in clear): a probe encrypted to the key must
    stay shut to another passphrase and open to this one."""
    with _home() as gpg:
        gpg.import_keys(armored)
        own = [k["fingerprint"] for k in gpg.list_keys(secret=True)]
        if not own:
            raise PgpRefused("no secret key found in the given data")
        probe = gpg.encrypt(b"courier key check\n", own, always_trust=True, armor=True)
        if not probe.ok:
            raise PgpRefused("the key cannot decrypt: it has no usable encryption subkey")
        # Wrong one first: a passphrase that worked would be cached by the agent.
        if gpg.decrypt(str(probe), passphrase="not " + passphrase).ok:
            raise PgpRefused(
                "the secret key is not protected by a passphrase: protect it with the "
                "passphrase in COURIER_PGP_PASSPHRASE (gpg --passwd) and export it again"
            )
        if not gpg.decrypt(str(probe), passphrase=passphrase).ok:
            raise PgpRefused(
                "COURIER_PGP_PASSPHRASE does not unlock this secret key: protect it with "
                "that passphrase (gpg --passwd) and export it again"
            )


@dataclass
class Decrypted:
    """What a decryption found out besides the plaintext."""

    signed: bool = False
    signer: str | None = None
    encrypted_to: list[str] = field(default_factory=list)


class Keyring:
    """The keys one operation may use, in a private GNUPGHOME (use as a context manager)."""

    def __init__(
        self,
        secret_keys: Iterable[str] = (),
        public_keys: Iterable[str] = (),
        passphrase: str | None = None,
    ) -> None:
        self._secret = list(secret_keys)
        self._public = list(public_keys)
        self._passphrase = passphrase
        self._stack = contextlib.ExitStack()
        self.gpg: gnupg.GPG

    def __enter__(self) -> Keyring:
        self.gpg = self._stack.enter_context(_home())
        for armored in [*self._secret, *self._public]:
            self.gpg.import_keys(armored)
        self.own = [k["fingerprint"] for k in self.gpg.list_keys(secret=True)]
        self.partners = [
            k["fingerprint"] for k in self.gpg.list_keys() if k["fingerprint"] not in self.own
        ]
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def decrypt(
        self,
        src: Path,
        dst: Path,
        *,
        require_signature: bool = False,
        max_output: int | None = None,
    ) -> Decrypted:
        """Decrypt `src` into `dst`, streaming; a signature must be valid and from one of
        the partner keys of this keyring. Raises `PgpRefused` with the exact reason
        (and removes `dst`); `PgpTooLarge` when the plaintext would pass `max_output`
        bytes (OpenPGP compresses: a small file can expand without bound)."""
        extra = ["--no-auto-key-retrieve"]
        if max_output is not None:
            extra += ["--max-output", str(max_output)]
        with src.open("rb") as fh:
            result = self.gpg.decrypt_file(
                fh,
                always_trust=True,
                passphrase=self._passphrase,
                output=str(dst),
                extra_args=extra,
            )
        status = _status_words(result.stderr)
        try:
            if "exceeded --max-output limit" in (result.stderr or ""):
                raise PgpTooLarge(f"the plaintext passes {max_output} bytes")
            if status & {"BAD_PASSPHRASE", "MISSING_PASSPHRASE"} or _locked(result.stderr):
                dst.unlink(missing_ok=True)
                raise PgpKeyLocked(
                    "the tenant's secret key does not open with the configured "
                    "COURIER_PGP_PASSPHRASE"
                )
            if "NO_SECKEY" in status or ("DECRYPTION_FAILED" in status and not self.own):
                raise PgpRefused(WRONG_KEY.format(fingerprints=", ".join(self.own) or "-"))
            if "NODATA" in status and not status & {"DECRYPTION_OKAY", "BEGIN_DECRYPTION"}:
                raise PgpRefused(NOT_PGP)
            # gpg stops at a bad signature before it can say DECRYPTION_OKAY.
            if "BADSIG" in status:
                raise PgpRefused(BAD_SIGNATURE)
            if not result.ok or "DECRYPTION_OKAY" not in status:
                raise PgpRefused(CORRUPT)
            signed = bool(status & {"GOODSIG", "VALIDSIG", "ERRSIG", "BADSIG"})
            signer = result.pubkey_fingerprint or result.fingerprint or None
            if "ERRSIG" in status or "NO_PUBKEY" in status:
                key = result.key_id or "unknown key"
                raise PgpRefused(UNKNOWN_SIGNER.format(signer=key))
            if require_signature and not signed:
                raise PgpRefused(UNSIGNED)
            if signed and signer not in self.partners:
                raise PgpRefused(UNKNOWN_SIGNER.format(signer=signer))
            # gpg can say DECRYPTION_OKAY and still fail to write all of the plaintext.
            if result.returncode:
                raise PgpRefused(CORRUPT)
        except PgpRefused:
            dst.unlink(missing_ok=True)
            raise
        return Decrypted(signed=signed, signer=signer if signed else None)

    def encrypt(
        self,
        src: Path,
        dst: Path,
        *,
        recipients: list[str],
        sign: bool = False,
        armor: bool = False,
    ) -> None:
        """Encrypt `src` to `recipients` into `dst`, streaming; signed with this keyring's
        own key when `sign`."""
        signer = self.own[0] if sign and self.own else None
        if sign and signer is None:
            raise PgpRefused("no Courier key pair to sign with: run `courier keys generate`")
        with src.open("rb") as fh:
            result = self.gpg.encrypt_file(
                fh,
                recipients,
                sign=signer,
                passphrase=self._passphrase if signer else None,
                always_trust=True,
                armor=armor,
                output=str(dst),
                extra_args=["--compress-algo", "none"] if not armor else None,
            )
        if not result.ok:
            dst.unlink(missing_ok=True)
            why = _gpg_failure(result.stderr) or result.status or "gpg failed"
            raise PgpRefused(f"could not encrypt: {why}")


def _gpg_failure(stderr: str) -> str | None:
    """gpg's own words for what failed (`signing failed: Bad passphrase`)."""
    failed = [
        line.removeprefix("gpg: ")
        for line in (stderr or "").splitlines()
        if line.startswith("gpg: ") and " failed: " in line
    ]
    return failed[0] if failed else None


# libgpg-error codes of `[GNUPG:] ERROR pkdecrypt_failed N` that mean our secret key
# stayed locked: bad passphrase, no passphrase, passphrase entry cancelled.
_LOCKED_CODES = {11, 31, 99}


def _locked(stderr: str) -> bool:
    for line in (stderr or "").splitlines():
        parts = line.split()
        if parts[:3] == ["[GNUPG:]", "ERROR", "pkdecrypt_failed"] and len(parts) > 3:
            with contextlib.suppress(ValueError):
                if int(parts[3]) & 0xFFFF in _LOCKED_CODES:
                    return True
    return False


def _status_words(stderr: str) -> set[str]:
    """The `[GNUPG:] WORD` status keywords gpg printed."""
    return {
        line.split()[1]
        for line in (stderr or "").splitlines()
        if line.startswith("[GNUPG:] ") and len(line.split()) > 1
    }
