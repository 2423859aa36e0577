"""Run one service by name; kept light so a service process imports only what it runs."""

from __future__ import annotations

import importlib
import sys

SERVICES = ("importer", "poller", "exporter", "monitor", "notifier", "backup", "gateway", "console")


class UnknownService(Exception):
    pass


def run(name: str) -> None:
    from courier.common.runtime import run_forever
    from courier.common.settings import get_settings

    if name not in SERVICES:
        raise UnknownService(f"unknown service {name!r}; one of {', '.join(SERVICES)}")
    try:
        module = importlib.import_module(f"courier.{name}.app")
    except ModuleNotFoundError as exc:
        if exc.name != f"courier.{name}.app":
            raise
        raise UnknownService(f"service {name!r} is not part of this build") from exc
    run_forever(name, get_settings(), module.main)


if __name__ == "__main__":
    try:
        run(sys.argv[1])
    except UnknownService as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
