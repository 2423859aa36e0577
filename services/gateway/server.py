"""SSH side of the gateway: address check, multi-factor login, session state, the listener."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncssh
import structlog
from asyncssh.constants import MSG_SERVICE_ACCEPT, MSG_SERVICE_REQUEST
from asyncssh.packet import SSHPacket, String

from courier.common.bus import Bus
from courier.common.clock import Clock, SystemClock
from courier.common.db.engine import Database
from courier.common.logging import get_logger
from courier.common.metrics import SFTP_AUTH_FAILURES, SFTP_SESSIONS
from courier.common.settings import Settings
from courier.common.storage import Storage
from courier.gateway import admin, algorithms, chacha, hostkeys
from courier.gateway.accounts import Principal, load_principal
from courier.gateway.audit import AuditLog, SessionRef
from courier.gateway.bans import Guard
from courier.gateway.chaff import IgnoreOnlyForCbc
from courier.gateway.credentials import PasswordChecker
from courier.gateway.flood import FloodGate, raise_flood_alert
from courier.gateway.metrics import SFTP_REFUSED_CONNECTIONS
from courier.gateway.sftp import CourierSFTPServer

log = get_logger(__name__)

_ANY_FACTORS = frozenset({"password", "publickey"})
_USERAUTH_SERVICE = b"ssh-userauth"
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
    # Per-address connection limits, checked before any SSH work.
    flood: FloodGate = field(init=False)
    # What a key exchange offers; legacy addresses (see `algorithms`) get the wider set.
    offer: algorithms.Algorithms = field(init=False)
    legacy_offer: algorithms.Algorithms = field(init=False)

    def __post_init__(self) -> None:
        self.flood = FloodGate(self.settings)
        self.offer = algorithms.modern(compression=self.settings.gateway_compression)
        self.legacy_offer = algorithms.legacy(self.offer)

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


class GatewayConnection(IgnoreOnlyForCbc):
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

    def offer(self, algs: algorithms.Algorithms) -> None:
        """Propose `algs` in this connection's key exchange.

        Called from the owner's `connection_made`, before the client's version line
        arrives (asyncssh sends its KEXINIT only then), so the first key exchange and
        any re-key use them. asyncssh keeps these per connection but offers no setter.
        """
        self._kex_algs = [a.encode() for a in algs.kex]
        self._enc_algs = [a.encode() for a in algs.encryption]
        self._mac_algs = [a.encode() for a in algs.mac]
        self._cmp_algs = [a.encode() for a in algs.compression]

    def _process_service_request(self, pkttype: int, pktid: int, packet: SSHPacket) -> None:
        """Accept the user-auth service again while a login is under way.

        paramiko asks for the service before each method it tries, so its second factor
        arrives after a second request. OpenSSH's sshd accepts that; asyncssh would
        disconnect, and a paramiko partner could never log in to a password+key account.
        """
        if not (self._auth_in_progress and self._next_service is None):
            super()._process_service_request(pkttype, pktid, packet)
            return
        service = packet.get_string()
        packet.check_end()
        if service != _USERAUTH_SERVICE:
            raise asyncssh.ServiceNotAvailable("Unexpected service in service request")
        self.send_packet(MSG_SERVICE_ACCEPT, String(service))

    _packet_handlers = {
        **asyncssh.SSHServerConnection._packet_handlers,
        MSG_SERVICE_REQUEST: _process_service_request,
    }


class GatewaySSHServer(asyncssh.SSHServer):
    def __init__(self, ctx: GatewayContext) -> None:
        self.ctx = ctx
        self.session = Session(peer="?")
        self.session.log = log
        self.refused = False
        # Login state for the username being tried.
        self.username: str | None = None
        self.candidate: Principal | None = None
        # The account of `username` was read (found or not): only then can a login that
        # ends unfinished be the client's failure.
        self.account_read = False
        self.passed: set[str] = set()
        self.pending: str | None = None
        self.failed_reason: str | None = None
        self.disabled_seen = False
        # The client offered an authorized key past its expiry (and was refused).
        self.expired_key_seen = False
        # The right password was offered, but it had expired.
        self.password_expired_seen = False
        # A known account tried from an address outside its allowlist: refused as a
        # wrong password would be (the audit keeps the reason).
        self.outside_allowlist = False
        self.authenticated = False
        # Set when the gateway itself ends the connection (a stop), not the client.
        self.stop_reason: str | None = None
        # Admitted and counted by the flood limits as not logged in yet.
        self.unsettled = False

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
        refusal = self.ctx.flood.admit(self.session.peer)
        if refusal is not None:
            # Before the version line: a flood costs the server no key exchange.
            self.refused = True
            SFTP_REFUSED_CONNECTIONS.labels(reason="flood").inc()
            if refusal.alert:
                # One line per flood (the metric counts each refusal): logs cannot be flooded.
                self.session.log.warning(
                    "connection flood", reason="flood", limit=refusal.limit, detail=refusal.detail
                )
                self.ctx.spawn(raise_flood_alert(self.ctx.db, self.session.peer, refusal))
            conn.abort()
            return
        self.unsettled = True
        if self.ctx.guard.legacy_for(self.session.peer):
            self.session.log.info("legacy algorithms offered")
            conn.offer(self.ctx.legacy_offer)  # type: ignore[attr-defined]
        else:
            conn.offer(self.ctx.offer)  # type: ignore[attr-defined]
        SFTP_SESSIONS.inc()
        self.ctx.connections[self] = conn
        self.ctx.busy.hold(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.session.lost = True
        if self.refused:
            return
        self._settle()
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
            if not self.account_read:
                # It gave up while its account was still being read (a slow database):
                # no credential was judged, so nothing is scored against its address.
                self.session.log.info("login abandoned unread", username=self.username)
                return
            if self.candidate is None:
                reason = "unknown_user"
            elif self.outside_allowlist:
                reason = "address_not_allowed"
            elif self.disabled_seen:
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

    def _settle(self) -> None:
        if self.unsettled:
            self.unsettled = False
            self.ctx.flood.settled(self.session.peer)

    # ------------------------------------------------------------ login

    def begin_auth(self, username: str) -> Any:
        return self._begin_auth(username)

    async def _begin_auth(self, username: str) -> bool:
        self.username = username
        self.passed, self.pending, self.failed_reason = set(), None, None
        if not self.ctx.guard.admits_now(self.session.peer):
            raise asyncssh.PermissionDenied("address banned")
        self.account_read = False
        self.candidate = await self.ctx.principal(username)
        self.account_read = True
        # Not refused here: a refusal before any credential would tell the client the
        # account exists. It fails at its credentials like an unknown user.
        self.outside_allowlist = self.candidate is not None and not self.candidate.allows(
            self.session.peer
        )
        return True

    def _remaining(self) -> frozenset[str]:
        factors = self.candidate.factors if self.candidate else _ANY_FACTORS
        return factors - self.passed

    def _offers(self, method: str) -> bool:
        """Before a first factor every login is offered both methods, whatever the
        account (or none) needs: the list names no account's policy."""
        return not self.passed or method in self._remaining()

    def public_key_auth_supported(self) -> bool:
        return self._offers("publickey")

    def password_auth_supported(self) -> bool:
        return self._offers("password")

    def kbdint_auth_supported(self) -> bool:
        # asyncssh would otherwise take passwords through keyboard-interactive too, where
        # an expired one cannot be changed: clients fall back to the password method.
        return False

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        self.pending = None
        account = self.candidate
        fingerprint = key.get_fingerprint("sha256")
        if account is None or self.outside_allowlist or "publickey" not in account.factors:
            return False
        if fingerprint not in account.keys:
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
        account = await self._checked_password(username, password)
        if account is None:
            return False
        expires = account.password_expires_at
        if expires is not None and expires <= self.ctx.clock.now():
            self.password_expired_seen = True
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
        if await self._checked_password(username, old_password) is None:
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

    async def _checked_password(self, username: str, password: str) -> Principal | None:
        """The account when this password may count as its password factor now.

        Every refusal looks and costs the same to the client: one argon2id verify
        (against a dummy hash for an unknown user or an address outside the account's
        allowlist), one audit line and the ban count, then the same failure. Only the
        audit line says which it was. As with OpenSSH's `AuthenticationMethods
        publickey,password`, a password+key account takes its password only after its
        key, so a right password alone tells nobody it was right.
        """
        account = self.candidate
        usable = account is not None and not self.outside_allowlist
        key_first = account is not None and (
            "password" not in account.factors
            or ("publickey" in account.factors and "publickey" not in self.passed)
        )
        ok = await self.ctx.passwords.check(
            username, account.password_hash if usable else None, password, recall=not key_first
        )
        if account is None:
            reason = "unknown_user"
        elif self.outside_allowlist:
            reason = "address_not_allowed"
        elif "password" not in account.factors:
            reason = self._key_missing_reason(account)
        elif not ok:
            reason = "password"
        elif not account.enabled:
            # The right password proves who asks: they may know why.
            await self._fail("disabled")
            raise asyncssh.PermissionDenied("account disabled")
        elif key_first:
            reason = self._key_missing_reason(account)
        else:
            return account
        await self._fail(reason)
        return None

    def _key_missing_reason(self, account: Principal) -> str:
        """Why a right password did not log in: the key the account needs is not in."""
        if self.expired_key_seen:
            return "key_expired"
        expires = account.password_expires_at
        if expires is not None and expires <= self.ctx.clock.now():
            self.password_expired_seen = True
            return "password_expired"
        return "key_missing"

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
        self._settle()
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
    # Keys to come are announced to clients for a rotation (see `hostkeys`).
    coming = hostkeys.load_next(settings.gateway_host_key_dir)
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
    # Same bytes as asyncssh's own chacha20-poly1305, less CPU per packet (see `chacha`).
    chacha.install()
    options = await asyncssh.SSHServerConnectionOptions.construct(
        server_factory=_server_factory,
        server_host_keys=keys + coming,
        send_server_host_keys=bool(coming),
        sftp_factory=_sftp_factory,
        allow_scp=False,
        # Each connection proposes `ctx.offer` or `ctx.legacy_offer` (see `offer`).
        kex_algs=list(ctx.offer.kex),
        encryption_algs=list(ctx.offer.encryption),
        mac_algs=list(ctx.offer.mac),
        compression_algs=list(ctx.offer.compression),
        signature_algs=list(algorithms.USER_SIGNATURE),
        server_version=algorithms.SERVER_VERSION,
        login_timeout=60,
        keepalive_interval=30,
        # Large windows and packets keep throughput up on high-latency links.
        window=8 * 1024 * 1024,
        max_pktsize=256 * 1024,
    )
    algorithms.keep_host_keys(options)
    loop = asyncio.get_running_loop()
    # asyncssh's own listener always builds its stock connection class; this one adds
    # partial success, so the listener is built here from the same options.
    return await loop.create_server(
        lambda: GatewayConnection(loop, options),
        settings.gateway_host,
        settings.gateway_port,
        backlog=512,
    )
