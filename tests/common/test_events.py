"""Event payloads stay readable across versions: fields added since are optional."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from courier.common.events import (
    NOTICES_PER_EVENT,
    FileRejected,
    ImportCompleted,
    ImportFailed,
    NoticesRaised,
)

IDS = {"file_id": str(uuid.uuid4()), "tenant_id": str(uuid.uuid4()), "tenant": "acme"}


def test_payloads_from_before_the_feed_fields_still_validate() -> None:
    completed = ImportCompleted.model_validate(
        {**IDS, "import_id": str(uuid.uuid4()), "feed": "leave", "name": "leave_1.csv",
         "status": "completed", "counts": {"created": 1}}
    )  # fmt: skip
    failed = ImportFailed.model_validate(
        {**IDS, "import_id": None, "feed": None, "name": "x.csv", "reason": "disk full"}
    )
    rejected = FileRejected.model_validate(
        {**IDS, "name": "x.csv", "reason": "unrecognised file name"}
    )
    for event in (completed, failed, rejected):
        assert event.version == 1
        assert event.feed_id is None and event.received_at is None
    assert rejected.feed is None


def test_the_feed_fields_survive_the_round_trip() -> None:
    feed_id, at = uuid.uuid4(), datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    event = FileRejected(**IDS, name="leave_1.csv", reason="wrong header", feed_id=feed_id,
                         feed="leave", received_at=at)  # fmt: skip
    again = FileRejected.model_validate(event.model_dump(mode="json"))
    assert (again.feed_id, again.feed, again.received_at) == (feed_id, "leave", at)


def test_notices_raised_is_bounded_and_never_empty() -> None:
    with pytest.raises(ValidationError):
        NoticesRaised(notice_ids=[])
    with pytest.raises(ValidationError):
        NoticesRaised(notice_ids=list(range(NOTICES_PER_EVENT + 1)))
    assert NoticesRaised.batches([]) == []
    assert [e.notice_ids for e in NoticesRaised.batches([3, 1, 2, 3])] == [[1, 2, 3]]
