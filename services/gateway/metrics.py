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
