"""When a credential nearing its expiry is reminded: 30, 7 and 1 days before.

Shared by SSH keys (the gateway) and OpenPGP keys, so a partner hears of every key the
same way: one reminder at each threshold, the nearest only when a key arrives late.
"""

from __future__ import annotations

from datetime import datetime, timedelta

# Days before a key's expiry at which its partner is reminded.
KEY_REMINDER_DAYS = (30, 7, 1)


def key_reminder_due(expires: datetime, now: datetime) -> int | None:
    """The reminder a key is due at `now`: the nearest of 30, 7 and 1 days it is within."""
    due = [d for d in KEY_REMINDER_DAYS if expires - now <= timedelta(days=d)]
    return min(due) if due and expires > now else None


def reminder_pending(expires: datetime, reminded_days: int | None, now: datetime) -> int | None:
    """The reminder to send now, or None when it was sent already (or none is due)."""
    due = key_reminder_due(expires, now)
    if due is None or (reminded_days is not None and reminded_days <= due):
        return None
    return due


def days_left(expires: datetime, now: datetime) -> int:
    """Whole days until `expires`, rounded up (a key ending in 3 hours has 1 day left)."""
    return -((now - expires) // timedelta(days=1))


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"
