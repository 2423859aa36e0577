"""Async engine and session factory for PostgreSQL (production) and SQLite (embedded)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util import await_only


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def upsert_insert(session: AsyncSession, table: Any) -> Any:
    """`INSERT` with `ON CONFLICT` clauses, in the session's dialect (PostgreSQL or SQLite)."""
    if session.bind.dialect.name == "sqlite":
        return sqlite_insert(table)
    return pg_insert(table)


def create_engine(url: str, application_name: str | None = None, **kwargs: object) -> AsyncEngine:
    """`application_name` (PostgreSQL) names the process in `pg_stat_activity`, so an
    operator (or a fault test) can tell which replica holds which connection."""
    if is_sqlite(url):
        # Several services share one SQLite file in `dev up`: wait on locks instead of failing.
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()
            # pysqlite's own transaction handling defers BEGIN; take the write lock up
            # front so two writers queue on busy_timeout instead of deadlocking.
            dbapi_conn.isolation_level = None

        @event.listens_for(engine.sync_engine, "begin")
        def _begin(conn):  # type: ignore[no-untyped-def]
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if application_name:
        # PostgreSQL keeps 63 bytes of it.
        settings = {"application_name": application_name[:63]}
        kwargs["connect_args"] = {"server_settings": settings}
    engine = create_async_engine(url, **kwargs)
    event.listen(engine.sync_engine, "checkout", _alive)
    return engine


def _alive(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
    """A pooled connection is checked before each use, in one round trip.

    SQLAlchemy's `pool_pre_ping` on asyncpg takes three (BEGIN, a statement, ROLLBACK,
    so that pgbouncer's transaction mode keeps them on one server connection), and each
    message a service handles checks a connection out. A `SELECT 1` in the simple protocol
    prepares nothing, so it is as safe there. As with `pool_pre_ping`, a dead connection
    (the server restarted, or ended it) makes the pool drop every connection it holds
    from before and connect afresh."""
    try:
        await_only(dbapi_conn._connection.execute("SELECT 1"))
    except Exception as exc:
        raise InvalidatePoolError(f"pooled connection is gone: {type(exc).__name__}") from exc


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


class Database:
    """One engine and its session factory, owned by a service for its lifetime."""

    def __init__(self, url: str, application_name: str | None = None) -> None:
        self.url = url
        self.engine = create_engine(url, application_name)
        self.sessions = session_factory(self.engine)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()
