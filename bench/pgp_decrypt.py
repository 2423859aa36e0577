"""Memory and speed of decrypting a large OpenPGP file through the importer's path.

    python bench/pgp_decrypt.py [--size-mib 1024]

A partner's `gpg` encrypts and signs SIZE MiB of incompressible data to the tenant's
key (so the encrypted file is as large as its plaintext). Then, each in a fresh child
process so that nothing else counts:

- `courier`: the importer's `unwrap.opened` on it, as a feed with `decrypt: pgp` and
  `require_signature: true` reads it: the stored bytes checked against their sha256,
  the keys looked up (SQLite), gpg decrypting and verifying into a temporary file, and
  the plaintext's sha256;
- `gpg`: `gpg --decrypt` of the same file to /dev/null, the baseline.

Printed per run: seconds, MB/s and peak resident memory, of the Python process
(ru_maxrss) and of its children (gpg; ru_maxrss of the waited-for children), with the
sampled peak of the whole process tree (psutil). Run from the repository root.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MiB = 1024 * 1024


def _write_random(path: Path, size: int) -> None:
    block = os.urandom(MiB)
    with path.open("wb") as fh:
        for i in range(size // MiB):
            # Different blocks: nothing for gpg's compression to find.
            fh.write(block[i % 251 :] + block[: i % 251])


class _Peak:
    """Samples the resident memory of this process and its descendants."""

    def __init__(self) -> None:
        self.peak = 0
        self.children = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            own, children = 0, 0
            with contextlib.suppress(psutil.Error):
                own = me.memory_info().rss
            for proc in me.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    children += proc.memory_info().rss
            self.peak = max(self.peak, own + children)
            self.children = max(self.children, children)
            self._stop.wait(0.05)

    def __enter__(self) -> _Peak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _report(seconds: float, size: int, peak: _Peak) -> dict[str, float]:
    return {
        "seconds": seconds,
        "mb_per_s": size / MiB / seconds,
        "python_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        # A forked child counts its parent's pages until it execs: an upper bound.
        "children_maxrss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "children_sampled_mib": peak.children / MiB,
        "tree_peak_mib": peak.peak / MiB,
    }


async def _courier(work: Path, size: int) -> dict[str, float]:
    """The importer's path, as a feed with `decrypt: pgp` reads the file."""
    from pydantic import SecretStr

    from courier.cli import provision
    from courier.common import pgp_keys
    from courier.common.db.engine import Database
    from courier.common.db.models import Import
    from courier.common.settings import Settings
    from courier.common.storage import open_storage
    from courier.common.uow import UnitOfWork
    from courier.importer.spec import FeedSpec
    from courier.importer.unwrap import opened
    from tests.support.pgp import PASSPHRASE

    url = _database(work)
    db = Database(url)
    tenant = await provision.ensure_tenant(db, "bench", "Bench", "UTC")
    keys = json.loads((work / "keys.json").read_text())
    await pgp_keys.import_key(
        db, "bench", keys["secret"], owner="courier", passphrase=PASSPHRASE, actor="bench"
    )
    await pgp_keys.import_key(db, "bench", keys["partner"], actor="bench")
    spec = FeedSpec(name="leave", kind="leave_balances", pattern="leave_*.csv",
                    decrypt="pgp", require_signature=True)  # fmt: skip
    src = work / "leave_1.csv.pgp"
    imp = Import(
        id=uuid.uuid4(), tenant_id=tenant.id, feed_id=None, file_id=uuid.uuid4(),
        file_name=src.name, storage_key="-", sha256=keys["sha256"], size=src.stat().st_size,
    )  # fmt: skip
    settings = Settings(database_url=url, pgp_passphrase=SecretStr(PASSPHRASE))
    uow = UnitOfWork(db, open_storage(f"file://{work}"), settings=settings)
    started = time.perf_counter()
    with _Peak() as peak:
        async with uow, opened(uow, imp, spec, src) as plain:
            assert plain.path.stat().st_size == size, "plaintext size differs"
    seconds = time.perf_counter() - started
    await db.dispose()
    return _report(seconds, size, peak)


def _database(work: Path) -> str:
    return f"sqlite+aiosqlite:///{work / 'bench.db'}"


