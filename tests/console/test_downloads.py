"""Downloads: any file name a partner can upload comes back with its own name and its exact
bytes; nothing from a name reaches a header unescaped; every download is audited."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import unquote

import pytest
from sqlalchemy import select

from courier.common.db.models_console import ConsoleAuditEntry
from courier.console.downloads import content_disposition
from tests.support.console import api_client, make_token, make_user, sign_in
from tests.support.fixtures_data import leave_csv

NAMES = ["Lön översikt é.csv", 'a "quoted" name.csv', "plain name with spaces.csv"]
FILENAME_STAR = re.compile(r"filename\*=UTF-8''([A-Za-z0-9!#$&+.^_`|~%-]+)$")


def name_in(header: str) -> str:
    """The name a browser takes from the header (RFC 6266 prefers `filename*`)."""
    found = FILENAME_STAR.search(header)
    assert found, header
    return unquote(found.group(1), encoding="utf-8", errors="strict")


def fallback_in(header: str) -> str:
    found = re.match(r'attachment; filename="([^"]*)"; ', header)
    assert found, header
    return found.group(1)


@pytest.mark.parametrize(
    ("name", "fallback"),
    [
        ("leave_2026.csv", "leave_2026.csv"),
        ("Lön översikt é.csv", "L_n _versikt _.csv"),
        ('a "quoted" name.csv', "a _quoted_ name.csv"),
        ("back\\slash;semi,comma.csv", "back_slash_semi_comma.csv"),
        ("evil\r\nSet-Cookie: x=1.csv", "evil__Set-Cookie: x=1.csv"),
        ("日本語.csv", "___.csv"),
        ("", "download"),
    ],
)
def test_content_disposition_keeps_the_name_and_lets_nothing_through(
    name: str, fallback: str
) -> None:
    header = content_disposition(name)
    header.encode("ascii")  # what latin-1 on the wire can always carry
    assert not re.search(r"[\x00-\x1f\x7f]", header)
    assert fallback_in(header) == fallback
    assert name_in(header) == (name or "download")


@pytest.fixture
async def any_csv(feed) -> None:
    await feed("leave", "leave_balances", "*.csv")


@pytest.mark.parametrize("name", NAMES)
async def test_original_downloads_byte_identical_under_its_own_name(
    db, app, any_csv, send, name
) -> None:
    # Windows line ends, a byte-order mark and non-ASCII: the bytes as sent, not re-encoded.
    data = "\ufeffemployee_id,leave_type,balance_hours,as_of\r\nÅsa,annual,8,2026-11-01\r\n"
    imp = await send(name, data.encode("utf-8"))
    await make_user(db, "cara", "customer", "acme")
    token = await make_token(db, "customer", "acme", name="bi")
    async with api_client(app) as http:
        await sign_in(http, "cara")
        page_download = await http.get(f"/imports/{imp.id}/file")
    async with api_client(app, token) as api:
        api_download = await api.get(f"/api/imports/{imp.id}/file")
    for answer in (page_download, api_download):
        assert answer.status_code == 200, answer.text
        assert answer.content == data.encode("utf-8")
        assert answer.headers["content-length"] == str(len(answer.content))
        assert answer.headers["x-checksum-sha256"] == hashlib.sha256(answer.content).hexdigest()
        assert name_in(answer.headers["content-disposition"]) == name
    async with db.session() as s:
        entries = list(
            await s.scalars(
                select(ConsoleAuditEntry)
                .where(ConsoleAuditEntry.action == "download")
                .order_by(ConsoleAuditEntry.at)
            )
        )
    assert [(e.actor, e.target_id, e.details) for e in entries] == [
        ("cara", str(imp.id), {"what": "original", "file_name": name}),
        ("token:bi", str(imp.id), {"what": "original", "file_name": name}),
    ]


async def test_errored_rows_download_as_a_defused_csv(db, app, any_csv, send, storage) -> None:
    imp = await send(
        'Lön "mars".csv',
        leave_csv(
            "E1,annual,8,2026-11-01",
            "=HYPERLINK(1),annual,x,2026-11-01",
            "E3,sick,9,not a date",
        ),
    )
    await make_user(db, "ann", "admin")
    async with api_client(app) as http:
        await sign_in(http, "ann")
        errors = await http.get(f"/imports/{imp.id}/errors.csv")
        result = await http.get(f"/imports/{imp.id}/result")
    assert errors.status_code == 200
    assert errors.headers["content-type"].startswith("text/csv")
    assert name_in(errors.headers["content-disposition"]) == 'Lön "mars".csv.errors.csv'
    lines = errors.content.decode("utf-8").splitlines()
    assert lines[0] == "row,key,error"
    assert lines[1].startswith("3,'=HYPERLINK(1)/annual,balance_hours:")
    assert lines[2].startswith("4,E3/sick,as_of:")
    assert len(lines) == 3

    assert result.status_code == 200
    assert result.content == await storage.read(imp.result_key)
    # The partner's name for it: the file's name, when it arrived, and its short id.
    assert name_in(result.headers["content-disposition"]) == imp.result_key.rsplit("/", 1)[-1]
    assert name_in(result.headers["content-disposition"]).startswith('Lön "mars".csv.')
    async with db.session() as s:
        what = list(
            await s.scalars(
                select(ConsoleAuditEntry.details).where(ConsoleAuditEntry.action == "download")
            )
        )
    assert sorted(d["what"] for d in what) == ["errors", "result"]


async def test_a_file_gone_from_storage_answers_410_and_is_not_audited(
    db, app, any_csv, send, storage
) -> None:
    imp = await send("leave_1.csv", leave_csv("E1,annual,8,2026-11-01"))
    await storage.delete(imp.storage_key)
    token = await make_token(db, "support")
    async with api_client(app, token) as api:
        answer = await api.get(f"/api/imports/{imp.id}/file")
    assert answer.status_code == 410
    assert "no longer in storage" in answer.json()["detail"]
    async with db.session() as s:
        downloads = select(ConsoleAuditEntry).where(ConsoleAuditEntry.action == "download")
        assert list(await s.scalars(downloads)) == []
