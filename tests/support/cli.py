"""The `courier` command as an operator runs it: its own process, configured by environment."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from courier.common.settings import Settings
from tests.support.infra import free_port


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that points `courier` at the test's database, storage and bus."""
    return {
        **os.environ,
        "COURIER_DATABASE_URL": settings.database_url,
        "COURIER_STORAGE_URL": settings.storage_url,
        "COURIER_NATS_URL": settings.nats_url,
        "COURIER_NATS_NAMESPACE": settings.nats_namespace,
        **extra,
    }


def bus_down(settings: Settings) -> dict[str, str]:
    """The same, with the bus unreachable (nothing listens on its port)."""
    return cli_env(settings, COURIER_NATS_URL=f"nats://127.0.0.1:{free_port()}")


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str


async def courier_run(env: dict[str, str], *args: str, cwd: Path | None = None) -> Ran:
    """Run `courier ARGS…` in `cwd`, its standard output and error apart and as printed."""
    proc = await asyncio.create_subprocess_exec(
        _exe(), *args, env=env, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    return Ran(proc.returncode or 0, out.decode(), err.decode())


def _exe() -> str:
    return str(Path(sys.executable).parent / "courier")


async def courier(env: dict[str, str], *args: str, stdin: str | None = None) -> tuple[int, str]:
    """Run `courier ARGS…` (with `stdin` on its standard input); its exit code and output,
    words joined by single spaces."""
    proc = await asyncio.create_subprocess_exec(
        _exe(),
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE if stdin is not None else None,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate(stdin.encode() if stdin is not None else None)
    # Rich wraps long lines to the terminal width; compare the words.
    return proc.returncode or 0, " ".join(out.decode().split())
