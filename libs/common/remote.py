"""A remote SFTP server Courier talks to (a vendor's), and how to connect to it safely.

Credentials are never in the spec itself but referenced (`env:NAME`, `file:/path`),
and the server's host key is pinned by its SHA256 fingerprint: an unknown or changed
key is refused before any credential is sent. Pushing and pulling build on `connect`.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncssh
from pydantic import Field, field_validator, model_validator

from courier.common.specs import StrictModel

SECRET_SCHEMES = ("env:", "file:")


class RemoteError(Exception):
    """A remote server could not be used; the message is safe to show and log."""


class HostKeyRefused(RemoteError):
    pass


def check_secret_ref(value: str) -> str:
    if not value.startswith(SECRET_SCHEMES) or len(value.split(":", 1)[1]) == 0:
        raise ValueError("give a secret reference, env:NAME or file:/path, not the secret itself")
    return value


def resolve_secret(ref: str) -> str:
    """The secret a reference points at; the error names the reference, never a value."""
    scheme, _, target = ref.partition(":")
    if scheme == "env":
        value = os.environ.get(target)
        if value is None:
            raise RemoteError(f"secret {ref} is not set")
        return value
    if scheme == "file":
        try:
            return Path(target).read_text().strip("\n")
        except OSError as exc:
            raise RemoteError(f"secret {ref} cannot be read: {exc.strerror}") from exc
    raise RemoteError(f"unknown secret reference {ref!r}")


class RemoteEndpoint(StrictModel):
    """Where a remote SFTP server is and how Courier proves who it is and who the server is."""

    host: str
    port: int = Field(default=22, ge=1, le=65535)
    user: str
    password: str | None = None
    private_key: str | None = None
    host_key_sha256: str = Field(pattern=r"^SHA256:[A-Za-z0-9+/]{43}=?$")
    connect_timeout: float = Field(default=20, gt=0)

    _password = field_validator("password")(lambda v: v if v is None else check_secret_ref(v))
    _key = field_validator("private_key")(lambda v: v if v is None else check_secret_ref(v))

    @model_validator(mode="after")
    def _some_credential(self) -> RemoteEndpoint:
        if not (self.password or self.private_key):
            raise ValueError("give password or private_key (a secret reference)")
        return self

    @property
    def label(self) -> str:
        return f"sftp://{self.user}@{self.host}:{self.port}"


def describe(exc: BaseException) -> str:
    """A short, secret-free reason for a failed connection or transfer."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, asyncssh.PermissionDenied):
        return "authentication failed"
    return getattr(exc, "reason", None) or str(exc) or type(exc).__name__


class _PinnedClient(asyncssh.SSHClient):
    """Trusts exactly one host key, chosen by its fingerprint, and remembers what it saw."""

    def __init__(self, fingerprint: str) -> None:
        self.expected = fingerprint.rstrip("=")
        self.offered: str | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        self.offered = key.get_fingerprint("sha256")
        return self.offered.rstrip("=") == self.expected


async def connect(endpoint: RemoteEndpoint) -> asyncssh.SSHClientConnection:
    """An authenticated SSH connection, or `RemoteError` saying why not."""
    client_keys = None
    if endpoint.private_key:
        try:
            client_keys = [asyncssh.import_private_key(resolve_secret(endpoint.private_key))]
        except (asyncssh.KeyImportError, ValueError) as exc:
            raise RemoteError(f"private key {endpoint.private_key} is not usable: {exc}") from exc
    password = resolve_secret(endpoint.password) if endpoint.password else None
    pinned: list[_PinnedClient] = []

    def factory() -> _PinnedClient:
        pinned.append(_PinnedClient(endpoint.host_key_sha256))
        return pinned[-1]

    try:
        conn, _ = await asyncio.wait_for(
            asyncssh.create_connection(
                factory,
                endpoint.host,
                endpoint.port,
                username=endpoint.user,
                password=password,
                client_keys=client_keys,
                # Nothing trusted up front: the pinned fingerprint decides.
                known_hosts=([], [], []),
                agent_path=None,
                config=None,
                preferred_auth="publickey,password" if client_keys else "password",
            ),
            endpoint.connect_timeout,
        )
    except (asyncssh.Error, OSError, TimeoutError) as exc:
        seen = pinned[-1].offered if pinned else None
        if seen is not None and seen.rstrip("=") != endpoint.host_key_sha256.rstrip("="):
            raise HostKeyRefused(
                f"{endpoint.label}: host key {seen} does not match the pinned "
                f"{endpoint.host_key_sha256}; refusing to connect (has the server been "
                "rebuilt, or is someone in the way? update the pin only after checking)"
            ) from exc
        raise RemoteError(f"{endpoint.label}: {describe(exc)}") from exc
    return conn
