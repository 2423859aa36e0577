"""Password hashing (argon2id) and generation for SFTP accounts."""

from __future__ import annotations

import secrets
import string
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """A hash to verify against when the user does not exist, so timing does not tell."""
    return _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return (
            _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
        )
    except (VerificationError, InvalidHashError):
        return False


def generate_password(length: int = 24) -> str:
    """Random password with every character class, free of look-alike characters."""
    alphabet = {
        "lower": "abcdefghijkmnpqrstuvwxyz",
        "upper": "ABCDEFGHJKLMNPQRSTUVWXYZ",
        "digit": "23456789",
        "symbol": "-_.+=@%",
    }
    chars = [secrets.choice(group) for group in alphabet.values()]
    pool = "".join(alphabet.values())
    chars += [secrets.choice(pool) for _ in range(max(length, 12) - len(chars))]
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)


@dataclass(frozen=True)
class Strength:
    """The strength part of a tenant's password policy (rotation lives with the account)."""

    min_length: int = 14
    min_classes: int = 3  # of lower case, upper case, digits, symbols


_CLASSES = (string.ascii_lowercase, string.ascii_uppercase, string.digits)


def character_classes(password: str) -> int:
    found = {i for ch in password for i, group in enumerate(_CLASSES) if ch in group}
    if any(not ch.isalnum() or not ch.isascii() for ch in password):
        found.add(len(_CLASSES))
    return len(found)


def strength_problems(password: str, strength: Strength) -> list[str]:
    """Why `password` does not meet `strength`, in words a person can act on; [] if it does."""
    problems = []
    if len(password) < strength.min_length:
        problems.append(f"at least {strength.min_length} characters")
    if character_classes(password) < strength.min_classes:
        problems.append(
            f"at least {strength.min_classes} of: lower case, upper case, digits, symbols"
        )
    return problems


def matches_any(password: str, hashes: Iterable[str]) -> bool:
    """True if `password` is one of the earlier passwords (no-reuse rule)."""
    for old in hashes:
        try:
            if _hasher.verify(old, password):
                return True
        except (VerificationError, InvalidHashError):
            continue
    return False


__all__ = [
    "Strength",
    "character_classes",
    "generate_password",
    "hash_password",
    "matches_any",
    "strength_problems",
    "verify_password",
]
