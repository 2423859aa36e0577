"""Password checks hold 64 MiB each while argon2id runs: a burst of logins to different
accounts (or a spray at accounts that do not exist) runs only a few at a time."""

from __future__ import annotations

import asyncio
import threading

import pytest

from courier.common.passwords import hash_password, verify_password
from courier.gateway import credentials
from courier.gateway.credentials import PasswordChecker

PASSWORD = "Corr3ct-Horse-Battery"


class Running:
    """The real argon2id check, counting how many run at the same moment."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self._lock = threading.Lock()

    def __call__(self, password_hash: str | None, password: str) -> bool:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            return verify_password(password_hash, password)
        finally:
            with self._lock:
                self.now -= 1


@pytest.fixture
def running(monkeypatch: pytest.MonkeyPatch) -> Running:
    counter = Running()
    monkeypatch.setattr(credentials, "verify_password", counter)
    return counter


async def test_a_burst_of_logins_to_different_accounts_runs_two_checks_at_a_time(
    running: Running,
) -> None:
    checker = PasswordChecker(at_once=2)
    stored = hash_password(PASSWORD)
    right = [checker.check(f"partner-{i}", stored, PASSWORD) for i in range(6)]
    wrong = [checker.check(f"other-{i}", stored, "wrong") for i in range(2)]
    unknown = [checker.check(f"nobody-{i}", None, PASSWORD) for i in range(2)]
    results = await asyncio.gather(*right, *wrong, *unknown)
    assert results == [True] * 6 + [False] * 4
    assert running.most == 2


async def test_by_default_no_more_checks_run_at_once_than_the_process_has_cores(
    running: Running,
) -> None:
    checker = PasswordChecker()
    assert 1 <= checker.at_once <= credentials.MOST_AT_ONCE
    stored = hash_password(PASSWORD)
    await asyncio.gather(*(checker.check(f"p{i}", stored, PASSWORD) for i in range(8)))
    assert running.most <= checker.at_once
