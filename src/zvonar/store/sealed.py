"""Secrets the PBX must use in clear but must not keep in clear: sealed at rest.

A trunk's password is the carrier account's: the PBX answers the carrier's digest challenges
with it, so it cannot be hashed like a phone's. It is sealed instead — AES-256-GCM with a key
derived (HKDF-SHA256) from the installation's ``secret_key``, which lives outside the
database (a file in the data directory, or the environment). A copy of the database alone
gives nothing away.

Stored form: ``sealed:v1:`` + URL-safe base64 of nonce (12 bytes) ‖ ciphertext ‖ tag; the
column's purpose ("trunk.password") is the associated data, so a sealed value cannot be
moved to another column and still open. A value without the prefix is a legacy clear one:
:meth:`Sealer.open` returns it as it is and :func:`is_sealed` tells the start-up step that
seals what an older version stored.

Changing ``secret_key`` makes sealed values unreadable (:class:`UnsealError`): the trunks'
passwords must be entered again.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from zvonar.core.errors import ZvonarError

__all__ = ["PREFIX", "Sealer", "UnsealError", "is_sealed"]

PREFIX = "sealed:v1:"
_NONCE = 12


class UnsealError(ZvonarError):
    """A sealed value does not open with this installation's key (changed ``secret_key``, or
    a damaged value)."""

    code = "unseal_failed"


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)


class Sealer:
    """Seals and opens short secrets with a key derived from ``secret``."""

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("a sealer needs a secret")
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=b"zvonar", info=b"zvonar sealed values v1"
        ).derive(secret.encode())
        self._aead = AESGCM(key)

    def seal(self, plain: str, purpose: str) -> str:
        nonce = os.urandom(_NONCE)
        sealed = self._aead.encrypt(nonce, plain.encode(), purpose.encode())
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, stored: str, purpose: str) -> str:
        """The clear value; a legacy clear value as it is; :class:`UnsealError` if it does not
        open."""
        if not is_sealed(stored):
            return stored
        try:
            raw = base64.urlsafe_b64decode(stored[len(PREFIX) :].encode("ascii"))
            plain = self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], purpose.encode())
        except (InvalidTag, ValueError, binascii.Error, UnicodeEncodeError) as exc:
            raise UnsealError(f"a sealed {purpose} does not open with this secret_key") from exc
        return plain.decode()
