"""The unit of work a handler is given: one transaction at a time, with its outbox.

A handler enters it (`async with uow:`) for each transaction it needs; leaving
commits, an exception rolls back. Everything a transaction changes and every
event it stages commit together, so a redelivered message finds either all of
it or none of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
import weakref
from collections.abc import AsyncIterator
from types import TracebackType

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from courier.common.clock import Clock, SystemClock
from courier.common.db.engine import Database, is_sqlite
from courier.common.events import Event
from courier.common.outbox import stage
from courier.common.settings import Settings, get_settings
from courier.common.storage import Storage

# SQLite has one writer per file: transactions of one process take turns here instead
# of waiting on each other's write lock (a lock held while awaiting another deadlocks).
_sqlite_writers: weakref.WeakKeyDictionary[Database, asyncio.Lock] = weakref.WeakKeyDictionary()


def lock_key(key: uuid.UUID) -> int:
    return int.from_bytes(key.bytes[:8], "big", signed=True)


class UnitOfWork:
    def __init__(
        self,
        db: Database,
        storage: Storage,
        clock: Clock | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.db = db
        self.storage = storage
        # The service's time: what "now" is for windows and holds (tests move it).
        self.clock: Clock = clock or SystemClock()
        # The service's settings (limits, the OpenPGP passphrase); the process's by default.
        self._settings = settings
        self._session: AsyncSession | None = None
        self._turn: asyncio.Lock | None = None
        self._connection: AsyncConnection | None = None

    @property
    def settings(self) -> Settings:
        return self._settings or get_settings()

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("the unit of work is used outside `async with uow:`")
        return self._session

    async def __aenter__(self) -> UnitOfWork:
        if self._session is not None:
            raise RuntimeError("a unit of work holds one transaction at a time")
        if is_sqlite(self.db.url):
            self._turn = _sqlite_writers.setdefault(self.db, asyncio.Lock())
            await self._turn.acquire()
        if self._connection is not None:
            self._session = self.db.sessions(bind=self._connection)
        else:
            self._session = self.db.sessions()
        await self._session.begin()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session, self._session = self.session, None
        try:
            if exc_type is None:
                await session.commit()
            else:
                await session.rollback()
        finally:
            await session.close()
            if self._turn is not None:
                self._turn.release()
                self._turn = None

    @contextlib.asynccontextmanager
    async def connected(self) -> AsyncIterator[UnitOfWork]:
        """Every transaction of the block on one connection of the pool.

        A checkout costs a liveness check (three round trips on asyncpg); a handler that
        runs several short transactions per message pays it once. SQLite: unchanged."""
        if self._connection is not None or is_sqlite(self.db.url):
            yield self
            return
        async with self.db.engine.connect() as connection:
            self._connection = connection
            try:
                yield self
            finally:
                self._connection = None

    def stage(self, *events: Event) -> None:
        """Events (and commands) that leave only if this transaction commits."""
        stage(self.session, *events)

    async def lock(self, key: uuid.UUID) -> None:
        """Hold `key` until this transaction ends, across every replica.

        PostgreSQL: a transaction-scoped advisory lock, released by the commit or by
        the death of the holder. SQLite: the process's transactions already take
        turns (see `_sqlite_writers`), and one process is all SQLite serves.
        """
        if not is_sqlite(self.db.url):
            await self.session.execute(
                text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key(key)}
            )
