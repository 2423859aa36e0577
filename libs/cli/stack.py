"""The dev stack's state file: `courier dev up` writes where its data is, every command reads it.

So `courier imports list` in a second terminal next to `make run` answers from the
running stack, not from an empty `./courier.db`. Settings given as `COURIER_*`
variables always win: when any of those that say where data lives is set, the state
file is not read at all (mixing one database with another stack's bus would be worse
than either).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from courier.common.settings import get_settings

STATE_FILE = "stack.json"
DEFAULT_DIR = Path(".courier-dev")
# Where to look instead of `./.courier-dev` (also the default of `dev up --data-dir`).
DIR_VARIABLE = "COURIER_DEV_DATA_DIR"
# The settings that say where the data is; any of them set means the operator chose.
WHERE = (
    "COURIER_DATABASE_URL",
    "COURIER_NATS_URL",
    "COURIER_NATS_NAMESPACE",
    "COURIER_STORAGE_URL",
    "COURIER_BACKUP_URL",
    "COURIER_REGIONS",
)


class NoStack(Exception):
    """A data dir was named that holds no dev stack."""


@dataclass(frozen=True)
class Stack:
    data_dir: Path
    pid: int
    settings: dict[str, str]

    @property
    def running(self) -> bool:
        """Whether the `dev up` that wrote the file still holds it (its lock ends with it,
        however it ends, so a stale file or a reused pid cannot look alive)."""
        try:
            with open(self.data_dir / STATE_FILE) as f:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return False
        return False


# The stack this command uses, for error messages (None: settings from the environment).
current: Stack | None = None


class AlreadyRunning(RuntimeError):
    pass


def hold(data_dir: Path, settings: dict[str, str]) -> IO[str]:
    """Record the settings `dev up` gave its services (no secret among them), locked for as
    long as the returned file stays open. AlreadyRunning: another `dev up` holds it."""
    path = data_dir / STATE_FILE
    path.touch(mode=0o600)
    held = open(path, "r+")  # noqa: SIM115 - open for the life of `dev up`
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        held.close()
        other = read(data_dir)
        raise AlreadyRunning(
            f"a dev stack already runs in {data_dir}"
            + (f" (pid {other.pid})" if other else "")
            + ": stop it first, or give another --data-dir"
        ) from exc
    held.truncate(0)
    held.write(json.dumps({"pid": os.getpid(), "settings": settings}, indent=2) + "\n")
    held.flush()
    return held


def release(held: IO[str]) -> None:
    with contextlib.suppress(OSError):
        held.close()


def read(data_dir: Path) -> Stack | None:
    path = data_dir / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return Stack(
        data_dir=data_dir.resolve(),
        pid=int(state.get("pid", 0)),
        settings={str(k): str(v) for k, v in state.get("settings", {}).items()},
    )


def find(start: Path) -> Stack | None:
    """The nearest `.courier-dev` with a state file, from `start` up to the root (as git does)."""
    for directory in (start, *start.parents):
        found = read(directory / DEFAULT_DIR)
        if found is not None:
            return found
    return None


def chosen_by_environment() -> bool:
    return any(os.environ.get(name) for name in WHERE)


def use(data_dir: Path | None) -> Stack | None:
    """Point this command at the dev stack (named, or found from here) unless `COURIER_*`
    settings say where the data is. NoStack: `data_dir` was named and holds none."""
    global current
    if chosen_by_environment():
        return None
    stack = read(data_dir) if data_dir is not None else find(Path.cwd())
    if stack is None:
        if data_dir is not None:
            raise NoStack(
                f"no dev stack in {data_dir} (no {STATE_FILE}): "
                f"start one with `courier dev up --data-dir {data_dir}`"
            )
        return None
    for name, value in stack.settings.items():
        os.environ.setdefault(name, value)
    get_settings.cache_clear()
    current = stack
    return stack


def hint() -> str:
    """What to add to a message about the bus or the database: the stack's state."""
    if current is None:
        return ""
    if current.running:
        return f" (the dev stack in {current.data_dir})"
    return f"; the dev stack in {current.data_dir} is not running: start `courier dev up`"
