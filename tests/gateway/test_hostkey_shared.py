"""Gateway replicas that share a host key directory and start together, on a first
deployment, all serve the same host keys (partners pin one fingerprint)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from courier.gateway.hostkeys import fingerprints

REPLICAS = 6
READ = (
    "import json, sys; from pathlib import Path; "
    "from courier.gateway.hostkeys import fingerprints; "
    "print(json.dumps(fingerprints(Path(sys.argv[1]))))"
)


def test_replicas_starting_together_on_an_empty_directory_serve_the_same_keys(
    tmp_path: Path,
) -> None:
    shared = tmp_path / "hostkeys"
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", READ, str(shared)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(REPLICAS)
    ]
    served = []
    for proc in starts:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        served.append(json.loads(out))
    on_disk = fingerprints(shared)
    assert set(on_disk) == {"ssh-ed25519", "ssh-rsa"}
    assert served == [on_disk] * REPLICAS
    # Nothing half-written is left beside the keys.
    assert not [p.name for p in shared.iterdir() if p.name.endswith(".tmp")]
