"""The neutral call event vocabulary (DESIGN.md style rule 9).

The B2BUA publishes these facts as a call progresses; the journal, reports, webhooks, notifiers
and the UI consume them and never look inside the B2BUA. Every event is a frozen dataclass checked
when built, so a consumer can trust its fields: ``call_id`` is a safe token (it names recording
files), times are timezone-aware, durations are not negative.

``call_id`` is minted by the B2BUA for the whole call (not a SIP Call-ID, which is per dialog and
may hold characters unfit for a file name); ``leg_id`` names one SIP dialog of that call.
"""

from __future__ import annotations

import enum
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from zvonar.core.errors import InvalidInput
from zvonar.core.events import Event

# Letters, digits and ``._@+-``: survives file names, URLs and log lines unescaped.
TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # what a text field must not hold
MAX_NUMBER = 64  # a dialed string: E.164, an extension, or a SIP user part
MAX_DISPLAY = 200


class InvalidCallEvent(InvalidInput):
    """A call event built with a value no consumer could store or trust."""

    code = "invalid_call_event"


class Direction(enum.StrEnum):
    inbound = "inbound"  # from a carrier to one of our numbers
    outbound = "outbound"  # from an employee out through a trunk
    internal = "internal"  # employee to employee
    callback = "callback"  # placed by the PBX: side A (agents) first, then the customer


class TargetKind(enum.StrEnum):
    """What a leg rings: an employee's phones, one of their mobiles, a group, a queue, or an
    outside number (forwarding)."""

    employee = "employee"
    mobile = "mobile"
    group = "group"
    queue = "queue"
    external = "external"
    park = "park"  # a park slot (calls/park.py): only as a transfer's target


class LegEndReason(enum.StrEnum):
    no_answer = "no_answer"  # rang until the step's timeout
    busy = "busy"  # 486/600 or the phone was already on a call
    rejected = "rejected"  # 603 Decline, the employee pressed "reject"
    cancelled = "cancelled"  # we stopped ringing: someone else answered, or the caller left
    failed = "failed"  # unreachable, 5xx, timeout on the transaction
    completed = "completed"  # answered, then hung up
    forwarded = "forwarded"  # answered 3xx: its Contact rang instead (calls/redirect.py)


class TransferKind(enum.StrEnum):
    blind = "blind"
    attended = "attended"


class Disposition(enum.StrEnum):
    """How a call ended, for the journal and reports."""

    answered = "answered"
    missed = "missed"  # rang and nobody answered
    busy = "busy"  # every target was busy
    voicemail = "voicemail"  # the caller left a message
    abandoned = "abandoned"  # the caller hung up while ringing or waiting in a queue
    callback = "callback"  # the caller left a queue asking to be called back
    failed = "failed"  # the call could not be put through at all


class HangupSide(enum.StrEnum):
    caller = "caller"
    callee = "callee"
    system = "system"  # a timeout, a scheme "hang up" step, a shutdown


def _check_token(name: str, value: str) -> None:
    if not isinstance(value, str) or not TOKEN.fullmatch(value):
        raise InvalidCallEvent(f"{name} must be 1-128 of [A-Za-z0-9._@+-]", field=name)


def _check_text(name: str, value: str | None, limit: int, *, empty_ok: bool = False) -> None:
    if value is None:
        return
    if not isinstance(value, str) or len(value) > limit or (not value and not empty_ok):
        raise InvalidCallEvent(f"{name} must be text of at most {limit} characters", field=name)
    if _CONTROL.search(value):
        raise InvalidCallEvent(f"{name} must not hold control characters", field=name)


def _check_time(name: str, value: datetime) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidCallEvent(f"{name} must be a timezone-aware datetime", field=name)


