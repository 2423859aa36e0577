"""`courier dev up`: the whole stack from one command, stopped cleanly by Ctrl-C, with
demo console users whose passwords (and signed-in browsers) survive a restart."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import httpx
import pytest

from tests.support.clients import openssh_available, openssh_sftp
from tests.support.dev_stack import all_stopped, children, read_until_connect_line
from tests.support.dev_stack import start_dev_up as _start
from tests.support.fixtures_data import leave_csv
from tests.support.infra import free_port
from tests.support.services import eventually


@pytest.mark.skipif(not openssh_available(), reason="needs OpenSSH sftp and sshpass")
async def test_dev_up_prints_connect_line_accepts_uploads_and_stops_everything(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "dev"
    sftp_port, console_port = free_port(), free_port()
    # One browser for both runs: its session cookie must outlive the restart.
    browser = httpx.AsyncClient(base_url=f"http://127.0.0.1:{console_port}", timeout=5)
    proc = _start(data_dir, sftp_port, console_port)
    try:
        out = read_until_connect_line(proc)
        password = re.search(r"user demo, password: (\S+)", out).group(1)  # type: ignore[union-attr]
        admin = re.search(r"admin +password: (\S+)", out).group(1)  # type: ignore[union-attr]
        assert re.search(r"demo-viewer +password: \S+ +\(tenant demo only\)", out), out
        assert f"sftp -P {sftp_port}" in out and f"http://127.0.0.1:{console_port}" in out
        signed_in = await browser.post("/signin", data={"username": "admin", "password": admin})
        assert signed_in.status_code == 303, signed_in.text
        started = children(proc)
        assert any("nats-server" in c.name() for c in started)

        uploaded = leave_csv("E1,annual,8,2026-11-01")
        (tmp_path / "leave_1.csv").write_bytes(uploaded)
        result = await openssh_sftp(
            sftp_port, "demo", [f"put {tmp_path / 'leave_1.csv'} /inbound/"], password=password
        )
        assert "Uploading" in result.stdout, result.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    assert all_stopped(started), started

    # A second run on the same directory keeps the data: same passwords, the admin's
    # browser still signed in (the console's key is kept), the import still there.
    proc = _start(data_dir, sftp_port, console_port)
    try:
        out = read_until_connect_line(proc)
        assert f"user demo, password: {password}" in out
        assert re.search(rf"admin +password: {re.escape(admin)} ", out), out

        async def imported() -> list[dict[str, object]] | None:
            try:
                resp = await browser.get("/api/imports")
            except httpx.TransportError:
                return None  # still catching up after the restart
            assert resp.status_code == 200, resp.text
            found = resp.json()
            return found if found and found[0]["finished_at"] else None

        imports = await eventually(imported)
        assert [i["file_name"] for i in imports] == ["leave_1.csv"]
        assert imports[0]["created"] == 1

        async def backed_up() -> list[Path] | None:
            found = [p for p in (data_dir / "backup").rglob("*") if p.is_file()]
            return found if any(p.read_bytes() == uploaded for p in found) else None

        # The dev stack backs files up too, into the data dir's stand-in bucket.
        await eventually(backed_up, within=30)
    finally:
        await browser.aclose()
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
