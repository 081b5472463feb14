"""Password hashing (argon2id) and secret-token helpers."""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# Verifying against this when the user does not exist keeps the timing of "no such user" and
# "wrong password" the same, so logins cannot be used to enumerate accounts.
_DUMMY_HASH = _hasher.hash("zvonar-dummy-password")


def set_cost(*, time_cost: int, memory_cost: int) -> None:
    """Change the argon2id cost (the test suite lowers it; production keeps the library's
    RFC 9106 defaults). Existing hashes keep verifying and are upgraded on the next sign-in."""
    global _hasher, _DUMMY_HASH
    _hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=1)
    _DUMMY_HASH = _hasher.hash("zvonar-dummy-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def new_secret(prefix: str) -> str:
    """A URL-safe secret with a recognisable prefix (so leaked tokens can be found by scanners)."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def sha256_hex(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
