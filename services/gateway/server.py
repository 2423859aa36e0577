"""SSH side of the gateway: address check, multi-factor login, session state, the listener."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncssh
import structlog

from courier.common.bus import Bus
from courier.common.clock import Clock, SystemClock
from courier.common.db.engine import Database
from courier.common.logging import get_logger
from courier.common.metrics import SFTP_AUTH_FAILURES, SFTP_SESSIONS
from courier.common.settings import Settings
from courier.common.storage import Storage
from courier.gateway import admin, hostkeys
from courier.gateway.accounts import Principal, load_principal
from courier.gateway.audit import AuditLog, SessionRef
from courier.gateway.bans import Guard
from courier.gateway.credentials import PasswordChecker
from courier.gateway.metrics import SFTP_REFUSED_CONNECTIONS
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
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
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
_ANY_FACTORS = frozenset({"password", "publickey"})
STOPPING = "gateway stopping"
# What an SSH client shows when it asks the partner for a new password.
CHANGE_PROMPT = "Your password has expired: choose a new one."


class Busy:
    """What may still add audit lines or use the database: a stop waits for `idle`."""

    def __init__(self) -> None:
        self.items: set[object] = set()
        self.idle = asyncio.Event()
        self.idle.set()

    def hold(self, item: object) -> None:
        self.items.add(item)
        self.idle.clear()

    def release(self, item: object) -> None:
        self.items.discard(item)
        if not self.items:
            self.idle.set()


@dataclass
class GatewayContext:
    settings: Settings
    db: Database
    bus: Bus
    storage: Storage
    guard: Guard
    audit: AuditLog
    # Accounts read at login, kept for the state refresh interval (bursts of logins).
    principals: dict[str, tuple[float, Principal | None]] = field(default_factory=dict)
    passwords: PasswordChecker = field(default_factory=PasswordChecker)
    # Password and key expiry are judged by this clock (a test's clock in tests).
    clock: Clock = field(default_factory=SystemClock)
    _loading: dict[str, asyncio.Future[Principal | None]] = field(default_factory=dict)
    # Open connections by their SSH server object: a stop disconnects them.
    connections: dict[GatewaySSHServer, asyncssh.SSHServerConnection] = field(default_factory=dict)
    # Connections, SFTP channels, account loads and disconnect audits still under way.
    busy: Busy = field(default_factory=Busy)
    stopping: bool = False

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.busy.hold(task)
        task.add_done_callback(self.busy.release)

    async def close_sessions(self, within: float) -> None:
        """Disconnect every session and wait until each has wound down.

        asyncssh lets the request in flight finish and closes open files before the
        SFTP channel exits; the disconnect itself is audited once the connection is
        gone. After this no session adds an audit line or touches the database.
        """
        self.stopping = True
        for server, conn in list(self.connections.items()):
            server.stop_reason = STOPPING
            conn.disconnect(asyncssh.DISC_BY_APPLICATION, STOPPING)
        try:
            await asyncio.wait_for(self.busy.idle.wait(), within)
        except TimeoutError:
            log.warning("sessions still winding down at stop", left=len(self.busy.items))

    async def principal(self, username: str) -> Principal | None:
        now = time.monotonic()
        cached = self.principals.get(username)
        if cached is not None and now - cached[0] < self.settings.gateway_state_refresh_seconds:
            return cached[1]
        # Logins arriving together for one account share a single database read.
        pending = self._loading.get(username)
        if pending is None:
            pending = asyncio.ensure_future(load_principal(self.db, username))
            self._loading[username] = pending
            self.busy.hold(pending)
            pending.add_done_callback(lambda _: self._loading.pop(username, None))
            pending.add_done_callback(self.busy.release)
        found = await asyncio.shield(pending)
        self.principals[username] = (now, found)
        return found


@dataclass
class Session:
    peer: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    principal: Principal | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    lost: bool = False
    log: Any = None

    @property
    def ref(self) -> SessionRef:
        return SessionRef(
            self.id,
            self.peer,
            self.principal.username if self.principal else None,
            self.principal.tenant.slug if self.principal else None,
        )


class GatewayConnection(asyncssh.SSHServerConnection):
    """asyncssh's server connection with RFC 4252 partial success.

    asyncssh answers success as soon as one method succeeds. When the account needs
    another factor still, the owner says so and the client gets USERAUTH_FAILURE with
    partial success set and only the remaining methods listed (as OpenSSH's
    `AuthenticationMethods publickey,password` does).
    """

    async def send_userauth_success(self) -> None:
        owner = self.get_owner()
        if isinstance(owner, GatewaySSHServer) and not owner.factor_passed():
            self.send_userauth_failure(True)
            return
        await super().send_userauth_success()


class GatewaySSHServer(asyncssh.SSHServer):
    def __init__(self, ctx: GatewayContext) -> None:
        self.ctx = ctx
        self.session = Session(peer="?")
        self.session.log = log
        self.refused = False
        # Login state for the username being tried.
        self.username: str | None = None
        self.candidate: Principal | None = None
        self.passed: set[str] = set()
        self.pending: str | None = None
        self.failed_reason: str | None = None
        self.disabled_seen = False
        # The client offered an authorized key past its expiry (and was refused).
        self.expired_key_seen = False
        # The right password was offered, but it had expired.
        self.password_expired_seen = False
        self.authenticated = False
        # Set when the gateway itself ends the connection (a stop), not the client.
        self.stop_reason: str | None = None

    # ------------------------------------------------------------ connection

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        peer = conn.get_extra_info("peername") or ("?", 0)
        self.session.peer = str(peer[0])
        self.session.log = log.bind(session=self.session.id, peer=self.session.peer)
        if self.ctx.stopping:
            # Accepted just before the listener closed: the client tries again elsewhere.
            self.refused = True
            conn.abort()
            return
        if not self.ctx.guard.admits(self.session.peer):
            # Before any SSH work: no banner, no key exchange, no audit row to fill up.
            self.refused = True
            reason = "banned" if self.session.peer in self.ctx.guard.banned else "not_allowed"
            SFTP_REFUSED_CONNECTIONS.labels(reason=reason).inc()
            self.session.log.warning("connection refused", reason=reason)
            conn.abort()
            return
        SFTP_SESSIONS.inc()
        self.ctx.connections[self] = conn
        self.ctx.busy.hold(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.session.lost = True
        if self.refused:
            return
        SFTP_SESSIONS.dec()
        self.ctx.connections.pop(self, None)
        self.ctx.spawn(self._closed(exc))
        self.ctx.busy.release(self)

    async def _closed(self, exc: Exception | None) -> None:
        if self.authenticated:
            self.session.log.info(
                "disconnected", bytes_in=self.session.bytes_in, bytes_out=self.session.bytes_out
            )
            self.ctx.audit.add(
                self.session.ref,
                "disconnect",
                reason=str(exc) if exc else self.stop_reason,
                size=self.session.bytes_in + self.session.bytes_out,
            )
        elif self.stop_reason is not None:
            # Cut off by the stop mid-login: not the partner's failure, nothing to score.
            return
        elif self.username is not None and self.failed_reason is None:
            # The client gave up without completing every factor the account needs.
            if self.disabled_seen:
                reason = "disabled"
            elif self.expired_key_seen and "publickey" not in self.passed:
                reason = "key_expired"
            elif self.password_expired_seen and "password" not in self.passed:
                reason = "password_expired"
            elif not self.passed:
                reason = "no_valid_credentials"
            else:
                reason = "key_missing" if "password" in self.passed else "password_missing"
            await self._fail(reason, raise_ban=False)

    # ------------------------------------------------------------ login

    def begin_auth(self, username: str) -> Any:
        return self._begin_auth(username)

    async def _begin_auth(self, username: str) -> bool:
        self.username = username
        self.passed, self.pending, self.failed_reason = set(), None, None
        if not self.ctx.guard.admits_now(self.session.peer):
            raise asyncssh.PermissionDenied("address banned")
        self.candidate = await self.ctx.principal(username)
        if self.candidate is not None and not self.candidate.allows(self.session.peer):
            await self._fail("address_not_allowed")
            raise asyncssh.PermissionDenied("not allowed from this address")
        return True

    def _remaining(self) -> frozenset[str]:
        factors = self.candidate.factors if self.candidate else _ANY_FACTORS
        return factors - self.passed

    def public_key_auth_supported(self) -> bool:
        return "publickey" in self._remaining()

    def password_auth_supported(self) -> bool:
        return "password" in self._remaining()

    def kbdint_auth_supported(self) -> bool:
        # asyncssh would otherwise take passwords through keyboard-interactive too, where
        # an expired one cannot be changed: clients fall back to the password method.
        return False

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        self.pending = None
        account = self.candidate
        fingerprint = key.get_fingerprint("sha256")
        if account is None or fingerprint not in account.keys:
            return False
        if not account.enabled:
            self.disabled_seen = True
            return False
        expires = account.keys[fingerprint]
        if expires is not None and expires <= self.ctx.clock.now():
            # Refused like any unknown key; the audit says why when the login fails.
            self.expired_key_seen = True
            self.session.log.warning("expired key offered", fingerprint=fingerprint)
            return False
        # asyncssh verifies the signature after this; success then reaches factor_passed.
        self.pending = "publickey"
        return True

    async def validate_password(self, username: str, password: str) -> bool:
        self.pending = None
        account = self.candidate
        ok = await self.ctx.passwords.check(
            username, account.password_hash if account else None, password
        )
        if account is None:
            await self._fail("unknown_user")
            return False
        if not ok:
            await self._fail("password")
            return False
        if not account.enabled:
            await self._fail("disabled")
            raise asyncssh.PermissionDenied("account disabled")
        expires = account.password_expires_at
        if expires is not None and expires <= self.ctx.clock.now():
            self.password_expired_seen = True
            if not self._may_change_password():
                return False
            # The client asks its user for a new one and comes back to change_password.
            self.session.log.info("password expired: change requested")
            raise asyncssh.PasswordChangeRequired(CHANGE_PROMPT)
        self.pending = "password"
        return True

    async def change_password(self, username: str, old_password: str, new_password: str) -> bool:
        """An expired (or any) password replaced by the partner's client.

        The old password proves who asks, exactly as a login does; the new one must
        meet the tenant's policy (the same check as `courier accounts set-password`),
        or the client is asked again with the reason. The new password counts as this
        login's password factor (a password+key account has shown its key already).
        """
        self.pending = None
        account = self.candidate
        ok = await self.ctx.passwords.check(
            username, account.password_hash if account else None, old_password
        )
        if account is None:
            await self._fail("unknown_user")
            return False
        if not ok:
            await self._fail("password")
            return False
        if not account.enabled:
            await self._fail("disabled")
            raise asyncssh.PermissionDenied("account disabled")
        if not self._may_change_password():
            return False
        try:
            await admin.set_password(self.ctx.db, username, new_password, now=self.ctx.clock.now())
        except admin.PasswordRefused as exc:
            self.session.log.info("password change refused", reason=str(exc))
            self.ctx.audit.add(self._attempt_ref(), "password_change_refused", reason=str(exc))
            raise asyncssh.PasswordChangeRequired(f"{exc}. Choose another password.") from None
        # This replica's cached account has the old hash; others refresh within seconds.
        self.ctx.principals.pop(username, None)
        self.session.log.info("password changed")
        self.ctx.audit.add(self._attempt_ref(), "password_changed")
        self.pending = "password"
        return True

    def _may_change_password(self) -> bool:
        """A password+key account proves its key before its password may be changed,
        so the old password alone never sets a new one. (Clients offer keys first.)"""
        account = self.candidate
        assert account is not None
        if "publickey" in account.factors and "publickey" not in self.passed:
            self.session.log.info("expired password offered before the key")
            return False
        return True

    def factor_passed(self) -> bool:
        """Called on each method's success: True once every factor of the account is in."""
        if self.pending is not None:
            self.passed.add(self.pending)
            self.pending = None
        if self._remaining():
            return False
        account = self.candidate
        assert account is not None
        self.authenticated = True
        self.session.principal = account
        self.session.log = self.session.log.bind(
            username=account.username, tenant=account.tenant.slug
        )
        self.session.log.info("login succeeded", methods=sorted(self.passed))
        self.ctx.audit.add(
            self.session.ref, "login_succeeded", reason="+".join(sorted(self.passed))
        )
        return True

    def _attempt_ref(self) -> SessionRef:
        """The audit's names for a login still under way (no principal yet)."""
        return SessionRef(
            self.session.id,
            self.session.peer,
            self.username,
            self.candidate.tenant.slug if self.candidate else None,
        )

    async def _fail(self, reason: str, *, raise_ban: bool = True) -> None:
        self.failed_reason = reason
        SFTP_AUTH_FAILURES.labels(reason=reason).inc()
        self.session.log.warning("login failed", username=self.username, reason=reason)
        ref = self._attempt_ref()
        self.ctx.audit.add(ref, "login_failed", reason=reason)
        # Failures are scored from the table: this one must be in it first.
        await self.ctx.audit.flush()
        banned = await self.ctx.guard.score_failure(self.session.peer)
        if banned:
            self.ctx.audit.add(ref, "banned", reason="too many failed logins")
            if raise_ban:
                raise asyncssh.PermissionDenied("too many failed logins")