def _gpg(work: Path, size: int) -> dict[str, float]:
    """`gpg --decrypt` to /dev/null in the tenant's own keyring: the baseline."""
    home = work / "gnupg"
    env = {**os.environ, "GNUPGHOME": str(home)}
    started = time.perf_counter()
    with _Peak() as peak:
        subprocess.run(
            ["gpg", "--batch", "--yes", "--pinentry-mode", "loopback", "--passphrase-fd", "0",
             "--trust-model", "always", "--output", "/dev/null", "--decrypt",
             str(work / "leave_1.csv.pgp")],
            input=json.loads((work / "keys.json").read_text())["passphrase"].encode(),
            env=env, check=True, capture_output=True,
        )  # fmt: skip
    seconds = time.perf_counter() - started
    return _report(seconds, size, peak)


def prepare(work: Path, size: int) -> None:
    """Keys, the partner's encrypted and signed file, and the baseline's keyring."""
    import hashlib

    from tests.support.pgp import PASSPHRASE, GpgHome, tenant_key_pair

    tenant = tenant_key_pair("Courier bench", "pgp@bench.courier.example")
    partner = GpgHome("bpartn")
    partner.generate("Bench Partner <partner@bench.example>")
    partner.import_key(tenant.public)
    plain = work / "leave_1.csv"
    _write_random(plain, size)
    encrypted = partner.encrypt(plain, tenant.fingerprint, sign=True,
                                dst=work / "leave_1.csv.pgp")  # fmt: skip
    plain.unlink()
    digest = hashlib.sha256()
    with encrypted.open("rb") as fh:
        while chunk := fh.read(MiB):
            digest.update(chunk)
    baseline = GpgHome("bbase")
    baseline.gpg("--pinentry-mode", "loopback", "--passphrase", PASSPHRASE, "--import",
                 stdin=tenant.secret.encode())  # fmt: skip
    baseline.import_key(partner.export())  # to verify the signature, as Courier does
    (work / "gnupg").symlink_to(baseline.home)
    (work / "keys.json").write_text(json.dumps({
        "secret": tenant.secret, "partner": partner.export(), "passphrase": PASSPHRASE,
        "sha256": digest.hexdigest(),
    }))  # fmt: skip
    partner.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--child", choices=["courier", "gpg"], help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = args.size_mib * MiB
    if args.child:
        from courier.common.logging import configure_logging

        configure_logging("bench", "WARNING", json=True)
        if args.child == "courier":
            from courier.common.db.migrate import upgrade_sync

            upgrade_sync(_database(args.work))
        result = (
            asyncio.run(_courier(args.work, size))
            if args.child == "courier"
            else _gpg(args.work, size)
        )
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory(prefix="bench-pgp-", dir="/tmp") as tmp:
        work = Path(tmp)
        print(f"preparing {args.size_mib} MiB encrypted and signed by the partner's gpg ...")
        prepare(work, size)
        print(f"encrypted file: {(work / 'leave_1.csv.pgp').stat().st_size / MiB:.0f} MiB",
              flush=True)  # fmt: skip
        results = {}
        for child in ("gpg", "courier", "gpg", "courier"):
            out = subprocess.run(
                [sys.executable, __file__, "--child", child, "--work", str(work),
                 "--size-mib", str(args.size_mib)],
                capture_output=True, text=True,
            )  # fmt: skip
            if out.returncode:
                sys.exit(f"{child} run failed:\n{out.stderr[-3000:]}")
            result = json.loads(out.stdout.strip().splitlines()[-1])
            # Best of two runs each: the page cache is warm for both.
            if child not in results or result["seconds"] < results[child]["seconds"]:
                results[child] = result
        print("peak resident MiB: python = ru_maxrss of the process; children = ru_maxrss "
              "of the waited-for children / sampled; tree = sampled process tree")  # fmt: skip
        print(f"{'':8} {'s':>6} {'MB/s':>6} {'python':>7} {'children':>15} {'tree':>6}")
        for name, r in results.items():
            children = f"{r['children_maxrss_mib']:.0f} / {r['children_sampled_mib']:.0f}"
            figures = f"{r['python_peak_mib']:7.0f} {children:>15} {r['tree_peak_mib']:6.0f}"
            print(f"{name:8} {r['seconds']:6.1f} {r['mb_per_s']:6.0f} {figures}")
        ratio = results["courier"]["seconds"] / results["gpg"]["seconds"]
        print(f"courier / gpg time: {ratio:.2f}")


if __name__ == "__main__":
    main()
