"""Pure journal rules: the final disposition of a call, its wait/talk times, and whether a
recording or message expired."""

from __future__ import annotations

from datetime import datetime

from zvonar.calls.events import Disposition


def final_disposition(reported: Disposition, *, answered: bool, voicemail: bool) -> Disposition:
    """What the journal records for a finished call.

    Evidence wins over the report: a leg that answered makes the call ``answered`` and a message
    left makes it ``voicemail``, whatever the B2BUA said; otherwise its verdict (busy, missed,
    abandoned, failed) stands, because only it saw the SIP responses.
    """
    if answered:
        return Disposition.answered
    if voicemail:
        return Disposition.voicemail
    return reported


def recovered_disposition(*, answered: bool, voicemail: bool, rang: bool) -> Disposition:
    """The disposition of a call a dead process left open: what is known, nothing guessed.

    Something rang but nobody answered: the caller was left waiting, so the call counts as
    ``abandoned`` (and shows up in "call back" lists); nothing rang: ``failed``.
    """
    if answered:
        return Disposition.answered
    if voicemail:
        return Disposition.voicemail
    return Disposition.abandoned if rang else Disposition.failed


def _seconds(start: datetime, end: datetime) -> float:
    return round(max((end - start).total_seconds(), 0.0), 3)


def timings(
    started_at: datetime, answered_at: datetime | None, ended_at: datetime
) -> tuple[float, float]:
    """``(wait, talk)`` in seconds: wait runs from the start to the answer (or, unanswered, to
    the end: how long the caller waited in vain); talk from the answer to the end."""
    if answered_at is None:
        return _seconds(started_at, ended_at), 0.0
    return _seconds(started_at, answered_at), _seconds(answered_at, ended_at)


def wait_until(started_at: datetime, answered: datetime, ended_at: datetime) -> float:
    """The wait of a call the PBX itself answered: to that answer, never past the end."""
    return _seconds(started_at, min(answered, ended_at))


def expired(path: str | None, seconds: float | None) -> bool:
    """Whether a recording (or message) was made and deleted since: retention clears its path
    and keeps its length (retention.py); a call never recorded has neither."""
    return path is None and seconds is not None
