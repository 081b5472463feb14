"""The legs of a call the PBX places (originate.py): our UAC side of each dialog — a side-A
fork or side B — with the engine leg its media lands on, and the actor's own inputs besides
UA and media events. State only, as legs.py is for inbound calls; the actor drives it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from zvonar.calls.legs import AuthFlow, LegState
from zvonar.calls.origination import OriginationOutcome
from zvonar.calls.plan import RingTarget
from zvonar.calls.sdp_bridge import new_offer_answer
from zvonar.media.engine import LegEndpoint, MediaEvent
from zvonar.media.offer_answer_dialog import OfferAnswer
from zvonar.sip.dialog import Dialog
from zvonar.sip.message import SipRequest
from zvonar.sip.transaction import TransactionKey
from zvonar.sip.ua import Flow, UaEvent, UserAgent

__all__ = [
    "OriginatedLeg",
    "OriginationInput",
    "RingTimeout",
    "Stop",
    "new_leg",
    "safe_user",
]

_SAFE_USER = re.compile(r"\+?[0-9A-Za-z._-]{1,64}")


@dataclass(frozen=True)
class RingTimeout:
    wave: int  # -1: B's ring timeout


@dataclass(frozen=True)
class Stop:
    outcome: OriginationOutcome


OriginationInput = UaEvent | MediaEvent | RingTimeout | Stop


@dataclass(eq=False)
class OriginatedLeg:
    """Our UAC side of one dialog (an A fork or B) and the engine leg its media lands on."""

    leg_id: str
    wave: int  # -1 for B
    target: RingTarget
    media_id: str
    endpoint: LegEndpoint
    oa: OfferAnswer
    local_tag: str
    sip_call_id: str
    peer_media_id: str = ""  # A forks: the endpoint of the pair B uses, once this one answered
    peer_endpoint: LegEndpoint | None = None
    request: SipRequest | None = None
    invite_key: TransactionKey | None = None
    dialog: Dialog | None = None
    state: LegState = LegState.INVITING
    cancel_sent: bool = False
    rang: bool = False
    reported: bool = False  # its LegEnded is published
    answered_at: datetime | None = None
    auth_flow: AuthFlow | None = field(default=None, repr=False)  # once challenged
    early: bytes | None = None  # B: the SDP of its first 18x that carried one

    @property
    def flow(self) -> Flow:
        return self.target.flow


def new_leg(
    ua: UserAgent, leg_id: str, wave: int, target: RingTarget, media: str, endpoint: LegEndpoint
) -> OriginatedLeg:
    """A leg about to be rung: its offer/answer state on ``endpoint``, our tag and Call-ID."""
    return OriginatedLeg(
        leg_id=leg_id,
        wave=wave,
        target=target,
        media_id=media,
        endpoint=endpoint,
        oa=new_offer_answer(endpoint, secure=target.secure_media),
        local_tag=ua.token(),
        sip_call_id=f"{ua.token()}@zvonar",
    )


def safe_user(value: str) -> str | None:
    """``value`` as a From user part, if it is one (a number or a plain name)."""
    return value if _SAFE_USER.fullmatch(value) else None
