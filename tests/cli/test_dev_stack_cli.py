"""Support next to `courier dev up`: commands in a second terminal use the stack's data,
Ctrl-C stops it quietly, and a service that dies is named with why."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
from pathlib import Path

import psutil
import pytest

from tests.support.cli import courier_run
from tests.support.clients import openssh_available, openssh_sftp
from tests.support.dev_stack import (
    all_stopped,
    children,
    read_until_connect_line,
    start_dev_up,
    without_courier_settings,
)
from tests.support.fixtures_data import leave_csv
from tests.support.infra import free_port
from tests.support.services import eventually


def _rest(proc: subprocess.Popen[str], timeout: float = 30) -> str:
    """What `dev up` prints until it exits."""
    out, _ = proc.communicate(timeout=timeout)
    return out


@pytest.mark.skipif(not openssh_available(), reason="needs OpenSSH sftp and sshpass")
async def test_commands_next_to_the_dev_stack_use_its_data_and_ctrl_c_stops_it_quietly(
    tmp_path: Path,
) -> None:
    sftp_port = free_port()
    # `make run` in the project directory: the stack's data in ./.courier-dev.
    proc = start_dev_up(None, sftp_port, free_port(), cwd=tmp_path)
    terminal = without_courier_settings()
    try:
        out = read_until_connect_line(proc)
        password = re.search(r"user demo, password: (\S+)", out).group(1)  # type: ignore[union-attr]
        (tmp_path / "leave_1.csv").write_bytes(leave_csv("E1,annual,8,2026-11-01"))
        sent = await openssh_sftp(
            sftp_port, "demo", [f"put {tmp_path / 'leave_1.csv'} /inbound/"], password=password
        )
        assert "Uploading" in sent.stdout, sent.stderr
        started = children(proc)

        # A second terminal in the same directory, and one in a folder below it.
        below = tmp_path / "reports"
        below.mkdir()

        async def listed() -> list[dict[str, object]] | None:
            ran = await courier_run(terminal, "imports", "list", "--json", cwd=below)
            assert ran.code == 0, ran
            found = json.loads(ran.stdout)
            return found if found and found[0]["finished_at"] else None

        (imported,) = await eventually(listed, within=30)
        assert imported["file_name"] == "leave_1.csv" and imported["tenant"] == "demo"
        table = await courier_run(terminal, "imports", "list", cwd=tmp_path)
        assert f"{imported['id']}\tdemo\tleave-balances\tleave_1.csv" in table.stdout, table

        # COURIER_* settings win over the stack.
        elsewhere = await courier_run(
            {**terminal, "COURIER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"},
            "imports", "list", cwd=tmp_path,
        )  # fmt: skip
        assert elsewhere.code == 1 and "no Courier database" in elsewhere.stderr, elsewhere
    finally:
        # Ctrl-C in its terminal: SIGINT to the whole foreground process group.
        os.killpg(proc.pid, signal.SIGINT)
        rest = _rest(proc)
    assert proc.returncode == 0, rest
    assert rest.strip().splitlines()[-2:] == ["stopping…", "stopped"], rest
    assert "error" not in rest and "Traceback" not in rest
    assert all_stopped(started), started

    # Stopped, the stack's data is still read; what needs its bus says to start it.
    again = await courier_run(terminal, "imports", "list", "--json", cwd=tmp_path)
    assert [i["id"] for i in json.loads(again.stdout)] == [imported["id"]]
    flush = await courier_run(terminal, "outbox", "flush", cwd=tmp_path)
    assert flush.code == 1 and "Traceback" not in flush.stderr, flush
    assert flush.stderr.strip().endswith(
        f"the dev stack in {tmp_path / '.courier-dev'} is not running: start `courier dev up`; "
        "nothing was changed"
    ), flush.stderr


async def test_a_killed_service_is_named_and_the_rest_is_stopped(tmp_path: Path) -> None:
    proc = start_dev_up(tmp_path / "dev", free_port(), free_port())
    try:
        read_until_connect_line(proc)
        started = children(proc)
        (importer,) = [p for p in started if "importer" in p.cmdline()]
        importer.send_signal(signal.SIGKILL)
        rest = _rest(proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(30)
    assert proc.returncode == 1, rest
    log = tmp_path / "dev" / "logs" / "importer.log"
    said = f"error: importer stopped on its own: it was killed by SIGKILL; the last lines of {log}:"
    assert said in rest
    assert '"event": "service started", "service": "importer"' in rest
    assert "Traceback" not in rest
    assert all_stopped(started), started


async def test_a_service_that_cannot_start_is_named_with_its_last_log_lines(
    tmp_path: Path,
) -> None:
    # Something else holds the SFTP port: the gateway exits with the reason in its log.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proc = start_dev_up(tmp_path / "dev", taken.getsockname()[1], free_port())
        rest = _rest(proc, timeout=90)
    assert proc.returncode == 1, rest
    assert "error: gateway stopped on its own: it exited with 1; the last lines of" in rest
    assert "address already in use" in rest and "Courier is up" not in rest
    assert not _running_in(tmp_path / "dev")


def _running_in(data_dir: Path) -> list[psutil.Process]:
    """Processes started for the stack in `data_dir` (by their command line or settings)."""
    return [
        p
        for p in psutil.process_iter(["cmdline", "environ"])
        if str(data_dir) in " ".join(p.info["cmdline"] or [])
        or str(data_dir) in (p.info["environ"] or {}).get("COURIER_DATABASE_URL", "")
    ]
