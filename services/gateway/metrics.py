"""Gateway-only metrics (the shared SFTP ones live in `courier.common.metrics`)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

SFTP_BANS = Counter("courier_sftp_bans_total", "Source addresses banned after failed logins")
SFTP_REFUSED_CONNECTIONS = Counter(
    "courier_sftp_refused_connections_total",
    "Connections dropped before SSH started",
    ["reason"],
)
SFTP_DOWNLOAD_SECONDS = Histogram(
    "courier_sftp_download_seconds",
    "Time from open to close of a download",
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800),
)
SFTP_PASSWORD_VERIFICATIONS = Counter(
    "courier_sftp_password_verifications_total",
    "argon2id verifications run for SFTP logins (against a dummy hash for unknown users)",
)
SFTP_SWEPT_TEMPORARY_OBJECTS = Counter(
    "courier_sftp_swept_temporary_objects_total",
    "Temporary upload objects left by a crash and removed by the sweeper",
)
SFTP_REFUSED_NAMES = Counter(
    "courier_sftp_refused_names_total",
    "Uploads refused at open for their file name",
    ["reason"],
)
