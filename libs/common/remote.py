"""Connections to partners' own SFTP servers, with the host key pinned.

Credentials are never in the spec itself, only references to where they live
(`env:NAME` or `file:/path`), so specs can be committed and shown in the console.
"""

from __future__ import annotations

import os
from pathlib import Path

import asyncssh
from pydantic import Field, field_validator, model_validator

from courier.common.specs import StrictModel


class SecretError(Exception):
    pass


class HostKeyMismatch(Exception):
    pass


def resolve_secret(ref: str) -> str:
    """`env:NAME` reads an environment variable, `file:/path` a file (e.g. a mounted Secret)."""
    kind, _, where = ref.partition(":")
    if kind == "env":
        value = os.environ.get(where)
        if value is None:
            raise SecretError(f"secret {ref!r}: environment variable {where} is not set")
        return value
    if kind == "file":
        try:
            return Path(where).read_text().strip("\n")
        except OSError as exc:
            raise SecretError(f"secret {ref!r}: {exc.strerror}") from exc
    raise SecretError(f"secret reference {ref!r}: use env:NAME or file:/path")


class RemoteEndpoint(StrictModel):
    host: str
    port: int = Field(default=22, ge=1, le=65535)
    username: str
    password: str | None = Field(default=None, description="secret reference")
    private_key: str | None = Field(default=None, description="secret reference")
    host_key_fingerprint: str = Field(description="SHA256:… as `ssh-keygen -lf` prints it")
    directory: str = "."
    connect_timeout: float = 20

    @field_validator("password", "private_key")
    @classmethod
    def _ref(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("env:", "file:")):
            raise ValueError("must be a secret reference (env:NAME or file:/path), not the secret")
        return value

    @field_validator("host_key_fingerprint")
    @classmethod
    def _fingerprint(cls, value: str) -> str:
        if not value.startswith("SHA256:") or len(value) < 50:
            raise ValueError("expected a SHA256 fingerprint like 'SHA256:abc…'")
        return value

    @model_validator(mode="after")
    def _credentials(self) -> RemoteEndpoint:
        if not (self.password or self.private_key):
            raise ValueError("give a password or a private_key reference")
        return self

    @property
    def label(self) -> str:
        return f"{self.username}@{self.host}:{self.port}"


class _PinnedClient(asyncssh.SSHClient):
    def __init__(self, fingerprint: str) -> None:
        self.fingerprint = fingerprint
        self.seen: str | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        self.seen = key.get_fingerprint("sha256")
        return self.seen == self.fingerprint


async def connect(endpoint: RemoteEndpoint) -> asyncssh.SSHClientConnection:
    """Open an SSH connection, refusing any host key but the pinned one."""
    client = _PinnedClient(endpoint.host_key_fingerprint)
    keys = (
        [asyncssh.import_private_key(resolve_secret(endpoint.private_key))]
        if endpoint.private_key
        else []
    )
    password = resolve_secret(endpoint.password) if endpoint.password else None
    try:
        conn, _ = await asyncssh.create_connection(
            lambda: client,
            endpoint.host,
            endpoint.port,
            username=endpoint.username,
            password=password,
            client_keys=keys,
            # An empty trusted list makes asyncssh ask `validate_host_public_key`.
            known_hosts=([], [], []),
            agent_path=None,
            connect_timeout=endpoint.connect_timeout,
            preferred_auth="publickey,password" if keys else "password",
        )
    except asyncssh.HostKeyNotVerifiable as exc:
        raise HostKeyMismatch(
            f"{endpoint.label}: host key {client.seen or 'unknown'} does not match the pinned "
            f"{endpoint.host_key_fingerprint}; refusing to connect"
        ) from exc
    return conn
