"""The load bench's driver, briefly: a few partners upload while an importer replica is
killed, and every file they were told was stored is imported exactly once.

`bench/load.py` runs the long variant (200 partners, a gateway killed too).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.load import LoadOptions, run_load
from tests.support.clients import openssh_available

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(not openssh_available(), reason="needs OpenSSH sftp and sshpass"),
]


async def test_importer_killed_under_load_loses_and_doubles_nothing(
    database_url: str, tmp_path: Path
) -> None:
    options = LoadOptions(
        partners=4,
        seconds=20,
        every=4,
        gateways=1,
        importers=2,
        kill_gateway_at=None,
        kill_importer_at=0.4,
        # Files of 6,000 to 16,000 rows: the importers are busy when the kill comes,
        # and through with the backlog soon after.
        sizes=((200_000, 1), (500_000, 1)),
        settle=90,
        database_url=database_url,
        # A killed importer's file comes back after 5 s, not 15.
        overrides={"COURIER_ACK_WAIT_SECONDS": "5"},
    )
    result = await run_load(options, tmp_path)
    report = result.reconciliation
    assert [k.service for k in result.kills] == ["importer"]
    assert report.uploads >= 8
    assert report.stored == report.uploads
    assert (report.lost, report.doubled, report.unsent) == ([], [], [])
    assert report.imported == report.uploads
    assert set(report.statuses) == {"completed"}
    assert not result.other_errors, result.other_details