async def start(ctx: GatewayContext) -> asyncio.AbstractServer:
    settings = ctx.settings
    keys = hostkeys.load_or_create(settings.gateway_host_key_dir)
    await ctx.guard.refresh()

    def _server_factory() -> GatewaySSHServer:
        return GatewaySSHServer(ctx)

    async def _sftp_factory(chan: asyncssh.SSHServerChannel) -> CourierSFTPServer:
        # asyncssh awaits this in the task that then serves the channel until it ends
        # (its open files closed, their audit lines added): a stop waits for that task.
        task = asyncio.current_task()
        if task is not None:
            ctx.busy.hold(task)
            task.add_done_callback(ctx.busy.release)
        return CourierSFTPServer(chan, ctx)

    structlog.contextvars.bind_contextvars(service="gateway")
    options = await asyncssh.SSHServerConnectionOptions.construct(
        server_factory=_server_factory,
        server_host_keys=keys,
        sftp_factory=_sftp_factory,
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
    loop = asyncio.get_running_loop()
    # asyncssh's own listener always builds its stock connection class; this one adds
    # partial success, so the listener is built here from the same options.
    return await loop.create_server(
        lambda: GatewayConnection(loop, options),
        settings.gateway_host,
        settings.gateway_port,
        backlog=512,
    )
