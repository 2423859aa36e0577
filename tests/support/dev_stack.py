"""`courier dev up` as a person starts it: its own process, no `COURIER_*` settings."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil


def without_courier_settings(**extra: str) -> dict[str, str]:
    """This environment minus every `COURIER_*` variable (what a fresh terminal has)."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("COURIER_")}, **extra}


def start_dev_up(
    data_dir: Path | None,
    sftp_port: int,
    console_port: int,
    *,
    cwd: Path | None = None,
) -> subprocess.Popen[str]:
    """`courier dev up` (with `--data-dir` unless None: then `./.courier-dev` of `cwd`),
    in a session of its own, so a test can Ctrl-C its process group as a terminal does."""
    args = ["dev", "up", "--sftp-port", str(sftp_port), "--console-port", str(console_port)]
    if data_dir is not None:
        args += ["--data-dir", str(data_dir)]
    return subprocess.Popen(
        [sys.executable, "-m", "courier.cli.main", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=cwd,
        env=without_courier_settings(COLUMNS="200"),
        start_new_session=True,
    )


def read_until_connect_line(proc: subprocess.Popen[str], limit: float = 90) -> str:
    """What `dev up` printed up to its `sftp -P …` line (AssertionError if it never did)."""
    deadline = time.monotonic() + limit
    out = ""
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        out += line
        if "sftp -P" in line:
            return out
    raise AssertionError(f"no connect line within {limit} s:\n{out}")


def children(proc: subprocess.Popen[str]) -> list[psutil.Process]:
    return psutil.Process(proc.pid).children(recursive=True)


def all_stopped(processes: list[psutil.Process]) -> bool:
    return all(not p.is_running() or p.status() == psutil.STATUS_ZOMBIE for p in processes)
