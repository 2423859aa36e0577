"""The services' log lines as a test reads them: structlog's JSON, written to file
descriptor 2 so that pytest's `capfd` holds every line of every service in the process."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import structlog


@contextlib.contextmanager
def logs_to_stderr() -> Iterator[None]:
    """While the block runs, structlog writes to the process's standard error itself
    (not to whatever `sys.stderr` was when logging was configured)."""
    saved = structlog.get_config()
    with open(2, "w", closefd=False) as stderr:
        structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=stderr))
        try:
            yield
        finally:
            structlog.configure(**saved)
