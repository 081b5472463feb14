"""Errors of the outbound slice (pure decisions; the call layer maps them to SIP statuses)."""

from __future__ import annotations

from zvonar.core.errors import InvalidInput, NotFound


class InvalidDialString(InvalidInput):
    """What the extension dialed is no number we can place (SIP hint: 484 Address Incomplete)."""

    code = "invalid_dial_string"


class NoTrunk(NotFound):
    """No active trunk can carry the call (SIP hint: 503 Service Unavailable)."""

    code = "no_trunk"
