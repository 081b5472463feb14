"""Call legs: our side of one SIP dialog of a call, plus its media leg(s) in the engine.

A leg only holds state; the call actor (call.py) drives it. The caller leg is the UAS side
of the inbound INVITE; each fork is a UAC leg towards one target. Media legs belong to a
fork as a *pair* (the target's endpoint and a caller-side endpoint, in one engine call),
because rtpengine bridges only legs it allocated together. The target's endpoint is opened
with the fork (its port is in our offer); the caller side only when the caller needs it
(early.caller_side): when the fork wins a caller that has no media yet, whose leg it then
becomes, or when its 18x is the first early media (early.py), whose caller-side endpoint
the later forks bridge to. Forks that never win hold one endpoint, not two.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import datetime

from zvonar.calls.events import CallEvent
from zvonar.calls.plan import RingTarget
from zvonar.media.engine import LegEndpoint, PlaybackId, RemoteMedia
from zvonar.media.offer_answer_dialog import OfferAnswer
from zvonar.sip.dialog import Dialog
from zvonar.sip.message import SipRequest, SipResponse
from zvonar.sip.transaction import TransactionKey
from zvonar.sip.ua import Flow, IncomingRequest

__all__ = ["AuthFlow", "CallDtmf", "CalleeLeg", "CallerLeg", "LegState"]

# Answers a target's digest challenges to one INVITE (sip.auth_client.client_auth_flow).
AuthFlow = Generator[SipRequest, SipResponse, None]


class LegState(enum.Enum):
    INVITING = "inviting"  # UAC: INVITE sent; UAS: INVITE received, not answered
    CONFIRMED = "confirmed"  # 2xx sent/received (§13.2.2.4, §13.3.1.4)
    ENDED = "ended"


@dataclass(frozen=True, kw_only=True)
class CallDtmf(CallEvent):
    """A digit from one leg's peer (RFC 4733 or in-band), forwarded from the media engine."""

    leg_id: str
    digit: str
    duration: float


@dataclass(eq=False)
class CallerLeg:
    """The inbound side: their INVITE, answered by us once a fork wins (or for a prompt)."""

    leg_id: str
    invite: IncomingRequest | None  # until we send a final response
    flow: Flow
    local_tag: str
    sip_call_id: str
    remote_tag: str  # the caller's From tag
    state: LegState = LegState.INVITING
    dialog: Dialog | None = None
    media_id: str | None = None  # the engine leg in use (the winning fork's caller side)
    endpoint: LegEndpoint | None = None
    oa: OfferAnswer | None = None
    ringing_sent: bool = False
    early_sdp: bytes | None = None  # our answer in the 183 (early.py): the 2xx repeats it
    was_fork: bool = False  # an answered party the caller handed on (transfer.py)


@dataclass(eq=False)
class CalleeLeg:
    """One fork: our INVITE to a target, with its media pair."""

    leg_id: str
    wave: int
    target: RingTarget
    flow: Flow
    local_tag: str
    sip_call_id: str
    media_id: str  # the target's engine leg
    # The caller-side engine leg of this fork's pair: opened only once the caller needs it
    # (early.caller_side), "" until then and once the caller holds it as its own.
    caller_media_id: str
    endpoint: LegEndpoint
    caller_endpoint: LegEndpoint | None
    oa: OfferAnswer
    request: SipRequest | None = None
    invite_key: TransactionKey | None = None
    dialog: Dialog | None = None
    state: LegState = LegState.INVITING
    cancel_sent: bool = False
    media_released: bool = False
    end_published: bool = False  # LegEnded went out (a winner ends before a post-call rating)
    extra_keys: list[TransactionKey] = field(default_factory=list)  # BYE, re-INVITE…
    auth_flow: AuthFlow | None = field(default=None, repr=False)  # once challenged
    early: bytes | None = None  # the SDP of its first 18x that carried one (early.py)
    rang: bool = False  # CallRinging went out (at its first 18x, else at its answer)
    invited_at: datetime | None = None  # when its INVITE went out
    early_tag: str | None = None  # the target's To tag in its first 18x (its early dialog)
    final: tuple[int, str] | None = None  # its final non-2xx response (status, reason)
    heard: bool = False  # any response to its INVITE came (100 Trying counts)
    # Answered, and asked to confirm ("press 1", accept.py): the timer of its silence, and
    # the answer its 2xx carried, for when it accepts.
    accept_timer: asyncio.TimerHandle | None = field(default=None, repr=False)
    answer: RemoteMedia | None = None
    playback: PlaybackId | None = None  # what it hears meanwhile
    # Our 200 to it made the offer (a picker whose INVITE had none, pickup.py): its ACK
    # carries the answer, which configures its engine leg (answering.fork_answer_in_ack).
    offered: bool = False

    @property
    def pending(self) -> bool:
        """Ringing, or answered and being asked to confirm: not the call's (yet)."""
        return self.state is LegState.INVITING or self.accept_timer is not None

    def stop_asking(self) -> None:
        timer, self.accept_timer = self.accept_timer, None
        if timer is not None:
            timer.cancel()
