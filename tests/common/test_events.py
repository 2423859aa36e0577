"""Event payloads and their bounds."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from courier.common.events import NOTICES_PER_EVENT, NoticesRaised


def test_notices_raised_is_bounded_and_never_empty() -> None:
    with pytest.raises(ValidationError):
        NoticesRaised(notice_ids=[])
    with pytest.raises(ValidationError):
        NoticesRaised(notice_ids=list(range(NOTICES_PER_EVENT + 1)))
    assert NoticesRaised.batches([]) == []
    assert [e.notice_ids for e in NoticesRaised.batches([3, 1, 2, 3])] == [[1, 2, 3]]
