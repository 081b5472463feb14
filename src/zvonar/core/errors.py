"""The domain error tree.

Every error a service raises is a :class:`ZvonarError` with a stable machine ``code``. Domains never
choose HTTP statuses: ``zvonar.api.errors`` maps the classes below to statuses at the boundary.
"""

from __future__ import annotations

from typing import Any


class ZvonarError(Exception):
    """Base of every domain error; ``code`` is stable and part of the public API contract."""

    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details


class NotFound(ZvonarError):
    """The object does not exist *in the caller's account* (cross-tenant access looks the same)."""

    code = "not_found"


class Conflict(ZvonarError):
    """A uniqueness or state rule forbids the change (duplicate extension, number already used…)."""

    code = "conflict"


class InvalidInput(ZvonarError):
    """Well-formed input that breaks a domain rule (an invalid phone number, a bad time zone…)."""

    code = "invalid_input"


class Unauthenticated(ZvonarError):
    code = "unauthenticated"


class PermissionDenied(ZvonarError):
    """Authenticated, but the role or token scope does not allow the action."""

    code = "permission_denied"


class LimitExceeded(ZvonarError):
    code = "limit_exceeded"


class Unavailable(ZvonarError):
    """A part the request needs is not running in this process (503: try another)."""

    code = "unavailable"
