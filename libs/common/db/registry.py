"""Every table module, imported so `Base.metadata` knows all tables (Alembic, tests)."""

from __future__ import annotations

import importlib
import pkgutil

import courier.common.db as db_package


def import_all_models() -> None:
    """Table modules are `courier.common.db.models` and `courier.common.db.models_<area>`."""
    for info in pkgutil.iter_modules(db_package.__path__):
        if info.name == "models" or info.name.startswith("models_"):
            importlib.import_module(f"{db_package.__name__}.{info.name}")
