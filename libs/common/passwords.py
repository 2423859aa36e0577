"""Password hashing (argon2id) and generation for SFTP accounts."""

from __future__ import annotations

import secrets
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


__all__ = ["generate_password", "hash_password", "verify_password"]