def _check_duration(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise InvalidCallEvent(f"{name} must be a number of seconds >= 0", field=name)


def _check_srtp(srtp: object) -> None:
    if srtp is not None and not isinstance(srtp, bool):
        raise InvalidCallEvent("srtp must be true, false or None", field="srtp")


def _check_quality(loss: float | None, jitter_ms: float | None, mos: float | None) -> None:
    for name, value in (("loss", loss), ("jitter_ms", jitter_ms), ("mos", mos)):
        if value is not None:
            _check_duration(name, value)
    if loss is not None and loss > 1:
        raise InvalidCallEvent("loss must be a fraction in [0, 1]", field="loss")
    if mos is not None and not 1 <= mos <= 5:
        raise InvalidCallEvent("mos must be in [1, 5]", field="mos")


def _check_peer_report(
    peer_loss: float | None, peer_jitter_ms: float | None, rtt_ms: float | None
) -> None:
    """The figures of the peer's RTCP reports; finite, since the journal serves them as JSON."""
    figures = (("peer_loss", peer_loss), ("peer_jitter_ms", peer_jitter_ms), ("rtt_ms", rtt_ms))
    for name, value in figures:
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidCallEvent(f"{name} must be a number", field=name)
        if not (math.isfinite(value) and value >= 0):
            raise InvalidCallEvent(f"{name} must be a finite number >= 0", field=name)
    if peer_loss is not None and peer_loss > 1:
        raise InvalidCallEvent("peer_loss must be a fraction in [0, 1]", field="peer_loss")


@dataclass(frozen=True)
class Target:
    """Whom a leg rings: ``target_id`` is the employee/group/queue id (for ``mobile``: the
    employee whose mobile it is; None for ``external``); ``display`` is what people read."""

    kind: TargetKind
    display: str
    target_id: uuid.UUID | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.kind, TargetKind):
            raise InvalidCallEvent("target kind must be a TargetKind", field="kind")
        _check_text("display", self.display, MAX_DISPLAY)


class _FrozenMap(dict[str, str]):
    """A dict that refuses changes, so a frozen event's mapping field stays frozen too."""

    def _refuse(self, *_a: object, **_k: object) -> None:
        raise TypeError("call event fields are immutable")

    __setitem__ = __delitem__ = _refuse
    update = pop = popitem = clear = setdefault = _refuse  # type: ignore[assignment]

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items())))


@dataclass(frozen=True, kw_only=True)
class CallEvent(Event):
    """Base of every call event: consumers may subscribe to this one type."""

    call_id: str

    def __post_init__(self) -> None:
        _check_token("call_id", self.call_id)


@dataclass(frozen=True, kw_only=True)
class CallStarted(CallEvent):
    """The first INVITE of a call arrived (inbound) or an employee dialed (outbound/internal).

    ``tracking`` holds call-tracking attribution (source, medium, campaign…) when a pool number
    was dialed; it is copied into an immutable mapping.
    """

    direction: Direction
    caller: str
    dialed: str
    started_at: datetime
    number_label: str | None = None
    caller_contact_id: uuid.UUID | None = None
    tracking: Mapping[str, str] = field(default_factory=dict)
    placed_by: uuid.UUID | None = None  # the employee who dialled (outbound calls)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.direction, Direction):
            raise InvalidCallEvent("direction must be a Direction", field="direction")
        _check_text("caller", self.caller, MAX_NUMBER, empty_ok=True)
        _check_text("dialed", self.dialed, MAX_NUMBER)
        _check_text("number_label", self.number_label, MAX_DISPLAY)
        _check_time("started_at", self.started_at)
        frozen = dict(self.tracking)
        for k, v in frozen.items():
            _check_text("tracking key", k, 64)
            _check_text(f"tracking[{k}]", v, 2000, empty_ok=True)
        object.__setattr__(self, "tracking", _FrozenMap(frozen))


@dataclass(frozen=True, kw_only=True)
class CallRinging(CallEvent):
    """Leg ``leg_id`` rings ``target`` from ``at`` (its first 18x). A leg that never said it
    rang — silent until it was stopped, or answered with no 18x — is announced when it ends or
    answers, with ``invited_at``: when we sent it the INVITE, which is when it began to ring
    as far as the caller's wait goes."""

    leg_id: str
    target: Target
    at: datetime
    invited_at: datetime | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_token("leg_id", self.leg_id)
        if not isinstance(self.target, Target):
            raise InvalidCallEvent("target must be a Target", field="target")
        _check_time("at", self.at)
        if self.invited_at is not None:
            _check_time("invited_at", self.invited_at)


@dataclass(frozen=True, kw_only=True)
class CallAnswered(CallEvent):
    """``leg_id`` answered; ``by`` is the employee who took the call (None: an outside number
    or an outbound call's callee)."""

    leg_id: str
    at: datetime
    by: uuid.UUID | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_token("leg_id", self.leg_id)
        _check_time("at", self.at)


