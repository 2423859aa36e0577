"""Connection flood limits, checked when TCP connects and before any SSH work.

Each key exchange costs the server a Diffie-Hellman or ML-KEM computation that an
attacker gets almost for free (the DHEat attack: many connections, each abandoned
after its key exchange). So one source address may open at most
`gateway_flood_connections` per `gateway_flood_window_seconds`, and hold at most
`gateway_flood_unauthenticated` connections that have not logged in yet. Every
attempt counts towards the rate, refused ones too: a flooder stays refused until it
pauses for a whole window. Counts are per replica and kept in memory (the work they
protect is the replica's own CPU).

A refused connection is dropped before the server sends its version line, counted
in `courier_sftp_refused_connections_total{reason="flood"}` and logged; the first of a
flood raises an `sftp_connection_flood` alert, at most once per address per
`gateway_flood_alert_minutes`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from courier.common.db.engine import Database
from courier.common.events import AlertRaised
from courier.common.outbox import stage
from courier.common.settings import Settings

ALERT_KIND = "sftp_connection_flood"


@dataclass(frozen=True)
class Refusal:
    """Why a connection was dropped, and whether this one should raise the alert."""

    limit: str  # "rate" | "unauthenticated"
    detail: str
    alert: bool


class FloodGate:
    def __init__(self, settings: Settings, monotonic: Callable[[], float] = time.monotonic):
        self.max_connections = settings.gateway_flood_connections
        self.window = settings.gateway_flood_window_seconds
        self.max_unauthenticated = settings.gateway_flood_unauthenticated
        self.alert_every = settings.gateway_flood_alert_minutes * 60
        self._now = monotonic
        # The last `max_connections` attempts of each address (bounded, whatever the rate).
        self._attempts: dict[str, deque[float]] = {}
        self._unauthenticated: dict[str, int] = {}
        self._alerted: dict[str, float] = {}

    def admit(self, address: str) -> Refusal | None:
        """Count this connection; None admits it (then `opened` was done for it)."""
        now = self._now()
        self._forget_idle(now)
        refusal = None
        if self.max_connections > 0:
            attempts = self._attempts.setdefault(address, deque(maxlen=self.max_connections))
            full = len(attempts) == self.max_connections and now - attempts[0] < self.window
            attempts.append(now)
            if full:
                refusal = (
                    "rate",
                    f"more than {self.max_connections} connections within {self.window:g} s",
                )
        if refusal is None and 0 < self.max_unauthenticated <= self._unauthenticated.get(
            address, 0
        ):
            refusal = (
                "unauthenticated",
                f"{self.max_unauthenticated} connections not logged in yet",
            )
        if refusal is None:
            self._unauthenticated[address] = self._unauthenticated.get(address, 0) + 1
            return None
        last = self._alerted.get(address)
        alert = last is None or now - last >= self.alert_every
        if alert:
            self._alerted[address] = now
        return Refusal(refusal[0], refusal[1], alert)

    def settled(self, address: str) -> None:
        """An admitted connection logged in or ended: it no longer counts as pending."""
        left = self._unauthenticated.get(address, 0) - 1
        if left > 0:
            self._unauthenticated[address] = left
        else:
            self._unauthenticated.pop(address, None)

    def _forget_idle(self, now: float) -> None:
        """Drop addresses whose last attempt is older than the window (bounded memory)."""
        if len(self._attempts) < 1024:
            return
        for address in [a for a, seen in self._attempts.items() if now - seen[-1] >= self.window]:
            del self._attempts[address]
        for address in [a for a, at in self._alerted.items() if now - at >= self.alert_every]:
            del self._alerted[address]


def flood_alert(address: str, refusal: Refusal) -> AlertRaised:
    return AlertRaised(
        kind=ALERT_KIND,
        # One incident per address: repeats (and other replicas' alerts) fold into it.
        cause_key=f"{ALERT_KIND}:{address}",
        summary=f"SFTP connection flood from {address}: {refusal.detail}; "
        "further connections are dropped before the key exchange",
        details={"address": address, "limit": refusal.limit, "detail": refusal.detail},
    )


async def raise_flood_alert(db: Database, address: str, refusal: Refusal) -> None:
    async with db.transaction() as session:
        stage(session, flood_alert(address, refusal))
