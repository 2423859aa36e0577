"""A host key rotation that drops no partner: the key to come is announced first.

OpenSSH's `sftp` checks the gateway's host key against a known_hosts file, as a
partner's does, and takes the keys the server announces (`UpdateHostKeys`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import asyncssh

from courier.common.settings import Settings
from tests.gateway.conftest import Partner
from tests.support.cli import cli_env, courier_run
from tests.support.clients import known_hosts, openssh_sftp
from tests.support.services import running


async def _list(partner: Partner, pinned: Path) -> int:
    result = await openssh_sftp(
        partner.port,
        partner.username,
        ["ls /inbound"],
        password=partner.password,
        identity=partner.key_path,
        known_hosts=pinned,
    )
    return result.returncode


async def test_partners_clients_learn_the_next_host_key_and_keep_connecting_after_the_switch(
    partner: Partner, gateway_settings: Settings, tmp_path: Path
) -> None:
    keys = gateway_settings.gateway_host_key_dir
    pinned = known_hosts(tmp_path / "known_hosts", partner.port, keys)
    never_updated = Path(shutil.copy(pinned, tmp_path / "known_hosts.old"))
    coming = asyncssh.generate_private_key("ssh-ed25519")
    (keys / "ssh_host_ed25519_key.next").write_bytes(coming.export_private_key())
    coming_line = coming.export_public_key().decode().split()[1]

    env = cli_env(gateway_settings, COURIER_GATEWAY_HOST_KEY_DIR=str(keys))
    shown = await courier_run(env, "gateway", "hostkey")
    assert f"ssh-ed25519 {coming.get_fingerprint('sha256')} next" in shown.stdout

    # Overlap: the old key is served, the next one announced after login.
    async with running("gateway", gateway_settings):
        assert await _list(partner, pinned) == 0
    assert coming_line in pinned.read_text()

    # The switch: the next key becomes the key (a restart, replica by replica).
    os.replace(keys / "ssh_host_ed25519_key.next", keys / "ssh_host_ed25519_key")
    async with running("gateway", gateway_settings):
        assert await _list(partner, pinned) == 0
        # A client that never connected during the overlap is refused by its own check.
        assert await _list(partner, never_updated) != 0