@dataclass(frozen=True, kw_only=True)
class LegEnded(CallEvent):
    """A leg is over. For a leg that carried audio, what its peer's RTP was like: ``loss``
    (fraction of packets lost), ``jitter_ms`` and an estimated ``mos`` (1-5, the worse of both
    directions); for a leg with media at all, whether it was ``srtp`` (encrypted, RFC 4568
    keys). Once the peer sent RTCP reports, what they say of *our* RTP: ``peer_loss``,
    ``peer_jitter_ms``, and ``rtt_ms``, the round trip (RFC 3550 §6.4); None before."""

    leg_id: str
    reason: LegEndReason
    at: datetime
    loss: float | None = None
    jitter_ms: float | None = None
    mos: float | None = None
    srtp: bool | None = None
    peer_loss: float | None = None
    peer_jitter_ms: float | None = None
    rtt_ms: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_token("leg_id", self.leg_id)
        if not isinstance(self.reason, LegEndReason):
            raise InvalidCallEvent("reason must be a LegEndReason", field="reason")
        _check_time("at", self.at)
        _check_quality(self.loss, self.jitter_ms, self.mos)
        _check_srtp(self.srtp)
        _check_peer_report(self.peer_loss, self.peer_jitter_ms, self.rtt_ms)


@dataclass(frozen=True, kw_only=True)
class CallRated(CallEvent):
    """The caller rated the call (1-5) after the person they talked to hung up."""

    score: int
    at: datetime

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.score, bool) or not isinstance(self.score, int):
            raise InvalidCallEvent("score must be an integer 1-5", field="score")
        if not 1 <= self.score <= 5:
            raise InvalidCallEvent("score must be an integer 1-5", field="score")
        _check_time("at", self.at)


@dataclass(frozen=True, kw_only=True)
class CallTransferred(CallEvent):
    """The call moved from one leg to a new target (REFER, or the operator's transfer button)."""

    from_leg_id: str
    to: Target
    kind: TransferKind
    at: datetime

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_token("from_leg_id", self.from_leg_id)
        if not isinstance(self.to, Target):
            raise InvalidCallEvent("to must be a Target", field="to")
        if not isinstance(self.kind, TransferKind):
            raise InvalidCallEvent("kind must be a TransferKind", field="kind")
        _check_time("at", self.at)


@dataclass(frozen=True, kw_only=True)
class _AudioFile(CallEvent):
    """A sound file of the call is complete: where it is and how long it lasts."""

    path: str
    duration: float

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_text("path", self.path, 1000)
        _check_duration("duration", self.duration)


@dataclass(frozen=True, kw_only=True)
class CallRecorded(_AudioFile):
    """The call's recording is complete at ``path`` (see ``journal.recording_path_for``)."""


@dataclass(frozen=True, kw_only=True)
class VoicemailLeft(_AudioFile):
    """The caller left a message at ``path``. ``notify``: the e-mail addresses the scheme's
    voicemail step names (the voicemail notifier mails the message to them)."""

    notify: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.notify, tuple) or len(self.notify) > 50:
            raise InvalidCallEvent("notify must be a tuple of at most 50 addresses", field="notify")
        for address in self.notify:
            _check_text("notify", address, 254)


@dataclass(frozen=True, kw_only=True)
class CallEnded(CallEvent):
    """The last leg is gone. ``disposition`` is the B2BUA's verdict (busy vs missed vs failed is
    known only there); the journal still records ``answered`` when a leg answered and
    ``voicemail`` when a message was left. ``scheme_path`` lists the scheme steps taken."""

    disposition: Disposition
    ended_at: datetime
    hangup: HangupSide
    scheme_path: tuple[str, ...] = ()
    # What the caller's RTP was like (see LegEnded); None when no audio came from them.
    loss: float | None = None
    jitter_ms: float | None = None
    mos: float | None = None
    srtp: bool | None = None  # the caller's media was SRTP; None: they had no media leg
    # What the caller's RTCP reports said of our RTP (see LegEnded); None when they sent none.
    peer_loss: float | None = None
    peer_jitter_ms: float | None = None
    rtt_ms: float | None = None
    # When the caller was first answered (200), by anyone: the PBX itself for voicemail, a
    # menu or a queue; None when nobody answered them.
    caller_answered_at: datetime | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.caller_answered_at is not None:
            _check_time("caller_answered_at", self.caller_answered_at)
        if not isinstance(self.disposition, Disposition):
            raise InvalidCallEvent("disposition must be a Disposition", field="disposition")
        if not isinstance(self.hangup, HangupSide):
            raise InvalidCallEvent("hangup must be a HangupSide", field="hangup")
        _check_time("ended_at", self.ended_at)
        _check_quality(self.loss, self.jitter_ms, self.mos)
        _check_srtp(self.srtp)
        _check_peer_report(self.peer_loss, self.peer_jitter_ms, self.rtt_ms)
        path = tuple(self.scheme_path)
        for step in path:
            _check_text("scheme_path step", step, MAX_DISPLAY)
        object.__setattr__(self, "scheme_path", path)
