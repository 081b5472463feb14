"""The offer/answer state of one dialog (RFC 3264 §4-8, RFC 3261 §13-14): who offered, the
o= versions, glare, rollback and re-offers, around the pure rules of
:mod:`zvonar.media.offer_answer`.

Sans-IO: SDP in, SDP and :class:`~zvonar.media.offer_answer.NegotiatedMedia` out. Transitions
are a table over (state, input); a pair missing from it is a protocol error with its SIP
status hint (491 for glare, RFC 3261 §14.2). On re-offers (§8) the m-line count never shrinks
and the o= version grows by one exactly when the description changed.
"""

from __future__ import annotations

import enum
from typing import TypeVar

from zvonar.media.errors import NegotiationError
from zvonar.media.offer_answer import (
    LocalMedia,
    NegotiatedMedia,
    answer_offer,
    build_offer,
    process_answer,
)
from zvonar.media.sdp import SessionDescription

__all__ = ["OfferAnswer", "OfferAnswerInput", "OfferAnswerState"]


_D = TypeVar("_D")


def _evolve(obj: _D, **changes: object) -> _D:
    """``dataclasses.replace`` for the frozen SDP values, without re-running their checks:
    only for changes that keep them valid (another valid origin, a higher version). Several
    times cheaper, and _stamp runs for every offer and answer."""
    copy = object.__new__(type(obj))
    state = copy.__dict__
    state.update(obj.__dict__)
    state.update(changes)
    return copy


class OfferAnswerState(enum.Enum):
    IDLE = "idle"  # nothing negotiated yet
    OFFER_SENT = "offer_sent"  # waiting for the answer to our offer
    STABLE = "stable"  # a session is in effect


class OfferAnswerInput(enum.Enum):
    SEND_OFFER = "send_offer"
    RECEIVE_OFFER = "receive_offer"
    RECEIVE_ANSWER = "receive_answer"
    ROLLBACK = "rollback"


_S, _I = OfferAnswerState, OfferAnswerInput
# (state, input) -> next state. A missing pair is a protocol error; ROLLBACK returns to STABLE
# or IDLE depending on whether a session was ever established.
_TRANSITIONS: dict[tuple[OfferAnswerState, OfferAnswerInput], OfferAnswerState] = {
    (_S.IDLE, _I.SEND_OFFER): _S.OFFER_SENT,
    (_S.STABLE, _I.SEND_OFFER): _S.OFFER_SENT,
    (_S.IDLE, _I.RECEIVE_OFFER): _S.STABLE,
    (_S.STABLE, _I.RECEIVE_OFFER): _S.STABLE,
    (_S.OFFER_SENT, _I.RECEIVE_ANSWER): _S.STABLE,
    (_S.OFFER_SENT, _I.ROLLBACK): _S.STABLE,
}
_ERRORS: dict[OfferAnswerInput, tuple[str, int]] = {
    _I.SEND_OFFER: ("an offer is already outstanding", 491),
    _I.RECEIVE_OFFER: ("offer glare: our own offer is outstanding", 491),  # RFC 3261 §14.2
    _I.RECEIVE_ANSWER: ("an answer without an outstanding offer", 400),
    _I.ROLLBACK: ("nothing to roll back", 500),
}


class OfferAnswer:
    """Offer/answer state of one dialog (sans-IO: SDP in, SDP and results out).

    ``session_id`` is chosen by the caller (RFC 8866 §5.2 suggests an NTP timestamp); o=
    versions start at ``version`` and grow by one for each changed description we send.
    """

    def __init__(self, local: LocalMedia, *, session_id: int, version: int = 0) -> None:
        self.local = local
        self.session_id = session_id
        self.state = OfferAnswerState.IDLE
        self.negotiated: NegotiatedMedia | None = None
        self.local_sdp: SessionDescription | None = None  # the description in effect
        self.remote_sdp: SessionDescription | None = None
        self._pending_offer: SessionDescription | None = None
        self._max_version = version - 1

    def _advance(self, event: OfferAnswerInput) -> OfferAnswerState:
        next_state = _TRANSITIONS.get((self.state, event))
        if next_state is None:
            reason, status = _ERRORS[event]
            raise NegotiationError(f"{reason} (state {self.state.value})", status_hint=status)
        if event is _I.ROLLBACK and self.negotiated is None:
            next_state = _S.IDLE
        return next_state

    def _stamp(self, sd: SessionDescription) -> SessionDescription:
        """Keep the version of the description in effect if unchanged, else a new one."""
        current = self.local_sdp
        if current is not None and _evolve(sd, origin=current.origin) == current:
            return current
        self._max_version += 1
        return _evolve(sd, origin=_evolve(sd.origin, version=self._max_version))

    def create_offer(self, local: LocalMedia | None = None) -> SessionDescription:
        next_state = self._advance(_I.SEND_OFFER)
        if local is not None:
            self.local = local
        offer = build_offer(self.local, session_id=self.session_id, previous=self.local_sdp)
        offer = self._stamp(offer)
        self._pending_offer = offer
        self.state = next_state
        return offer

    def receive_answer(self, answer: SessionDescription) -> NegotiatedMedia:
        next_state = self._advance(_I.RECEIVE_ANSWER)
        offer = self._pending_offer
        if offer is None:
            raise NegotiationError("internal: no pending offer", status_hint=500)
        negotiated = process_answer(offer, answer, self.local)
        self.state = next_state
        self.local_sdp, self.remote_sdp, self.negotiated = offer, answer, negotiated
        self._pending_offer = None
        return negotiated

    def preview_answer(self, answer: SessionDescription) -> NegotiatedMedia:
        """What ``answer`` to our pending offer negotiates, without taking it: the copy of
        the answer a UAS may put in provisional responses before the 2xx that carries it
        (RFC 3261 §13.2.1), heard as early media. The offer stays outstanding, so the 2xx's
        answer is still taken by :meth:`receive_answer`."""
        offer = self._pending_offer
        if self.state is not OfferAnswerState.OFFER_SENT or offer is None:
            raise NegotiationError("an answer without an outstanding offer", status_hint=400)
        return process_answer(offer, answer, self.local)

    def receive_offer(
        self, offer: SessionDescription, local: LocalMedia | None = None
    ) -> tuple[SessionDescription, NegotiatedMedia]:
        """Answer an initial offer or a re-offer; on error the previous session stays."""
        next_state = self._advance(_I.RECEIVE_OFFER)
        if self.local_sdp is not None and len(offer.media) < len(self.local_sdp.media):
            raise NegotiationError("a re-offer may not remove m-lines (RFC 3264 §8)")
        local = local or self.local
        answer, negotiated = answer_offer(offer, local, session_id=self.session_id)
        self.local = local
        answer = self._stamp(answer)
        self.state = next_state
        self.local_sdp, self.remote_sdp, self.negotiated = answer, offer, negotiated
        return answer, negotiated

    def rollback(self) -> None:
        """Our offer was refused (e.g. a re-INVITE got 488/491): the old session stays."""
        self.state = self._advance(_I.ROLLBACK)
        self._pending_offer = None
