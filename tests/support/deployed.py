"""Courier services as separate processes, as a pod runs them: started, killed and
restarted by a test or a bench, each with its own health port and log file.

Shared by `tests/resilience/` and the stack-level benches (`bench/latency.py`,
`bench/load.py`, `bench/soak.py`), which kill and restart real processes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from tests.support import infra


@dataclass
class ServiceProcess:
    """One `courier service NAME` process; `restart()` starts a fresh one with the same
    settings (a pod's replacement), on the same health port."""

    name: str
    env: dict[str, str]
    log_path: Path
    health_port: int
    proc: subprocess.Popen[bytes] | None = None
    peak_rss: int = 0
    starts: int = 0

    def start(self, ready_within: float = 60) -> ServiceProcess:
        self.launch()
        self.wait_ready(ready_within)
        return self

    def launch(self) -> ServiceProcess:
        """Start the process without waiting for it: several replicas start side by side,
        then `wait_ready` each."""
        log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "courier.cli.main", "service", self.name],
                env=self.env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        finally:
            log.close()
        self.starts += 1
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was never started"
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ready(self) -> bool:
        """`/readyz` answers 200: the service is connected to its database and bus."""
        url = f"http://127.0.0.1:{self.health_port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def wait_ready(self, within: float = 60) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(f"{self.name} exited early:\n{self.log_tail()}")
            if self.ready():
                return
            time.sleep(0.1)
        raise AssertionError(f"{self.name} not ready within {within} s:\n{self.log_tail()}")

    def sample_rss(self) -> int:
        """The process's resident memory now (its children included); the peak is kept."""
        if not self.alive():
            return 0
        with contextlib.suppress(psutil.Error):
            top = psutil.Process(self.pid)
            rss = top.memory_info().rss + sum(
                c.memory_info().rss for c in top.children(recursive=True)
            )
            self.peak_rss = max(self.peak_rss, rss)
            return rss
        return 0

    def kill(self) -> None:
        """SIGKILL: no drain, no flush, no goodbye, as an OOM kill or a lost node."""
        if self.alive():
            os.killpg(self.pid, signal.SIGKILL)
            assert self.proc is not None
            self.proc.wait(10)

    def stop(self, grace: float = 20) -> int | None:
        """SIGTERM, as Kubernetes stops a pod; SIGKILL after `grace` seconds."""
        if self.proc is None:
            return None
        if self.alive():
            os.killpg(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def restart(self, ready_within: float = 60) -> ServiceProcess:
        self.kill()
        return self.start(ready_within)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Deployment:
    """Several services sharing one set of `COURIER_*` settings (database, bus, storage),
    each replica a process of its own."""

    work: Path
    settings: Mapping[str, str]
    services: list[ServiceProcess] = field(default_factory=list)

    def add(self, name: str, *, start: bool = True, **overrides: str) -> ServiceProcess:
        """A replica of `name`; `overrides` are `COURIER_*` settings of this replica only."""
        replica = sum(1 for s in self.services if s.name == name)
        port = infra.free_port()
        env = {
            **os.environ,
            **self.settings,
            "COURIER_HEALTH_PORT": str(port),
            "COURIER_LOG_JSON": "true",
            **overrides,
        }
        service = ServiceProcess(
            name=name,
            env=env,
            log_path=self.work / f"{name}-{replica}.log",
            health_port=port,
        )
        self.services.append(service)
        if start:
            service.start()
        return service

    def of(self, name: str) -> list[ServiceProcess]:
        return [s for s in self.services if s.name == name]

    def sample_rss(self) -> None:
        for service in self.services:
            service.sample_rss()

    def peak_rss_mb(self) -> dict[str, float]:
        """Peak RSS by service name (the largest replica), in MB."""
        peaks: dict[str, float] = {}
        for service in self.services:
            peaks[service.name] = max(peaks.get(service.name, 0.0), service.peak_rss / 1e6)
        return peaks

    def stop(self) -> None:
        for service in reversed(self.services):
            with contextlib.suppress(Exception):
                service.stop()


@contextlib.contextmanager
def deployment(work: Path, settings: Mapping[str, str]) -> Iterator[Deployment]:
    """A deployment whose every process is stopped when the block ends, whatever happens."""
    work.mkdir(parents=True, exist_ok=True)
    stack = Deployment(work, settings)
    try:
        yield stack
    finally:
        stack.stop()
