"""The `sources` section of a spec file: a vendor's SFTP server we pull import files from."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from courier.common.remote import RemoteEndpoint
from courier.common.specs import StrictModel


def _check_glob(value: str) -> str:
    if "/" in value:
        raise ValueError("a file-name pattern, without directories")
    return value


class SourceSpec(StrictModel):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,99}$")
    enabled: bool = True
    remote: RemoteEndpoint
    directory: str = "."
    pattern: str = "*"
    interval_seconds: int = Field(default=300, ge=5)
    # A file is fetched only once it is this old and its size and mtime held still
    # between two listings: never half of a file the vendor is still writing.
    min_age_seconds: int = Field(default=60, ge=0)
    after_fetch: Literal["leave", "delete", "move"] = "leave"
    move_to: str = "processed"
    unreachable_alert_minutes: int = Field(default=30, ge=1)

    _pattern = field_validator("pattern")(_check_glob)

    @model_validator(mode="after")
    def _move_target(self) -> SourceSpec:
        if self.after_fetch == "move" and self.move_to.strip("/") == "":
            raise ValueError("after_fetch: move needs a move_to folder")
        return self
