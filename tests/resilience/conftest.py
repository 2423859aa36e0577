"""Fault tests run services as processes of their own against PostgreSQL, where an import
is one long transaction that a fault can cut: every test here gets a fresh PostgreSQL
database (and skips without one)."""

from tests.support.outages import database_url  # noqa: F401
