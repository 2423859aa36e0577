"""Poller metrics, labelled by source name."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

POLLS = Counter("courier_poller_polls_total", "Poll passes over a source", ["source"])
POLL_FILES = Counter("courier_poller_files_fetched_total", "Files fetched", ["source"])
POLL_BYTES = Counter("courier_poller_bytes_fetched_total", "Bytes fetched", ["source"])
POLL_ERRORS = Counter(
    "courier_poller_errors_total", "Failed polls and fetches", ["source", "reason"]
)
UNFETCHED_AGE = Gauge(
    "courier_poller_unfetched_age_seconds",
    "Age of the oldest matching file seen but not yet fetched (still being written)",
    ["source"],
)
