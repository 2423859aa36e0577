"""Integration partners and other teams read the event contract from the AsyncAPI document."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from courier.cli.main import app


def test_asyncapi_document_lists_every_subject_with_its_payload_schema() -> None:
    result = CliRunner().invoke(app, ["asyncapi"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["asyncapi"].startswith("3.")
    assert {
        "courier.file.received",
        "courier.file.rejected",
        "courier.import.completed",
        "courier.import.failed",
        "courier.export.delivered",
        "courier.alert.raised",
        "courier.notice.raised",
    } <= set(doc["channels"])
    schemas = json.dumps(doc["components"])
    for field in ("sha256", "storage_key", "cause_key", "counts", "notice_ids", "feed_id"):
        assert field in schemas
