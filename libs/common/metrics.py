"""Prometheus metrics, defined once so every service names them the same way."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

FILES_RECEIVED = Counter(
    "courier_files_received_total", "Files that reached storage and were announced", ["source"]
)
SFTP_SESSIONS = Gauge("courier_sftp_active_sessions", "Open SFTP sessions")
SFTP_AUTH_FAILURES = Counter("courier_sftp_auth_failures_total", "Failed SFTP logins", ["reason"])
SFTP_BYTES = Counter("courier_sftp_bytes_total", "Bytes through the gateway", ["direction"])
SFTP_UPLOAD_SECONDS = Histogram(
    "courier_sftp_upload_seconds",
    "Time from open to close of a completed upload",
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800),
)
IMPORTS = Counter("courier_imports_total", "Processed import files", ["kind", "status"])
TEST_IMPORTS = Counter(
    "courier_test_imports_total",
    "Test files (checked in full, nothing applied) by their would-be outcome",
    ["kind", "status"],
)
IMPORT_RECORDS = Counter(
    "courier_import_records_total", "Audited import records", ["kind", "action"]
)
IMPORT_SECONDS = Histogram(
    "courier_import_seconds",
    "Time to process one import file",
    ["kind"],
    buckets=(0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900),
)
RECONCILED = Counter("courier_reconciled_files_total", "Files announced by the reconciliation pass")
OUTBOX_PUBLISHED = Counter(
    "courier_outbox_published_total", "Outbox events handed to the bus", ["subject"]
)
OUTBOX_FAILURES = Counter(
    "courier_outbox_publish_failures_total", "Outbox publish attempts the bus refused"
)
OUTBOX_OLDEST_SECONDS = Gauge(
    "courier_outbox_oldest_pending_seconds",
    "Age of the oldest event still waiting to be published (0 when none waits)",
)
EXPORTS = Counter("courier_exports_total", "Exports that reached a final state", ["kind", "status"])
EXPORT_SAMPLES = Counter(
    "courier_export_samples_total",
    "Sample exports (for a partner's testing) that reached a final state",
    ["kind", "status"],
)
EXPORT_ROWS = Counter("courier_export_rows_total", "Lines written to export files", ["kind"])
EXPORT_BUILD_SECONDS = Histogram(
    "courier_export_build_seconds",
    "Time to build one export file",
    ["kind"],
    buckets=(0.1, 0.5, 1, 5, 10, 30, 60, 300, 900),
)
EXPORT_DELIVERY_ATTEMPTS = Counter(
    "courier_export_delivery_attempts_total", "Export delivery attempts", ["outcome"]
)
INCIDENTS_OPENED = Counter("courier_incidents_opened_total", "Incidents opened", ["kind"])
INCIDENTS_OPEN = Gauge(
    "courier_incidents_open", "Incidents not resolved, by class and state", ["class", "state"]
)
SLA_TIMERS_FIRED = Counter(
    "courier_sla_timers_fired_total", "SLA warnings and breaches fired", ["stage"]
)
NOTIFICATIONS = Counter(
    "courier_notifications_total",
    "Messages handed to a provider or given up on",
    ["channel", "outcome"],
)
BACKUP_BACKLOG = Gauge(
    "courier_backup_backlog_objects",
    "Stored objects not yet confirmed in their region's backup store (pending or failed)",
    ["region"],
)
BACKUP_OLDEST_SECONDS = Gauge(
    "courier_backup_oldest_unconfirmed_seconds",
    "Age of the oldest object not yet confirmed in its backup store (0 when none waits)",
    ["region"],
)
BACKUP_FAILURES = Counter(
    "courier_backup_failures_total", "Backup copies that failed, by reason", ["reason"]
)
BACKUP_BYTES = Counter(
    "courier_backup_bytes_total", "Bytes copied to backup stores and verified", ["region"]
)
BACKUP_CONFIRMED = Counter(
    "courier_backup_objects_total", "Objects copied to a backup store and verified", ["region"]
)
