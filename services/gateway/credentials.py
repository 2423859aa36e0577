"""Password checks for logins, with a short memory of recent successes.

argon2id is deliberately slow (about 0.25 s of CPU per check here). Partners' systems
often open several connections at once with the same credentials; checking each
one with argon2 would make a burst of logins queue for seconds. A success is
remembered (as a keyed BLAKE2 digest, never the password) for a few minutes and
only for the same stored hash, so a password change forgets it at once. Failures
are never remembered: every wrong guess pays the full argon2 price.

Each argon2id check also takes 64 MiB while it runs (argon2-cffi's default memory
cost). Run in as many threads as asyncio's pool has (the CPU count plus four, up to 32),
a burst of logins to different accounts, or a password spray, took the gateway from
140 to 540 MB on two cores, and on a node with many cores could pass the pod's memory
limit. So only `at_once` checks run at a time (the usable cores, at most four, unless
set); the rest wait their turn, unknown accounts' checks included, so waiting tells
nothing about whether an account exists.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
import time

from courier.common.passwords import verify_password
from courier.gateway.metrics import SFTP_PASSWORD_VERIFICATIONS

REMEMBER_SECONDS = 300.0
MOST_AT_ONCE = 4


def default_at_once() -> int:
    """The cores this process may run on, at most `MOST_AT_ONCE` (argon2 is CPU-bound:
    more at once than cores only holds more memory)."""
    usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    cores = len(usable) if usable else (os.cpu_count() or 1)
    return max(1, min(MOST_AT_ONCE, cores))


class PasswordChecker:
    def __init__(self, remember: float = REMEMBER_SECONDS, at_once: int = 0) -> None:
        self.remember = remember
        self.at_once = at_once or default_at_once()
        self._key = secrets.token_bytes(32)
        self._known: dict[tuple[str, str], tuple[float, bytes]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._slots = asyncio.Semaphore(self.at_once)

    async def _verify(self, password_hash: str | None, password: str) -> bool:
        SFTP_PASSWORD_VERIFICATIONS.inc()
        async with self._slots:
            return await asyncio.to_thread(verify_password, password_hash, password)

    def _digest(self, password: str) -> bytes:
        return hashlib.blake2b(password.encode(), key=self._key, digest_size=32).digest()

    def _remembered(self, username: str, password_hash: str, password: str) -> bool:
        entry = self._known.get((username, password_hash))
        if entry is None or time.monotonic() - entry[0] > self.remember:
            return False
        return hmac.compare_digest(entry[1], self._digest(password))

    async def check(
        self, username: str, password_hash: str | None, password: str, *, recall: bool = True
    ) -> bool:
        """Whether `password` matches. `recall=False` runs argon2id even for a password
        remembered as right: for a check whose success is not told to the client, so
        that a right password costs what a wrong one does."""
        if password_hash is None:
            # Unknown account: spend the same time as a real check.
            await self._verify(None, password)
            return False
        if recall and self._remembered(username, password_hash, password):
            return True
        # One argon2 run per account at a time: a burst waits for the first and reuses it.
        lock = self._locks.setdefault(username, asyncio.Lock())
        async with lock:
            if recall and self._remembered(username, password_hash, password):
                return True
            ok = await self._verify(password_hash, password)
            if ok:
                self._known[(username, password_hash)] = (time.monotonic(), self._digest(password))
        return ok
