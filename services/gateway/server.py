"""SSH side of the gateway: login, per-connection session state, the listening server."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import asyncssh
import structlog

from courier.common.bus import Bus
from courier.common.db.engine import Database
from courier.common.logging import get_logger
from courier.common.metrics import SFTP_AUTH_FAILURES, SFTP_SESSIONS
from courier.common.settings import Settings
from courier.common.storage import Storage
from courier.gateway import hostkeys
from courier.gateway.accounts import Principal, check_password
from courier.gateway.sftp import CourierSFTPServer

log = get_logger(__name__)

# Modern algorithms only: no SHA-1 signatures or key exchange, no CBC.
KEX_ALGS = [
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
    "diffie-hellman-group14-sha256",
]
ENCRYPTION_ALGS = [
    "chacha20-poly1305@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-gcm@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
]
MAC_ALGS = [
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
    "hmac-sha2-256",
    "hmac-sha2-512",
]
SIG_ALGS = [
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
]


@dataclass
class GatewayContext:
    settings: Settings
    db: Database
    bus: Bus
    storage: Storage


@dataclass
class Session:
    peer: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    principal: Principal | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    lost: bool = False
    log: Any = None


class GatewaySSHServer(asyncssh.SSHServer):
    def __init__(self, ctx: GatewayContext) -> None:
        self.ctx = ctx
        self.session = Session(peer="?")
        self.session.log = log

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        peer = conn.get_extra_info("peername") or ("?", 0)
        self.session.peer = str(peer[0])
        self.session.log = log.bind(session=self.session.id, peer=self.session.peer)
        SFTP_SESSIONS.inc()

    def connection_lost(self, exc: Exception | None) -> None:
        self.session.lost = True
        SFTP_SESSIONS.dec()
        self.session.log.info(
            "disconnected",
            bytes_in=self.session.bytes_in,
            bytes_out=self.session.bytes_out,
            error=str(exc) if exc else None,
        )

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    async def validate_password(self, username: str, password: str) -> bool:
        principal = await check_password(self.ctx.db, username, password)
        if principal is None:
            SFTP_AUTH_FAILURES.labels(reason="password").inc()
            self.session.log.warning("login failed", username=username, reason="password")
            return False
        self.session.principal = principal
        self.session.log = self.session.log.bind(username=username, tenant=principal.tenant.slug)
        self.session.log.info("login succeeded")
        return True


async def start(ctx: GatewayContext) -> asyncssh.SSHAcceptor:
    settings = ctx.settings
    keys = hostkeys.load_or_create(settings.gateway_host_key_dir)

    def _server_factory() -> GatewaySSHServer:
        return GatewaySSHServer(ctx)

    def _sftp_factory(chan: asyncssh.SSHServerChannel) -> CourierSFTPServer:
        return CourierSFTPServer(chan, ctx)

    structlog.contextvars.bind_contextvars(service="gateway")
    return await asyncssh.create_server(
        _server_factory,
        settings.gateway_host,
        settings.gateway_port,
        server_host_keys=keys,
        sftp_factory=partial(_sftp_factory),
        allow_scp=False,
        kex_algs=KEX_ALGS,
        encryption_algs=ENCRYPTION_ALGS,
        mac_algs=MAC_ALGS,
        signature_algs=SIG_ALGS,
        login_timeout=60,
        keepalive_interval=30,
        # Large windows and packets keep throughput up on high-latency links.
        window=8 * 1024 * 1024,
        max_pktsize=256 * 1024,
    )
