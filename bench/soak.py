"""Soak: steady low load for a long time, watching each service's memory.

    .venv/bin/python bench/soak.py [--minutes 30] [--partners 10] [--every 10]
                                   [--window 5] [--gateways 1] [--importers 1]

The stack of `bench/stack.py` (PostgreSQL, NATS JetStream, `file://` storage, each
replica its own process) with `--partners` partners (OpenSSH's `sftp` and asyncssh),
each uploading a leave-balance file of 1 KB to 1 MB about every `--every` seconds for
`--minutes`. The RSS of every process is sampled every 10 s. Prints, per process, the
median RSS of the first `--window` minutes and of the last `--window` minutes and the
growth between them, then the reconciliation of every upload (nothing lost or doubled
over the run). Opt-in: not part of `make test`.

Run from the repository root; it reads `COURIER_TEST_DATABASE_URL` and
`COURIER_TEST_NATS_URL` as the tests do.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.load import keep_uploading
from bench.stack import Stack, Uploads, reconcile, running_stack

SAMPLE_SECONDS = 10.0
# Low and steady: no 5 MB files.
SIZES = ((1_000, 30), (10_000, 30), (100_000, 25), (1_000_000, 15))


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def _sample(stack: Stack, end: float, samples: list[tuple[float, dict[str, int]]]) -> None:
    started = time.monotonic()
    while time.monotonic() < end:
        samples.append((time.monotonic() - started, stack.sample_rss()))
        await asyncio.sleep(SAMPLE_SECONDS)


def growth(
    samples: list[tuple[float, dict[str, int]]], window: float
) -> dict[str, tuple[float, float]]:
    """Per process: median RSS (MB) of the first and of the last `window` seconds."""
    if not samples:
        return {}
    last_at = samples[-1][0]
    out: dict[str, tuple[float, float]] = {}
    for name in samples[0][1]:
        first = [rss[name] for at, rss in samples if at <= window and rss.get(name)]
        last = [rss[name] for at, rss in samples if at >= last_at - window and rss.get(name)]
        if first and last:
            out[name] = (statistics.median(first) / 1e6, statistics.median(last) / 1e6)
    return out


async def soak(args: argparse.Namespace, work: Path) -> bool:
    async with running_stack(
        work, gateways=args.gateways, importers=args.importers, partners=args.partners
    ) as stack:
        uploads = Uploads(stack, work / "outgoing")
        samples: list[tuple[float, dict[str, int]]] = []
        end = time.monotonic() + args.minutes * 60
        rnd = random.Random(1)
        print(f"load average at the start: {_load()}", flush=True)
        await asyncio.gather(
            _sample(stack, end, samples),
            *(
                keep_uploading(uploads, p, args.every, SIZES, end, random.Random(rnd.random()))
                for p in stack.partners
            ),
        )
        report = await reconcile(stack.db, uploads.all, settle=120)
    print(f"load average at the end: {_load()}")
    print(
        f"soak: {args.minutes:g} min, {args.partners} partners, a file each about every "
        f"{args.every:g} s; {len(samples)} RSS samples, {SAMPLE_SECONDS:g} s apart"
    )
    print(f"{'process':<12}{'first MB':>10}{'last MB':>10}{'growth MB':>11}{'growth':>9}")
    for name, (first, last) in sorted(growth(samples, args.window * 60).items()):
        print(
            f"{name:<12}{first:>10.1f}{last:>10.1f}{last - first:>11.1f}"
            f"{(last - first) / first:>9.1%}"
        )
    errors = uploads.errors()
    print("upload errors: " + (", ".join(f"{k} {v}" for k, v in errors.items()) or "none"))
    print("\n".join(report.lines()))
    return report.ok and not errors


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--partners", type=int, default=10)
    parser.add_argument("--every", type=float, default=10, help="seconds between a partner's files")
    parser.add_argument("--window", type=float, default=5, help="minutes compared at each end")
    parser.add_argument("--gateways", type=int, default=1)
    parser.add_argument("--importers", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="courier-soak-"))
    try:
        ok = asyncio.run(soak(args, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
