"""The resolver contract: what the B2BUA asks the PBX layer about each inbound call.

The B2BUA knows SIP and media, not schemes, numbers or employees. For every new inbound
INVITE it hands the resolver the call's facts (:class:`InboundCall`) and gets back either a
:class:`Plan` — who to ring, wave after wave — or a :class:`Reject` (a status for the caller,
optionally after a prompt). Routing (schedules, groups, strategies) plugs in behind this one
async callable without touching the core.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Protocol

from zvonar.calls.events import Direction, Disposition, Target, TargetKind
from zvonar.sip.auth_client import ClientCredentials
from zvonar.sip.ua import Flow

__all__ = [
    "QUEUE_SIGNALS",
    "CallStep",
    "CallerAuth",
    "CallerIdentity",
    "Enqueue",
    "InboundCall",
    "Menu",
    "Pickup",
    "Plan",
    "PlayPrompt",
    "QueueAnnounce",
    "QueueCallback",
    "QueueOffer",
    "QueueOverflow",
    "QueueSession",
    "QueueSignal",
    "QueueWithdraw",
    "Rating",
    "Reject",
    "Resolver",
    "RingTarget",
    "Route",
    "StepResult",
    "StepResultKind",
    "Wave",
]


@dataclass(frozen=True)
class CallerAuth:
    """Who the B2BUA's INVITE gate says the caller is (see pbx/invite_auth.py).

    ``trunk_of``: the accounts one of whose trunks vouches for the source (IP auth, or a
    registration trunk's line or registrar). A trunk speaks for its own account only: the
    call is that trunk's, and what it asserts stands, only towards those accounts' numbers
    (``vouches``). Another tenant's number called from the same address is a stranger's call.
    ``srtp_of``: of those, the accounts whose vouching trunk requires SRTP (``Trunk.srtp``), so
    an offer of ours to it (its INVITE had none) is SRTP only (``srtp_for``).
    ``account_id`` (+ ``user``, ``realm``): a phone that passed digest, or the account of a
    transfer the B2BUA places itself: such calls may dial extensions and the outside world.
    Neither: an unauthenticated foreign caller, who may only reach our numbers.
    """

    trunk_of: frozenset[uuid.UUID] = frozenset()
    srtp_of: frozenset[uuid.UUID] = frozenset()
    account_id: uuid.UUID | None = None
    user: str | None = None
    realm: str | None = None

    @property
    def trunk(self) -> bool:
        """Some account's trunk vouches for the source."""
        return bool(self.trunk_of)

    def vouches(self, account_id: uuid.UUID | None) -> bool:
        return account_id in self.trunk_of

    def srtp_for(self, account_id: uuid.UUID | None) -> bool:
        return account_id in self.srtp_of

    def __or__(self, other: CallerAuth) -> CallerAuth:
        """Both trunks' vouching (the source is a trunk of several accounts, or one trunk
        in two ways)."""
        return replace(
            self, trunk_of=self.trunk_of | other.trunk_of, srtp_of=self.srtp_of | other.srtp_of
        )


@dataclass(frozen=True)
class CallerIdentity:
    """Who calls, as an INVITE names them (calls/identity.py)."""

    user: str  # the number (or user) of the caller; "" when none
    display: str | None
    uri: str  # their address, a sip(s) URI: what a phone's "call back" dials


@dataclass(frozen=True)
class InboundCall:
    """The facts of a new inbound call, as the caller's INVITE tells them."""

    call_id: str  # minted by the B2BUA for the whole call (a safe token)
    dialed: str  # the Request-URI user (the number or extension dialed), "" if none
    # Who calls (calls/identity.py): From's, until a trunk's assertion is vouched for.
    caller: str  # their user part (the number), "" if none
    caller_display: str | None
    from_uri: str  # their address
    to_uri: str
    source: Flow  # where the INVITE came from
    started_at: datetime
    auth: CallerAuth | None = None  # None: the B2BUA runs without an INVITE gate
    # The identity a trunk's INVITE asserts, when it differs from From's. It stands only once
    # the called number's account is one the source's trunk vouches for (``for_account``):
    # the resolver, which learns whose number is called, and the call both ask.
    asserted: CallerIdentity | None = None
    # The employee whose ringing fork this INVITE's Replaces names (RFC 3891): a phone's BLF
    # key picking the call up (pbx/features.py makes it a directed pickup) — or, with
    # ``pulls`` (the id of that call), whose answered leg it names: their own other device
    # taking the call (a pull).
    picks: uuid.UUID | None = None
    pulls: str | None = None

    def for_account(self, account_id: uuid.UUID | None) -> InboundCall:
        """These facts as a call to ``account_id`` sees them: the asserted identity is the
        caller if the source's trunk vouches for that account; else From's stays."""
        who, auth = self.asserted, self.auth
        if who is None or auth is None or not auth.vouches(account_id):
            return self
        return replace(
            self, caller=who.user, caller_display=who.display, from_uri=who.uri, asserted=None
        )


@dataclass(frozen=True)
class VoicemailSpec:
    """Take a message (calls/voicemail.py): answer, play ``greeting`` (None: none) and a beep,
    record the caller until they hang up, press '#', stay silent (no RTP) for
    ``silence_timeout`` seconds or talk for ``max_seconds``. Messages shorter than
    ``min_seconds`` are dropped. ``notify``: who gets the message by e-mail."""

    greeting: Path | None = None
    max_seconds: float = 120.0
    beep: bool = True
    notify: tuple[str, ...] = ()
    min_seconds: float = 1.0
    silence_timeout: float = 5.0

    def __post_init__(self) -> None:
        if not self.max_seconds > 0:
            raise ValueError("a voicemail's max_seconds must be > 0")
        if not 0 <= self.min_seconds < self.max_seconds:
            raise ValueError("a voicemail's min_seconds must be in [0, max_seconds)")
        if not self.silence_timeout > 0:
            raise ValueError("a voicemail's silence_timeout must be > 0")


@dataclass(frozen=True)
class Reject:
    """Refuse the call (or end it after the plan ran out): ``status`` 4xx-6xx for the caller.

    With ``prompt`` the caller is answered, hears the file, and is hung up on instead; with
    ``voicemail`` the caller may leave a message (the ``prompt`` is then only the fallback when
    the B2BUA cannot record).
    ``account_id`` None (e.g. an unknown number): no call events are published at all.
    ``direction`` and ``placed_by``: the journal's, for a call refused at once (an employee's
    call the dial plan or the toll-fraud guard refuses is theirs, not an inbound one).
    """

    status: int = 480
    reason: str | None = None
    prompt: Path | None = None
    account_id: uuid.UUID | None = None
    # What the journal records when the call ends here after the prompt played (e.g. voicemail);
    # None: derived from how the waves ended. ``failed`` with no prompt: the PBX ends here by a
    # fault of its own (the route broke), not because nobody was available.
    disposition: Disposition | None = None
    voicemail: VoicemailSpec | None = None
    direction: Direction | None = None  # None: inbound
    placed_by: uuid.UUID | None = None

    def __post_init__(self) -> None:
        if not 400 <= self.status <= 699:
            raise ValueError(f"a reject status must be 4xx-6xx, not {self.status}")


# Answers that refuse an offer for what it is (RFC 3261 §21.4.26, §21.6.4): to an SRTP offer,
# what a phone without SRTP says.
SRTP_REFUSALS = frozenset({488, 606})


@dataclass(frozen=True)
class RingTarget:
    """One contact to ring: its SIP URI and the flow to send the INVITE over."""

    uri: str
    flow: Flow
    target: Target = field(default_factory=lambda: Target(TargetKind.external, "external"))
    label: str | None = None  # a short name for the leg id (letters/digits), optional
    # The identity the target sees (From user/display, and P-Asserted-Identity, RFC 3325):
    # an outbound call's chosen caller ID. None keeps the caller's From.
    from_user: str | None = None
    from_display: str | None = None
    # The From user the carrier this target is reached through requires (Trunk.from_user,
    # often its account login): From names it, and whoever calls (``from_user``, else the
    # caller's From) goes in P-Asserted-Identity only. None: From names the caller.
    carrier_user: str | None = None
    # The caller withheld their number for this call (*67, #31#): From is anonymous and
    # ``Privacy: id`` asks the carrier to keep P-Asserted-Identity from the callee
    # (RFC 3323 §4.2, RFC 3325 §9.3); the carrier still learns who calls.
    withhold: bool = False
    # Intercom (*9<ext>): the phone is asked to answer at once, on its speaker
    # (``Call-Info: ...;answer-after=0``, as Polycom, Yealink, Snom and Grandstream read it,
    # and RFC 5373's ``Answer-Mode: Auto``).
    auto_answer: bool = False
    # What we answer a 401/407 to this INVITE with (RFC 3261 §22.2): the carrier's account
    # on the trunk the target is reached through. None: a challenge ends the fork.
    auth: ClientCredentials | None = field(default=None, repr=False)
    # The account's number that forwards the call to this target through a carrier (RFC 5806
    # Diversion): carriers that take calls only from the numbers they host accept a customer's
    # number in From when the diverting number is theirs.
    diversion: str | None = None
    # Played to the target when it answers, which then takes the call only by pressing 1
    # (calls/accept.py): a forwarded mobile whose voicemail would otherwise answer. None:
    # its answer is the call's.
    accept_prompt: Path | None = None
    # Played once to whoever answers, before the call is theirs (and before the accept
    # prompt): which line the customer called, where the caller ID cannot say it.
    announce: Path | None = None
    # More servers of the same target, in the order to try them (RFC 3263 §4.3, pbx/dns.py):
    # an INVITE that times out, finds no transport or gets 503 goes to the next one.
    fallbacks: tuple[Flow, ...] = ()
    # Offer SRTP only (RTP/SAVP, RFC 4568 SDES): a phone that registered over TLS keeps its
    # voice as private as its signalling (``phone``), a trunk that requires it (Trunk.srtp).
    secure_media: bool = False
    # A target that refuses the SRTP offer as such (488, 606) is rung again at once with plain
    # RTP (``plain``): a phone that speaks TLS but not SRTP still rings. Only the phone itself
    # can refuse (TLS keeps others from forging its answer). Not for a trunk that requires SRTP.
    plain_retry: bool = False
    # Seconds this target rings before it alone is given up as not answered (CANCEL), while
    # the rest of its wave rings on: a scheme's target with a timeout of its own, shorter than
    # its step's (pbx/route.py ``wave_of``). Counted from its INVITE. None: the wave's timeout.
    ring_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.ring_seconds is not None and not self.ring_seconds > 0:
            raise ValueError("a target's ring_seconds must be > 0")

    @classmethod
    def phone(cls, contact: str, flow: Flow, target: Target, label: str | None) -> RingTarget:
        """A registered phone of ``target`` at ``contact``, reached over ``flow`` (the flow
        its REGISTER came over): over TLS, its media is SRTP if it can."""
        tls = flow.transport == "TLS"
        return cls(contact, flow, target, label, secure_media=tls, plain_retry=tls)

    def plain(self, status: int) -> RingTarget | None:
        """This target again with plain RTP, if its ``status`` refused our SRTP offer and it
        may (``plain_retry``); None otherwise."""
        if not (self.secure_media and self.plain_retry) or status not in SRTP_REFUSALS:
            return None
        return replace(self, secure_media=False, plain_retry=False)


@dataclass(frozen=True)
class Wave:
    """Targets rung at once; the wave ends when one answers, all fail, or after ``timeout``.
    A target with ``ring_seconds`` of its own stops ringing then, and the wave goes on."""

    targets: tuple[RingTarget, ...]
    timeout: float = 30.0
    # Seconds a target may stay silent — no response at all, not even 100 Trying — before it
    # counts as unreachable (408) and the call moves on: a carrier's dead server is left in
    # seconds, not after the INVITE transaction's 32 s (RFC 3263 §4.3 failover). None: wait.
    silence: float | None = None

    def __post_init__(self) -> None:
        if not self.targets:
            raise ValueError("a wave needs at least one target")
        if not self.timeout > 0:
            raise ValueError("a wave timeout must be > 0 seconds")
        if self.silence is not None and not self.silence > 0:
            raise ValueError("a wave's silence bound must be > 0 seconds")


@dataclass(frozen=True)
class Plan:
    """Ring ``waves`` in order; if none answers, ``final`` decides what the caller gets."""

    account_id: uuid.UUID
    waves: tuple[Wave, ...]
    final: Reject = field(default_factory=Reject)
    direction: Direction = Direction.inbound
    record: bool = False
    number_label: str | None = None
    # The number the call was routed on, when the Request-URI did not name it (a carrier
    # sends to the Contact we registered, the number in To): the journal's "dialed".
    dialed: str | None = None
    tracking: dict[str, str] = field(default_factory=dict)
    scheme_path: tuple[str, ...] = ()  # the routing steps taken, for the journal
    # The final responses of a failed wave that move on to the next wave (an outbound call:
    # the carrier failed, try the next trunk); any other ends the call with that response
    # relayed to the caller (busy, no such number). None: every failed wave moves on (an
    # inbound scheme: the caller never hears how a target failed).
    fail_over: frozenset[int] | None = None
    # A live route (the scheme walked step by step as outcomes arrive): when set, the call
    # asks it for every next step and ``waves``/``final`` are not used.
    route: Route | None = None
    # The display name our INVITEs to the account's phones carry for the caller (the line's
    # label and who calls, "Resorts: Bolts Ltd"); None keeps the caller's From as it came.
    caller_display: str | None = None
    # For the journal: the caller's number in E.164 (a carrier may send "8916…"; None keeps
    # it as it came) and the customer's contact in the directory (the caller of an inbound
    # call, the callee of an outbound one).
    caller: str | None = None
    contact_id: uuid.UUID | None = None
    placed_by: uuid.UUID | None = None  # the employee who dialled (an outbound call)
    # The account's park times (calls/park.py): the wait in a slot, then how long the parker
    # is rung back; None: the PBX's defaults.
    park_seconds: float | None = None
    park_ring_back_seconds: float | None = None


@dataclass(frozen=True)
class Pickup:
    """Directed pickup (a feature code, pbx/features.py): the caller takes the call of
    ``account_id`` that is ringing employee ``employee_id`` right now (calls/pickup.py).

    ``picker``: who picks it up, the journal's answered_by (an employee of the same account).
    """

    account_id: uuid.UUID
    employee_id: uuid.UUID
    picker: Target


Resolver = Callable[[InboundCall], Awaitable[Plan | Reject]]


# --- live routes: steps the call performs one at a time ------------------------------------------


@dataclass(frozen=True)
class PlayPrompt:
    """Answer the caller (if not yet) and play ``prompts`` in order."""

    prompts: tuple[Path, ...]


@dataclass(frozen=True)
class Menu:
    """Answer the caller, play ``prompts`` (a digit cuts them short: barge-in) and wait
    ``timeout`` seconds after them for one digit."""

    prompts: tuple[Path, ...]
    timeout: float = 5.0


@dataclass(frozen=True)
class Enqueue:
    """Answer the caller and wait in a queue with ``hold_music`` looping; ``session`` is the
    ACD's side of this caller's wait (offers, announcements, overflow)."""

    session: QueueSession
    hold_music: Path | None = None


CallStep = Wave | PlayPrompt | Menu | Enqueue | Reject


class StepResultKind(enum.StrEnum):
    no_answer = "no_answer"
    busy = "busy"
    unavailable = "unavailable"  # nobody could be rung at all
    failed = "failed"
    completed = "completed"  # prompts played to the end
    digit = "digit"
    no_input = "no_input"
    overflow = "overflow"  # the queue sent the caller on (max wait, length, exit digit)
    callback = "callback"  # the caller chose to be called back; the call ends


@dataclass(frozen=True)
class StepResult:
    kind: StepResultKind
    digit: str | None = None


@dataclass(frozen=True)
class Rating:
    """Ask the caller to rate the call (1-5) once the person they talked to hangs up."""

    prompt: Path
    thanks: Path | None = None
    timeout: float = 8.0


class Route(Protocol):
    """The scheme, walked as the call goes. ``next`` is asked after every step that did not
    connect the caller to someone (``None`` the first time); ``connected`` tells it who took
    the call."""

    async def next(self, result: StepResult | None) -> CallStep: ...

    def connected(self, by: Target) -> None: ...

    @property
    def path(self) -> tuple[str, ...]: ...

    @property
    def rating(self) -> Rating | None: ...


# --- queue sessions (the ACD's side of one waiting caller) ----------------------------------------


@dataclass(frozen=True)
class QueueOffer:
    """Ring these agents for the waiting caller (one offer: answer, ring out, or withdrawn)."""

    offer: int
    targets: tuple[RingTarget, ...]
    timeout: float


@dataclass(frozen=True)
class QueueAnnounce:
    prompts: tuple[Path, ...]


@dataclass(frozen=True)
class QueueOverflow:
    reason: str


@dataclass(frozen=True)
class QueueCallback:
    """The caller asked to be called back; the queue keeps their place."""

    prompt: Path | None = None


@dataclass(frozen=True)
class QueueWithdraw:
    """Stop ringing this offer (a supervisor takes the call); the call answers with
    ``withdrawn`` unless an agent answered first."""

    offer: int


QueueSignal = QueueOffer | QueueAnnounce | QueueOverflow | QueueCallback | QueueWithdraw
QUEUE_SIGNALS = (QueueOffer, QueueAnnounce, QueueOverflow, QueueCallback, QueueWithdraw)


class QueueSession(Protocol):
    """One caller's wait in one queue. Signals arrive through ``notify`` (the call's inbox)."""

    queue: str

    async def enter(self, notify: Callable[[QueueSignal], None]) -> bool:
        """Join the queue; False when refused (full, or nobody serves it)."""
        ...

    def ringing(self, offer: int, target: Target) -> None: ...

    def answered(self, offer: int, target: Target) -> None: ...

    def not_answered(self, offer: int) -> None: ...

    def withdrawn(self, offer: int) -> None:
        """The offer stopped ringing on a QueueWithdraw (nobody had answered)."""
        ...

    def digit(self, digit: str) -> None: ...

    def left(self) -> None:
        """The caller hung up while waiting or ringing an agent."""
        ...

    def call_ended(self) -> None:
        """The connected call is over (the agent starts wrap-up)."""
        ...
