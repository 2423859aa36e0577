"""The on-call rota: who is paged now, and who next when a page goes unanswered.

Applied with `courier oncall apply FILE`:

    timezone: Europe/London
    escalate_after_minutes: 15
    escalation_rounds: 3         # times through the chain before paging stops
    people:
      - {name: Ana, phone: "+447700900001", email: ana@example.com}
      - {name: Ben, phone: "+447700900002"}
    rotations:
      - name: primary            # the first rotation is paged first
        start: 2026-01-05T09:00  # a handover, local time
        shift_days: 7
        people: [Ana, Ben]
      - name: secondary
        start: 2026-01-05T09:00
        shift_days: 7
        people: [Ben, Ana]
    handovers:                   # someone covers a stretch of a rotation
      - {rotation: primary, person: Ben, start: 2026-12-24T09:00, end: 2026-12-27T09:00}

Shifts are counted in local wall time, so a 09:00 handover stays at 09:00 across DST.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from pydantic import EmailStr, Field, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from courier.common.db.models_incidents import OncallRota
from courier.common.specs import StrictModel, check_timezone

DEFAULT = "default"


class Person(StrictModel):
    name: str
    phone: str = Field(pattern=r"^\+[1-9]\d{6,14}$")
    email: EmailStr | None = None


class Rotation(StrictModel):
    name: str
    start: datetime
    shift_days: float = Field(default=7, gt=0)
    people: list[str] = Field(min_length=1)


class Handover(StrictModel):
    rotation: str
    person: str
    start: datetime
    end: datetime


class Rota(StrictModel):
    timezone: str = "UTC"
    escalate_after_minutes: float | None = Field(default=None, gt=0)
    # An incident nobody acknowledges is paged through the chain again from the top, so
    # one missed phone at 3 a.m. does not end the paging; the rounds bound the noise.
    escalation_rounds: int = Field(default=3, ge=1, le=20)
    people: list[Person] = Field(min_length=1)
    rotations: list[Rotation] = Field(min_length=1)
    handovers: list[Handover] = Field(default_factory=list)

    _tz = field_validator("timezone")(check_timezone)

    @model_validator(mode="after")
    def _names_known(self) -> Rota:
        known = {p.name for p in self.people}
        rotations = {r.name for r in self.rotations}
        for r in self.rotations:
            for name in r.people:
                if name not in known:
                    raise ValueError(f"rotation {r.name}: unknown person {name!r}")
        for h in self.handovers:
            if h.person not in known or h.rotation not in rotations:
                raise ValueError(f"handover to {h.person!r} on {h.rotation!r}: unknown name")
        return self

    def person(self, name: str) -> Person:
        return next(p for p in self.people if p.name == name)

    def _local(self, at: datetime) -> datetime:
        return at.astimezone(ZoneInfo(self.timezone)).replace(tzinfo=None)

    def on_call(self, rotation: Rotation, at: datetime) -> Person:
        local = self._local(at)
        for h in self.handovers:
            if h.rotation == rotation.name and _naive(h.start) <= local < _naive(h.end):
                return self.person(h.person)
        shift = timedelta(days=rotation.shift_days)
        index = int((local - _naive(rotation.start)) // shift)
        return self.person(rotation.people[index % len(rotation.people)])

    def chain(self, at: datetime) -> list[Person]:
        """Who to page, in order: each rotation's person on call, then the rest of the
        first rotation in its order after the one on call."""
        order = [self.on_call(r, at) for r in self.rotations]
        first = self.rotations[0]
        # Someone covering the rotation may not be one of its people: start at the top.
        start = first.people.index(order[0].name) if order[0].name in first.people else -1
        order += [
            self.person(first.people[(start + i) % len(first.people)])
            for i in range(1, len(first.people))
        ]
        seen: dict[str, Person] = {}
        for p in order:
            seen.setdefault(p.name, p)
        return list(seen.values())

    def pages_in_total(self, chain: list[Person]) -> int:
        """Pages of one incident (the first and its escalations) before paging stops."""
        return len(chain) * self.escalation_rounds

    def escalate_after(self, default_minutes: float) -> timedelta:
        return timedelta(minutes=self.escalate_after_minutes or default_minutes)


def _naive(value: datetime) -> datetime:
    return value.replace(tzinfo=None)


async def load_rota(session: AsyncSession, name: str = DEFAULT) -> Rota | None:
    row = await session.scalar(select(OncallRota).where(OncallRota.name == name))
    return Rota.model_validate(row.spec) if row is not None else None


async def save_rota(session: AsyncSession, rota: Rota, name: str = DEFAULT) -> None:
    row = await session.get(OncallRota, name)
    spec = rota.model_dump(mode="json")
    if row is None:
        session.add(OncallRota(name=name, spec=spec))
    else:
        row.spec = spec
