"""Encrypted and packed files: what `gpg`, `gzip` and `zip` make is opened, checked and
imported as its plaintext; what cannot be opened is refused with the exact reason, and
nothing of it is applied."""

from __future__ import annotations

import csv
import hashlib
import subprocess
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from courier.common.db.engine import Database
from courier.common.db.models import Import, LeaveBalance, ReceivedFile
from courier.common.events import FILE_RECEIVED, FILE_REJECTED, FileReceived
from courier.common.pgp import gpg_available
from courier.common.settings import Settings
from courier.common.storage import Storage
from courier.common.uow import UnitOfWork
from courier.importer.apply import handle
from courier.importer.unwrap import KEYS_MISSING, UNSEALED
from tests.importer.conftest import Drop, import_of
from tests.support.fixtures_data import leave_csv
from tests.support.pgp import GpgHome, KeyPair
from tests.support.staged import staged

pytestmark = pytest.mark.skipif(not gpg_available(), reason="needs gpg (make test installs it)")

LEAVE = leave_csv("E100,annual,80.00,2026-11-01", "E200,annual,40,2026-11-01")
Receive = Callable[[str, bytes], Awaitable[Import]]


@pytest.fixture
def receive(db: Database, storage: Storage, drop: Drop, pgp_settings: Settings) -> Receive:
    """A partner's file dropped and imported (with the OpenPGP passphrase configured)."""

    async def _receive(name: str, data: bytes) -> Import:
        event = await drop(name, data)
        await handle(event, UnitOfWork(db, storage, settings=pgp_settings))
        return await import_of(db, event.file_id)

    return _receive


def run(*cmd: str, cwd: Path, stdin: bytes | None = None) -> None:
    """A partner's tool (`gzip`, `zip`) on the command line."""
    subprocess.run(cmd, cwd=cwd, input=stdin, check=True, capture_output=True, timeout=120)


