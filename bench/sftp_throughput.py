"""SFTP gateway throughput against OpenSSH's sshd (internal-sftp), measured in the same run.

    python bench/sftp_throughput.py throughput [--size-mib 1024]
    python bench/sftp_throughput.py concurrent [--sessions 200] [--size-mib 1]
    python bench/sftp_throughput.py storage [--size-mib 256]

`throughput` uploads and downloads one file with OpenSSH's `sftp` client through the
gateway (password + key, as partners log in) and through sshd on a loopback port, and
prints MB/s and the ratio. `concurrent` opens N asyncssh sessions at once, each logging
in with password + key and uploading one file, and prints errors and p50/p99 times.
`storage` runs two gateways side by side, one with its primary storage on `file://`
and one on `s3://` (a moto server on a loopback port, started here), uploads and
downloads the same file through each with OpenSSH's `sftp`, and prints MB/s and the
ratio S3 / file.

The gateway runs as its own process (`courier service gateway`) against SQLite,
file:// storage and a NATS server from the environment or an embedded one. Run from
the repository root.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncssh

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from courier.cli import provision
from courier.common.db.engine import Database
from courier.common.db.migrate import upgrade_sync
from courier.common.storage import file_url
from courier.gateway import admin
from tests.support import infra
from tests.support.sshd import Sshd

PASSWORD = "Bench-Passw0rd-Long-Enough"
USER = "bench"
MiB = 1024 * 1024


def _write_file(path: Path, size: int) -> None:
    block = os.urandom(MiB)
    with path.open("wb") as fh:
        for _ in range(size // MiB):
            fh.write(block)


async def _prepare_db(url: str, key_path: Path) -> None:
    db = Database(url)
    try:
        tenant = await provision.ensure_tenant(db, "bench", "Bench")
        await admin.create_account(
            db,
            tenant,
            USER,
            password=PASSWORD,
            keys=[asyncssh.read_private_key(key_path).export_public_key().decode()],
            allow=["127.0.0.1/32"],
        )
    finally:
        await db.dispose()


@dataclass
class Gateway:
    port: int
    pid: int

    def cpu(self) -> float:
        """CPU seconds (user + system) the gateway process has used so far."""
        import psutil

        times = psutil.Process(self.pid).cpu_times()
        return times.user + times.system


@contextlib.contextmanager
def gateway(
    work: Path, key_path: Path, nats: str, storage_url: str | None = None
) -> Iterator[Gateway]:
    """The gateway as a separate process, the way a container runs it (its primary
    storage `storage_url`, by default a folder in `work`)."""
    work.mkdir(parents=True, exist_ok=True)
    database = f"sqlite+aiosqlite:///{work / 'courier.db'}"
    upgrade_sync(database)
    asyncio.run(_prepare_db(database, key_path))
    port = infra.free_port()
    env = dict(
        os.environ,
        COURIER_DATABASE_URL=database,
        COURIER_NATS_URL=nats,
        COURIER_NATS_NAMESPACE="bench",
        COURIER_STORAGE_URL=storage_url or file_url(work / "storage"),
        COURIER_GATEWAY_PORT=str(port),
        COURIER_GATEWAY_HOST_KEY_DIR=str(work / "hostkeys"),
        # `concurrent` opens hundreds of sessions from one address on purpose.
        COURIER_GATEWAY_FLOOD_CONNECTIONS="0",
        COURIER_GATEWAY_FLOOD_UNAUTHENTICATED="0",
        COURIER_LOG_LEVEL="WARNING",
    )
    log = (work / "gateway.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "courier.cli.main", "service", "gateway"],
        env=env,
        stdout=log,
        stderr=log,
    )
    try:
        # Imports and host keys take a while on a busy machine.
        infra.wait_port("127.0.0.1", port, timeout=120)
        yield Gateway(port, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _sftp(port: int, user: str, key: Path, commands: list[str], password: str | None) -> float:
    """Run OpenSSH's sftp with commands on stdin; return the wall time in seconds."""
    args = [
        "sftp", "-P", str(port), "-i", str(key), "-o", "IdentitiesOnly=yes",
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "LogLevel=ERROR", f"{user}@127.0.0.1",
    ]  # fmt: skip
    env = dict(os.environ)
    if password:
        args = ["sshpass", "-e", *args]
        env["SSHPASS"] = password
    script = "\n".join([*commands, "bye"]) + "\n"
    started = time.perf_counter()
    done = subprocess.run(args, input=script.encode(), env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0 or b"Couldn't" in done.stderr:
        raise RuntimeError(done.stderr.decode(errors="replace"))
    return elapsed


def throughput(size_mib: int, repeat: int) -> None:
    size = size_mib * MiB
    with tempfile.TemporaryDirectory(prefix="courier-bench-") as tmp, infra.nats_url() as nats:
        work = Path(tmp)
        source, back = work / "source.bin", work / "back.bin"
        _write_file(source, size)
        sshd = Sshd(work / "sshd").start()
        results: dict[str, dict[str, float]] = {
            "OpenSSH sshd": {"upload": float("inf"), "download": float("inf")},
            "Courier gateway": {"upload": float("inf"), "download": float("inf")},
        }
        # The gateway process's CPU seconds per transfer: less sensitive to other load.
        cpu: dict[str, list[float]] = {"upload": [], "download": []}

        def keep_best(name: str, upload: float, download: float) -> None:
            best = results[name]
            best["upload"], best["download"] = (
                min(best["upload"], upload),
                min(best["download"], download),
            )

        try:
            key = sshd.client_key_path
            with gateway(work, key, nats) as gw:
                # Interleaved rounds, best of each: the machine may be shared.
                for _ in range(repeat):
                    up = _sftp(sshd.port, sshd.user, key, [f"put {source} bench.bin"], None)
                    down = _sftp(sshd.port, sshd.user, key, [f"get bench.bin {back}"], None)
                    keep_best("OpenSSH sshd", up, down)
                    back.unlink()
                    start = gw.cpu()
                    up = _sftp(gw.port, USER, key, [f"put {source} /inbound/bench.bin"], PASSWORD)
                    middle = gw.cpu()
                    down = _sftp(gw.port, USER, key, [f"get /inbound/bench.bin {back}"], PASSWORD)
                    cpu["upload"].append(middle - start)
                    cpu["download"].append(gw.cpu() - middle)
                    keep_best("Courier gateway", up, down)
                    if back.stat().st_size != size:
                        raise RuntimeError("download through the gateway came back short")
                    back.unlink()
        finally:
            sshd.stop()
    mb = size / 1e6
    print(
        f"file: {size_mib} MiB, OpenSSH sftp client for both (password + key for the gateway), "
        f"best of {repeat}"
    )
    print(f"{'server':<18}{'upload MB/s':>14}{'download MB/s':>16}")
    for name, times in results.items():
        print(f"{name:<18}{mb / times['upload']:>14.1f}{mb / times['download']:>16.1f}")
    base, ours = results["OpenSSH sshd"], results["Courier gateway"]
    print(
        f"ratio gateway/OpenSSH: upload {base['upload'] / ours['upload']:.2f}x, "
        f"download {base['download'] / ours['download']:.2f}x"
    )
    gib = size / (1024 * MiB)
    print(
        f"gateway CPU s per GiB (min / median): "
        f"upload {min(cpu['upload']) / gib:.2f} / {statistics.median(cpu['upload']) / gib:.2f}, "
        f"download {min(cpu['download']) / gib:.2f} / "
        f"{statistics.median(cpu['download']) / gib:.2f}"
    )


def _cpu() -> tuple[float, float]:
    """CPU seconds used so far by the gateway processes, and by this one (moto's threads)."""
    import psutil

    me = psutil.Process()
    children = sum(sum(c.cpu_times()[:2]) for c in me.children() if c.is_running())
    return children, sum(me.cpu_times()[:2])


def storage(size_mib: int, repeat: int) -> None:
    """The same transfers through a gateway on `file://` and one on `s3://` (moto)."""
    from tests.support.s3 import S3_REGION, moto_s3, new_bucket

    size = size_mib * MiB
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    best = {name: {"upload": float("inf"), "download": float("inf")} for name in ("file", "s3")}
    cpu: dict[str, list[tuple[float, ...]]] = {"file": [], "s3": []}
    with (
        tempfile.TemporaryDirectory(prefix="courier-bench-") as tmp,
        infra.nats_url() as nats,
        moto_s3() as endpoint,
    ):
        work = Path(tmp)
        source, back = work / "source.bin", work / "back.bin"
        _write_file(source, size)
        key = work / "client_ed25519"
        asyncssh.generate_private_key("ssh-ed25519").write_private_key(key)
        key.chmod(0o600)
        s3_url = f"s3://{new_bucket(endpoint)}/courier?endpoint={endpoint}&region={S3_REGION}"
        with (
            gateway(work / "file", key, nats) as file_gw,
            gateway(work / "s3", key, nats, s3_url) as s3_gw,
        ):
            file_port, s3_port = file_gw.port, s3_gw.port
            # Interleaved rounds, best of each: the machine may be shared.
            for _ in range(repeat):
                for name, port in (("file", file_port), ("s3", s3_port)):
                    before = _cpu()
                    up = _sftp(port, USER, key, [f"put {source} /inbound/bench.bin"], PASSWORD)
                    down = _sftp(port, USER, key, [f"get /inbound/bench.bin {back}"], PASSWORD)
                    if back.read_bytes() != source.read_bytes():
                        raise RuntimeError(f"download through the {name} gateway differs")
                    back.unlink()
                    cpu[name].append(tuple(b - a for a, b in zip(before, _cpu(), strict=True)))
                    best[name]["upload"] = min(best[name]["upload"], up)
                    best[name]["download"] = min(best[name]["download"], down)
    mb = size / 1e6
    print(
        f"file: {size_mib} MiB, OpenSSH sftp client, password + key, best of {repeat}; "
        "s3 = moto on loopback"
    )
    print(f"{'primary storage':<18}{'upload MB/s':>14}{'download MB/s':>16}")
    for name, times in best.items():
        print(f"{name:<18}{mb / times['upload']:>14.1f}{mb / times['download']:>16.1f}")
    for name, rounds in cpu.items():
        gw, moto = min(r[0] for r in rounds), min(r[1] for r in rounds)
        print(
            f"CPU per upload + download, {name}: gateway (and NATS) {gw:.1f} s, moto {moto:.1f} s"
        )
    local, s3 = best["file"], best["s3"]
    print(
        f"ratio s3/file: upload {local['upload'] / s3['upload']:.2f}x, "
        f"download {local['download'] / s3['download']:.2f}x"
    )


async def _one_session(port: int, key: asyncssh.SSHKey, index: int, body: bytes) -> float:
    started = time.perf_counter()
    async with (
        asyncssh.connect(
            "127.0.0.1",
            port,
            username=USER,
            password=PASSWORD,
            client_keys=[key],
            known_hosts=None,
            agent_path=None,
        ) as conn,
        conn.start_sftp_client() as sftp,
        sftp.open(f"/inbound/c{index:04d}.bin", "wb") as fh,
    ):
        await fh.write(body)
    return time.perf_counter() - started


async def _concurrent(port: int, key_path: Path, sessions: int, size: int) -> int:
    key = asyncssh.read_private_key(key_path)
    body = os.urandom(size)
    started = time.perf_counter()
    outcomes = await asyncio.gather(
        *(_one_session(port, key, i, body) for i in range(sessions)), return_exceptions=True
    )
    wall = time.perf_counter() - started
    times = sorted(o for o in outcomes if isinstance(o, float))
    errors = [o for o in outcomes if not isinstance(o, float)]
    print(f"sessions: {sessions} at once, {size // 1024} KiB upload each, password + key login")
    print(f"errors: {len(errors)}")
    for err in errors[:5]:
        print(f"  {type(err).__name__}: {err}")
    if times:
        p99 = times[min(len(times) - 1, round(0.99 * len(times)) - 1)]
        print(
            f"session time p50 {statistics.median(times):.2f} s, p99 {p99:.2f} s, "
            f"max {times[-1]:.2f} s; all done in {wall:.2f} s"
        )
    return len(errors)


def concurrent(sessions: int, size_mib: int) -> None:
    with tempfile.TemporaryDirectory(prefix="courier-bench-") as tmp, infra.nats_url() as nats:
        work = Path(tmp)
        key_path = work / "client_ed25519"
        asyncssh.generate_private_key("ssh-ed25519").write_private_key(key_path)
        with gateway(work, key_path, nats) as gw:
            errors = asyncio.run(_concurrent(gw.port, key_path, sessions, size_mib * MiB))
        if errors:
            print("gateway log (errors):")
            for line in (work / "gateway.log").read_text().splitlines():
                if "error" in line.lower():
                    print("  " + line[:400])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    t = sub.add_parser("throughput", help="one large file, gateway vs OpenSSH sshd")
    t.add_argument("--size-mib", type=int, default=1024)
    t.add_argument("--repeat", type=int, default=3)
    c = sub.add_parser("concurrent", help="many sessions at once")
    c.add_argument("--sessions", type=int, default=200)
    c.add_argument("--size-mib", type=int, default=1)
    st = sub.add_parser("storage", help="one large file, gateway on s3:// (moto) vs file://")
    st.add_argument("--size-mib", type=int, default=256)
    st.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if args.mode == "throughput":
        throughput(args.size_mib, args.repeat)
    elif args.mode == "storage":
        storage(args.size_mib, args.repeat)
    else:
        concurrent(args.sessions, args.size_mib)


if __name__ == "__main__":
    main()
