"""Configuration from `COURIER_*` environment variables, the same for every service."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def without_password(url: str) -> str:
    """`url` fit to print or log: a password in it (`scheme://user:password@host`, in each
    of a comma-separated list of servers) reads `***`."""
    return ",".join(_masked(part) for part in url.split(","))


def _masked(url: str) -> str:
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
    except ValueError:
        return "(an unreadable URL)"
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


class _PrintsNoPassword(BaseModel):
    """A repr (in a traceback, a log line, a test failure) without URLs' passwords."""

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, without_password(value) if isinstance(value, str) else value


class RegionStores(_PrintsNoPassword):
    """Where one region keeps its tenants' files: every byte of a tenant stays here."""

    storage_url: str
    # None: no backup store is configured for the region.
    backup_url: str | None = None
    # Server-side encryption of every object written to this region's `s3://` stores.
    sse: Literal["AES256", "aws:kms"] | None = None
    # The KMS key of `aws:kms` (None: the account's default `aws/s3` key).
    kms_key_id: str | None = None


class Settings(_PrintsNoPassword, BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COURIER_", extra="ignore")

    nats_url: str = "nats://127.0.0.1:4222"
    # Prefix for stream names and subjects so several environments (or test runs)
    # can share one NATS cluster without seeing each other's messages.
    nats_namespace: str = ""
    # Copies JetStream keeps of every stream: 3 on a three-node cluster, so an acked
    # message survives the loss of a node. Applied to existing streams at each start.
    nats_replicas: int = 1
    database_url: str = "sqlite+aiosqlite:///courier.db"
    storage_url: str = "file://./courier-data/storage"
    backup_url: str | None = None
    # Data sovereignty: region name -> its stores, as JSON in `COURIER_REGIONS`, e.g.
    # {"eu-west-2": {"storage_url": "s3://eu-primary", "backup_url": "s3://eu-backup",
    #  "sse": "aws:kms", "kms_key_id": "alias/courier-eu"}}. Unset: one region named
    # `default_region` with `storage_url` and `backup_url` (see `region_stores()`).
    regions: dict[str, RegionStores] = {}
    # The region of a tenant created without one (and of tenants older than regions).
    default_region: str = "local"
    smtp_url: SecretStr | None = None

    gateway_host: str = "127.0.0.1"
    gateway_port: int = 2222
    gateway_host_key_dir: Path = Path("./courier-data/hostkeys")
    # Idle sessions are dropped so a stuck client cannot hold a slot forever.
    gateway_idle_timeout: int = 900
    # Brute-force defence: this many failed logins from one address within the window
    # bans the address for `gateway_ban_seconds`.
    gateway_ban_after_failures: int = 5
    gateway_ban_window_seconds: float = 600.0
    gateway_ban_seconds: float = 3600.0
    # How often each replica reloads bans and allowlists decided elsewhere.
    gateway_state_refresh_seconds: float = 5.0
    # How often the gateway looks for passwords nearing expiry (alert `password_expiring`).
    gateway_password_check_seconds: float = 3600.0
    # Password checks (argon2id: 64 MiB and about 0.25 s of a core each) run this many at
    # a time, the rest wait; 0: the cores the process may use, at most 4.
    gateway_password_checks_at_once: int = 0
    # Session audit lines are written in one batch this often (and once more at a stop).
    gateway_audit_flush_seconds: float = 0.2
    # A drain (preStop hook or SIGTERM) lets open sessions finish for this long, then
    # disconnects the rest, which get 5 s more to wind down: a pod's grace period needs
    # about 10 s over this (e.g. 25 s here, 35 s or more there).
    gateway_drain_seconds: float = 25.0
    # Temporary objects of uploads (a crash leaves them) untouched this long are removed,
    # looked for this often.
    gateway_sweep_seconds: float = 3600.0
    gateway_temporary_max_age_seconds: float = 86400.0
    # Connection flood (DHEat): one address may open this many connections per window,
    # and hold this many not yet logged in at once; beyond either, a new connection is
    # dropped before the SSH version line (0 turns a limit off).
    gateway_flood_connections: int = 20
    gateway_flood_window_seconds: float = 10.0
    gateway_flood_unauthenticated: int = 10
    # One `sftp_connection_flood` alert per flooding address this often (per replica).
    gateway_flood_alert_minutes: float = 15.0
    # Offer delayed zlib compression (after login); off by default.
    gateway_compression: bool = False

    console_host: str = "127.0.0.1"
    console_port: int = 8080
    console_base_url: str = "http://127.0.0.1:8080"
    # Signs session cookies. Unset: a random key per process (sessions end at a restart,
    # and replicas do not share them), which `courier dev up` avoids by keeping one.
    console_secret_key: SecretStr | None = None
    # A session ends after this long without a request, and this long after sign-in.
    console_session_idle_minutes: float = 30.0
    console_session_max_hours: float = 12.0
    # Failed sign-ins in a row that lock a user out, and for how long.
    console_signin_max_failures: int = 5
    console_lockout_minutes: float = 15.0
    # Sign-in attempts one address may make per minute (each replica counts its own).
    console_signin_per_ip_per_minute: int = 20
    # Roles whose users must sign in with an authenticator code (TOTP), e.g. ["admin"].
    console_totp_roles: list[str] = []

    # Each service serves /metrics, /healthz and /readyz on its own port; 0 disables.
    health_host: str = "127.0.0.1"
    health_port: int = 0

    # JetStream consumer tuning shared by all durable consumers.
    max_deliver: int = 5
    ack_wait_seconds: float = 60.0

    poll_reconcile_seconds: float = 60.0
    # Importer: how often it applies the scheduled files whose apply window has come.
    importer_window_tick_seconds: float = 30.0

    # Every service writes a heartbeat row this often; the monitor raises an incident
    # when no instance of a service has written one for `heartbeat_timeout_seconds`.
    heartbeat_seconds: float = 15.0
    # How often each service publishes what its outbox holds (writers also flush at once).
    outbox_relay_seconds: float = 2.0
    outbox_keep_days: int = 7
    heartbeat_timeout_seconds: float = 90.0

    # Monitor: how often it looks for closed windows and due timers, how far ahead it
    # lays out expected-file windows, and the SLA clock of each incident class.
    monitor_tick_seconds: float = 1.0
    monitor_horizon_hours: float = 36.0
    sla_platform_resolve_hours: float = 6.0
    sla_partner_contact_hours: float = 6.0
    sla_partner_response_hours: float = 24.0
    sla_warn_minutes: float = 60.0

    # Notifier: SMS through AWS SNS (or Twilio), e-mail through `smtp_url` with STARTTLS.
    notifier_tick_seconds: float = 0.5
    sms_provider: str = "sns"  # sns | twilio | none
    sns_region: str = "eu-west-1"
    sns_endpoint_url: str | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from: str | None = None
    twilio_base_url: str = "https://api.twilio.com"
    smtp_from: str = "courier@localhost"
    # CA bundle that signs the SMTP server's certificate, when not a public one.
    smtp_ca_file: Path | None = None
    # An unacknowledged page goes to the next person after this long (the rota may override).
    escalation_minutes: float = 15.0
    # At most this many messages per incident and recipient per hour (SLA pages excepted).
    notify_max_per_hour: int = 6
    # More pages than this for one person in one pass go out as one digest SMS.
    sms_digest_threshold: int = 3
    notify_max_attempts: int = 5
    # OpenPGP: the passphrase that protects every Courier secret key held in the
    # database (from a Secret in production); without it no secret key can be used.
    pgp_passphrase: SecretStr | None = None
    # Unpacking zip/gzip and decrypting: refuse a file whose plaintext would exceed this
    # many bytes, or this many times its packed size (zip bombs).
    unpack_max_bytes: int = 4 * 1024**3
    unpack_max_ratio: int = 200
    log_level: str = "INFO"
    log_json: bool = True
    service_name: str = Field(default="courier")

    def region_stores(self) -> dict[str, RegionStores]:
        """The configured regions; without `COURIER_REGIONS`, the one default region."""
        if self.regions:
            return dict(self.regions)
        return {
            self.default_region: RegionStores(
                storage_url=self.storage_url, backup_url=self.backup_url
            )
        }


@lru_cache
def get_settings() -> Settings:
    return Settings()
