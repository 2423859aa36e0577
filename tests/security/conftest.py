"""The console app in process, and every log line the services in this process write."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI

from courier.common.db.engine import Database
from courier.common.settings import Settings
from courier.common.storage import Storage
from courier.console.api import create_app
from tests.support.logs import logs_to_stderr
from tests.support.paging_fixtures import clock, mailbox, paging, rota, sns, sns_server  # noqa: F401
from tests.support.pgp_fixtures import partner_gpg, tenant_keys, tenant_with_keys  # noqa: F401


@pytest.fixture
def app(db: Database, storage: Storage, settings: Settings) -> FastAPI:
    return create_app(db, storage, settings)


@dataclass
class Logs:
    """Courier's JSON lines (structlog, on standard error) and the libraries' records
    (asyncssh, aiosmtplib, botocore, httpx, uvicorn: the standard `logging` module)."""

    capfd: pytest.CaptureFixture[str]
    caplog: pytest.LogCaptureFixture

    def text(self) -> str:
        out, err = self.capfd.readouterr()
        return out + err + "\n".join(r.getMessage() for r in self.caplog.records)


@pytest.fixture
def logs(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Iterator[Logs]:
    # Libraries log at INFO here, more than the WARNING they are kept to in production.
    caplog.set_level(logging.INFO)
    with logs_to_stderr():
        yield Logs(capfd, caplog)