def written(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def sealed(home: GpgHome, keys: KeyPair, path: Path, *, sign: bool = True) -> bytes:
    """`path` as `home`'s `gpg` encrypts it (and signs it) to the tenant's key."""
    return home.encrypt(path, keys.fingerprint, sign=sign).read_bytes()


async def balances(db: Database) -> dict[str, Decimal]:
    async with db.session() as s:
        return {
            r.employee_id: Decimal(r.balance_hours) for r in await s.scalars(select(LeaveBalance))
        }


async def told(storage: Storage, imp: Import) -> str:
    """What the first row of the partner's result file says."""
    assert imp.result_key is not None
    lines = (await storage.read(imp.result_key)).decode().splitlines()
    [status, _, _, message] = next(csv.reader([lines[1]]))
    assert status == imp.status
    return message


async def members_of(db: Database, storage: Storage, settings: Settings) -> list[Import]:
    """Import the members a zip announced, as the bus would hand them over; in order."""
    done = []
    for event in await staged(db, FILE_RECEIVED):
        assert isinstance(event, FileReceived)
        if event.source == "unpack":
            await handle(event, UnitOfWork(db, storage, settings=settings))
            done.append(await import_of(db, event.file_id))
    return done


@pytest.fixture(scope="session")
def zeros(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 MB of zeros named like a leave file: packed, a zip bomb."""
    folder = tmp_path_factory.mktemp("bombs")
    run("sh", "-c", "head -c 200000000 /dev/zero > leave_20261101.csv", cwd=folder)
    return folder / "leave_20261101.csv"


# ------------------------------------------------------------------------ decrypt


async def test_a_file_gpg_encrypted_and_signed_to_the_tenants_key_is_imported_as_its_plaintext(
    db,
    storage,
    feed,
    receive,
    tenant_with_keys,
    tenant_keys,
    partner_gpg,
    tmp_path,
) -> None:
    await feed("leave", "leave_balances", "leave_{yyyyMMdd}.csv", decrypt="pgp",
               require_signature=True)  # fmt: skip
    original = sealed(partner_gpg, tenant_keys, written(tmp_path, "leave_20261101.csv", LEAVE))

    imp = await receive("leave_20261101.csv.pgp", original)

    assert (imp.status, imp.created) == ("completed", 2)
    assert await balances(db) == {"E100": Decimal("80.00"), "E200": Decimal("40.00")}
    # The audit keeps the bytes the partner sent, and says what was inside.
    assert await storage.read(imp.storage_key) == original
    assert imp.sha256 == hashlib.sha256(original).hexdigest()
    assert imp.details["plaintext_sha256"] == hashlib.sha256(LEAVE).hexdigest()
    assert imp.details["decrypted"] is True
    assert imp.details["signed_by"] == partner_gpg.fingerprint


async def test_an_armored_file_named_asc_is_decrypted_too(
    db,
    feed,
    receive,
    tenant_with_keys,
    tenant_keys,
    partner_gpg,
    tmp_path,
) -> None:
    await feed("leave", "leave_balances", "leave_*.csv", decrypt="pgp")
    path = written(tmp_path, "leave_1.csv", LEAVE)
    armored = partner_gpg.encrypt(path, tenant_keys.fingerprint, armor=True).read_bytes()
    assert armored.startswith(b"-----BEGIN PGP MESSAGE-----")

    imp = await receive("leave_1.csv.asc", armored)

    assert (imp.status, imp.created, imp.details["signed_by"]) == ("completed", 2, None)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("stranger_key", "the file is not encrypted to this tenant's key"),
        ("unsigned", "the file must be signed with your registered key, and it is not signed"),
        ("stranger_signs", "the file is signed by a key this tenant does not know"),
        ("tampered", "the signature does not match the file: it was changed after signing"),
        ("truncated", "the encrypted data is damaged or cut short: send the file again"),
        ("plain", "the file is not OpenPGP data"),
    ],
)
async def test_a_file_that_cannot_be_decrypted_or_verified_is_refused_with_its_reason(
    db, storage, feed, receive, tenant_with_keys, tenant_keys, partner_gpg, stranger_gpg,
    tmp_path, case, reason,
) -> None:  # fmt: skip
    await feed("leave", "leave_balances", "leave_*.csv", decrypt="pgp", require_signature=True)
    path = written(tmp_path, "leave_1.csv", LEAVE)
    if case == "stranger_key":
        data = stranger_gpg.encrypt(path, stranger_gpg.fingerprint, sign=True).read_bytes()
    elif case == "unsigned":
        data = sealed(partner_gpg, tenant_keys, path, sign=False)
    elif case == "stranger_signs":
        data = sealed(stranger_gpg, tenant_keys, path)
    elif case == "tampered":
        # Signed, changed after signing (8 hours become 9), then encrypted as it was.
        partner_gpg.gpg("--compress-algo", "none", "--sign", "--output", str(tmp_path / "s"),
                        str(path))  # fmt: skip
        signed = (tmp_path / "s").read_bytes().replace(b"annual,80.00", b"annual,90.00")
        written(tmp_path, "t", signed)
        partner_gpg.gpg("--no-literal", "--encrypt", "--recipient", tenant_keys.fingerprint,
                        "--output", str(tmp_path / "t.pgp"), str(tmp_path / "t"))  # fmt: skip
        data = (tmp_path / "t.pgp").read_bytes()
    elif case == "truncated":
        whole = sealed(partner_gpg, tenant_keys, path)
        data = whole[: len(whole) // 2]
    else:
        data = LEAVE

    imp = await receive("leave_1.csv.pgp", data)

    assert imp.status == "rejected"
    assert imp.error.startswith(reason), imp.error
    assert (await told(storage, imp)).startswith(reason)
    assert await balances(db) == {}
    [rejected] = await staged(db, FILE_REJECTED)
    assert rejected.reason == imp.error  # the usual file_rejected incident follows


async def test_a_file_for_a_tenant_without_a_key_pair_says_whom_to_ask(
    db,
    storage,
    feed,
    receive,
    tenant,
    partner_gpg,
    tenant_keys,
    tmp_path,
) -> None:
    await feed("leave", "leave_balances", "leave_*.csv", decrypt="pgp")
    data = sealed(partner_gpg, tenant_keys, written(tmp_path, "leave_1.csv", LEAVE))

    imp = await receive("leave_1.csv.gpg", data)

    assert imp.status == "rejected"
    assert "no OpenPGP key to decrypt with yet" in await told(storage, imp)


async def test_without_the_passphrase_courier_fails_the_file_on_its_side_and_applies_nothing(
    db,
    storage,
    drop,
    feed,
    tenant_with_keys,
    tenant_keys,
    partner_gpg,
    settings,
    tmp_path,
) -> None:
    await feed("leave", "leave_balances", "leave_*.csv", decrypt="pgp")
    data = sealed(partner_gpg, tenant_keys, written(tmp_path, "leave_1.csv", LEAVE))
    event = await drop("leave_1.csv.pgp", data)

    await handle(event, UnitOfWork(db, storage, settings=settings))

    imp = await import_of(db, event.file_id)
    assert (imp.status, imp.error) == ("failed", KEYS_MISSING)
    assert "COURIER_PGP_PASSPHRASE" in imp.details["cause"]
    assert await balances(db) == {}


async def test_a_wrong_configured_passphrase_is_our_failure_not_the_partners_file(
    db, storage, drop, feed, tenant_with_keys, tenant_keys, partner_gpg, settings, tmp_path
) -> None:
    await feed("leave", "leave_balances", "leave_*.csv", decrypt="pgp")
    data = sealed(partner_gpg, tenant_keys, written(tmp_path, "leave_1.csv", LEAVE))
    event = await drop("leave_1.csv.pgp", data)
    wrong = settings.model_copy(update={"pgp_passphrase": SecretStr("not the passphrase")})

    await handle(event, UnitOfWork(db, storage, settings=wrong))

    imp = await import_of(db, event.file_id)
    assert (imp.status, imp.error) == ("failed", KEYS_MISSING)
    assert "does not open with the configured COURIER_PGP_PASSPHRASE" in imp.details["cause"]
    assert "not the passphrase" not in str(imp.details)
    assert await balances(db) == {}


async def test_a_compressed_pgp_bomb_is_stopped_at_the_ratio_limit(
    db,
    storage,
    feed,
    receive,
    tenant_with_keys,
    tenant_keys,
    partner_gpg,
    zeros,
) -> None:
    await feed("leave", "leave_balances", "leave_*.csv", decrypt="pgp")
    # gpg compresses before it encrypts: 200 MB of zeros travel in a few hundred KB.
    data = sealed(partner_gpg, tenant_keys, zeros)
    assert len(data) < 1_000_000

    imp = await receive("leave_20261101.csv.pgp", data)

    assert imp.status == "rejected"
    assert "refused as a possible zip bomb" in await told(storage, imp)
    assert "200 times the" in imp.error


# ------------------------------------------------------------------------ gzip and zip


async def test_gzip_and_zip_from_the_standard_tools_are_imported(
    db,
    storage,
    feed,
    receive,
    pgp_settings,
    tmp_path,
) -> None:
    await feed("leave", "leave_balances", "leave_{yyyyMMdd}.csv", unpack="auto")
    written(tmp_path, "leave_20261101.csv", LEAVE)
    run("gzip", "-k", "leave_20261101.csv", cwd=tmp_path)

    gz = await receive("leave_20261101.csv.gz", (tmp_path / "leave_20261101.csv.gz").read_bytes())

    assert (gz.status, gz.created, gz.details["unpacked"]) == ("completed", 2, "gzip")
    assert gz.details["plaintext_sha256"] == hashlib.sha256(LEAVE).hexdigest()

    written(tmp_path, "leave_20261103.csv", leave_csv("E100,annual,60,2026-11-03"))
    written(tmp_path, "leave_20261102.csv", leave_csv("E100,annual,70,2026-11-02",
                                                      "E300,sick,8,2026-11-02"))  # fmt: skip
    written(tmp_path, "README.txt", b"leave files for November\n")
    run("zip", "-q", "leave_20261130.zip", "leave_20261103.csv", "README.txt",
        "leave_20261102.csv", cwd=tmp_path)  # fmt: skip

    zipped = await receive("leave_20261130.zip", (tmp_path / "leave_20261130.zip").read_bytes())

    assert zipped.status == "unpacked"
    assert [m["name"] for m in zipped.details["members"]] == [
        "leave_20261102.csv", "leave_20261103.csv",
    ]  # fmt: skip
    assert zipped.details["skipped"] == [
        {"name": "README.txt", "reason": "no feed takes this name"}
    ]
    message = await told(storage, zipped)
    assert "leave_20261102.csv, leave_20261103.csv" in message and "README.txt" in message
    # Each member is a file of its own: imported in name order, each with its audit.
    first, second = await members_of(db, storage, pgp_settings)
    assert (first.file_name, first.status, first.created, first.updated) == (
        "leave_20261102.csv", "completed", 1, 1,
    )  # fmt: skip
    assert (second.file_name, second.status, second.updated) == (
        "leave_20261103.csv",
        "completed",
        1,
    )
    assert first.result_key and second.result_key
    assert await balances(db) == {
        "E100": Decimal("60.00"), "E200": Decimal("40.00"), "E300": Decimal("8.00"),
    }  # fmt: skip
    async with db.session() as s:
        row = await s.get(ReceivedFile, first.file_id)
        assert (row.source, row.sha256) == ("unpack", hashlib.sha256(
            (tmp_path / "leave_20261102.csv").read_bytes()).hexdigest())  # fmt: skip


async def test_an_encrypted_zip_is_decrypted_then_unpacked(
    db, storage, feed, receive, pgp_settings, tenant_with_keys, tenant_keys, partner_gpg,
    tmp_path,
) -> None:  # fmt: skip
    await feed("leave", "leave_balances", "leave_{yyyyMMdd}.csv", decrypt="pgp", unpack="zip")
    written(tmp_path, "leave_20261101.csv", LEAVE)
    run("zip", "-q", "leave_20261101.zip", "leave_20261101.csv", cwd=tmp_path)
    data = sealed(partner_gpg, tenant_keys, tmp_path / "leave_20261101.zip")

    zipped = await receive("leave_20261101.zip.pgp", data)

    assert zipped.status == "unpacked"
    assert zipped.details["signed_by"] == partner_gpg.fingerprint
    [member] = await members_of(db, storage, pgp_settings)
    assert (member.file_name, member.status, member.created) == (
        "leave_20261101.csv",
        "completed",
        2,
    )


async def test_a_zip_sent_as_a_test_file_is_unpacked_into_test_files(
    db,
    storage,
    feed,
    receive,
    pgp_settings,
    tmp_path,
) -> None:
    await feed("leave", "leave_balances", "leave_*.csv", unpack="zip")
    written(tmp_path, "leave_1.csv", LEAVE)
    run("zip", "-q", "leave_1.zip", "leave_1.csv", cwd=tmp_path)

    zipped = await receive("test/leave_1.zip", (tmp_path / "leave_1.zip").read_bytes())

    assert (zipped.status, zipped.test) == ("unpacked", True)
    [member] = await members_of(db, storage, pgp_settings)
    assert (member.file_name, member.test, member.created) == ("test/leave_1.csv", True, 2)
    assert await balances(db) == {}


@pytest.mark.parametrize("packer", ["gzip", "zip"])
async def test_a_zip_bomb_is_refused_and_nothing_applied(
    db,
    storage,
    feed,
    receive,
    zeros,
    packer,
) -> None:
    await feed("leave", "leave_balances", "leave_*.csv", unpack="auto")
    folder = zeros.parent
    name = f"{zeros.name}.gz" if packer == "gzip" else "leave_20261101.zip"
    if not (folder / name).exists():
        cmd = ("gzip", "-k", zeros.name) if packer == "gzip" else ("zip", "-q", name, zeros.name)
        run(*cmd, cwd=folder)

    imp = await receive(name, (folder / name).read_bytes())

    assert imp.status == "rejected"
    message = await told(storage, imp)
    assert message.startswith("the file expands beyond ") and "possible zip bomb" in message
    assert await balances(db) == {}
    assert [e for e in await staged(db, FILE_RECEIVED) if e.source == "unpack"] == []


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        (
            "reports/leave_1.csv",
            "zip members must be plain file names: 'reports/leave_1.csv' has a path",
        ),
        ("../leave_1.csv", "zip members must be plain file names: '../leave_1.csv' has a path"),
    ],
)
async def test_a_zip_member_with_a_path_is_refused(
    db, storage, feed, receive, tmp_path, member, reason
) -> None:
    await feed("leave", "leave_balances", "leave_*.csv", unpack="zip")
    (tmp_path / "inner" / "reports").mkdir(parents=True)
    written(tmp_path / "inner" / "reports", "leave_1.csv", LEAVE)
    # `zip` keeps the path as given (`..` only from a folder below).
    cwd = tmp_path / "inner" / "reports" if member.startswith("..") else tmp_path / "inner"
    if member.startswith(".."):
        written(tmp_path / "inner", "leave_1.csv", LEAVE)
    run("zip", "-q", str(tmp_path / "leave_1.zip"), member, cwd=cwd)

    imp = await receive("leave_1.zip", (tmp_path / "leave_1.zip").read_bytes())

    assert (imp.status, imp.error) == ("rejected", reason)
    assert await balances(db) == {}


async def test_a_damaged_gzip_and_a_password_zip_are_refused_with_their_reasons(
    db, storage, feed, receive, tmp_path
) -> None:
    await feed("leave", "leave_balances", "leave_*.csv", unpack="auto")
    written(tmp_path, "leave_1.csv", LEAVE * 50)
    run("gzip", "-k", "leave_1.csv", cwd=tmp_path)
    whole = (tmp_path / "leave_1.csv.gz").read_bytes()
    cut = await receive("leave_1.csv.gz", whole[: len(whole) // 2])
    assert (cut.status, cut.error) == (
        "rejected", "the gzip data is damaged or cut short: send the file again",
    )  # fmt: skip

    run("zip", "-q", "-P", "secret", "leave_2.zip", "leave_1.csv", cwd=tmp_path)
    locked = await receive("leave_2.zip", (tmp_path / "leave_2.zip").read_bytes())
    assert locked.status == "rejected"
    assert locked.error.startswith("zip member 'leave_1.csv' is protected by a zip password")
    assert await balances(db) == {}


async def test_a_plain_zip_never_carries_a_file_past_a_feed_that_takes_encrypted_files_only(
    db, storage, feed, receive, tmp_path
) -> None:
    await feed("leave", "leave_balances", "leave_*.csv", decrypt="pgp")
    await feed("bundle", "staff", "bundle_*.csv", unpack="zip")
    written(tmp_path, "leave_1.csv", LEAVE)
    run("zip", "-q", "bundle_1.zip", "leave_1.csv", cwd=tmp_path)

    imp = await receive("bundle_1.zip", (tmp_path / "bundle_1.zip").read_bytes())

    assert (imp.status, imp.error) == (
        "rejected",
        f"nothing in the zip can be imported (leave_1.csv: {UNSEALED})",
    )
    assert await balances(db) == {}
