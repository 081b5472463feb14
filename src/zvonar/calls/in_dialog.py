"""What every call actor does the same way inside its dialogs: inbound calls (call.py), calls
we place (originate.py) and listeners (listen.py).

A re-INVITE (hold/resume, a new address) is answered locally from the leg's own offer/answer
state and only reconfigures that leg's media (sdp_bridge.py): the other side never sees it
(an inbound call plays it hold music meanwhile: call.py).
Hanging up a leg we placed is a BYE once it is confirmed, a CANCEL while it rings.

A carrier may challenge our INVITE (401/407) even on a trunk it registers us on, and most
ask for credentials on every call: :func:`answer_challenge` sends the INVITE again with them
(RFC 3261 §22.2: a new transaction, CSeq one up, same Call-ID and tags) and the leg keeps
ringing; the 2xx's ACK carries the same credentials (the dialog layer copies them).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from zvonar.calls.legs import AuthFlow, LegState
from zvonar.calls.plan import RingTarget
from zvonar.calls.sdp_bridge import parse_body, remote_media
from zvonar.calls.signalling import invite_request, response_to
from zvonar.media.errors import MediaError
from zvonar.media.offer_answer_dialog import OfferAnswer
from zvonar.sip.auth_client import client_auth_flow
from zvonar.sip.body import media_type, sdp_body
from zvonar.sip.dialog import Dialog
from zvonar.sip.errors import SipError
from zvonar.sip.message import SipRequest, SipResponse
from zvonar.sip.transaction import TransactionKey
from zvonar.sip.ua import COMPLETED_ELSEWHERE, Flow, IncomingRequest
from zvonar.sip.uri import parse_uri

if TYPE_CHECKING:
    from zvonar.calls.b2bua import B2bua, CallActor

__all__ = [
    "DTMF_INFO_TYPES",
    "ChallengedLeg",
    "PlacedLeg",
    "answer_challenge",
    "answer_reinvite",
    "hang_up",
    "info_digit",
    "invite",
    "is_offer",
    "release_media",
    "reply",
]

log = logging.getLogger(__name__)

_NO_REQUEST = SipRequest("OPTIONS", parse_uri("sip:invalid"), ())  # no inbound INVITE behind


class PlacedLeg(Protocol):
    """A leg the PBX invites without an inbound call behind it (a fork of a call we place, a
    listener's phone)."""

    target: RingTarget
    oa: OfferAnswer
    local_tag: str
    sip_call_id: str
    request: SipRequest | None
    invite_key: TransactionKey | None
    dialog: Dialog | None
    state: LegState
    cancel_sent: bool

    @property
    def flow(self) -> Flow: ...


def reply(
    host: B2bua, inc: IncomingRequest, dialog: Dialog, status: int, body: bytes = b""
) -> None:
    ua = host.ua
    # A 2xx to a target refresh carries our Contact (§12.1.1; RFC 3311 §5.2 for UPDATE).
    refresh = inc.request.method in ("INVITE", "UPDATE")
    contact = str(ua.contact_uri(inc.flow)) if refresh else None
    allow = ua.allow_header if refresh else None
    resp = response_to(
        inc.request, status, dialog.id.local_tag, contact=contact, body=body, allow=allow
    )
    ua.respond(inc, resp, host.now())
    host.flush()


_INFO_DIGITS = {**{d: d for d in "0123456789*#ABCD"}, "10": "*", "11": "#"}
DTMF_INFO_TYPES = ("application/dtmf-relay", "application/dtmf")


def info_digit(request: SipRequest) -> tuple[str, float] | None:
    """The key a phone sent by SIP INFO instead of RFC 4733 — ``application/dtmf-relay``
    (``Signal=5`` and ``Duration=160`` in ms, the de-facto format) or ``application/dtmf``
    (``5``) — and its duration in seconds; None for any other INFO."""
    ctype = media_type(request.content_type)
    if ctype not in DTMF_INFO_TYPES:
        return None
    text = request.body.decode("ascii", "replace")
    signal, duration = text.strip(), 0.1
    if ctype == "application/dtmf-relay":
        fields = {}
        for line in text.splitlines():
            name, sep, value = line.partition("=")
            if sep:
                fields[name.strip().lower()] = value.strip()
        signal = fields.get("signal", "")
        raw = fields.get("duration", "")
        if raw.isdigit():
            duration = min(int(raw), 10_000) / 1000
    digit = _INFO_DIGITS.get(signal.upper())
    return (digit, duration) if digit is not None else None


def is_offer(inc: IncomingRequest) -> bool:
    """A re-INVITE, or an UPDATE with an SDP offer (RFC 3311): answered by
    :func:`answer_reinvite` alike (an UPDATE without one is just acknowledged)."""
    request = inc.request
    return request.method == "INVITE" or (
        request.method == "UPDATE" and bool(sdp_body(request).strip())
    )


async def answer_reinvite(
    host: B2bua,
    inc: IncomingRequest,
    dialog: Dialog,
    oa: OfferAnswer | None,
    media_id: str | None,
) -> None:
    """Answer a re-INVITE on a confirmed leg (``oa``, ``media_id``: that leg's; None: the leg
    cannot take one now, 491)."""
    if oa is None or media_id is None:
        reply(host, inc, dialog, 491)
        return
    offer = sdp_body(inc.request)
    if not offer.strip():  # an offerless re-INVITE: our current SDP
        local = oa.local_sdp
        reply(host, inc, dialog, 200, local.serialize().encode() if local else b"")
        return
    try:
        answer, negotiated = oa.receive_offer(parse_body(offer))
        await host.engine.configure(media_id, remote_media(negotiated))
    except MediaError as exc:
        reply(host, inc, dialog, exc.status_hint if exc.status_hint >= 400 else 488)
        return
    reply(host, inc, dialog, 200, answer.serialize().encode())


def invite(
    host: B2bua, actor: CallActor, leg: PlacedLeg, from_user: str, from_display: str | None
) -> None:
    """Send ``leg``'s INVITE (an offer from its own media endpoint) and route its dialog and
    transaction to ``actor``."""
    ua = host.ua
    leg.request = invite_request(
        target=leg.target.uri,
        caller=_NO_REQUEST,
        local_tag=leg.local_tag,
        call_id=leg.sip_call_id,
        via=ua.via_for(leg.flow),
        contact=str(ua.contact_uri(leg.flow)),
        user_agent=ua.user_agent,
        sdp=leg.oa.create_offer().serialize().encode(),
        from_user=from_user,
        from_display=from_display,
        allow=ua.allow_header,
        carrier_user=leg.target.carrier_user,
        withhold=leg.target.withhold,
        auto_answer=leg.target.auto_answer,
    )
    host.track_dialog(leg.sip_call_id, leg.local_tag, actor)
    leg.invite_key = ua.send_request(leg.request, leg.flow, host.now())
    host.track_key(leg.invite_key, actor)
    host.flush()


class ChallengedLeg(Protocol):
    """A leg whose INVITE a target may challenge (any fork or placed leg)."""

    target: RingTarget
    request: SipRequest | None
    invite_key: TransactionKey | None
    state: LegState
    auth_flow: AuthFlow | None

    @property
    def flow(self) -> Flow: ...


def answer_challenge(
    host: B2bua, actor: CallActor, leg: ChallengedLeg, response: SipResponse
) -> bool:
    """Answer a 401/407 to ``leg``'s INVITE with the target's credentials and keep the leg
    ringing; False when there is nothing to answer with (no credentials, the leg no longer
    rings, or the target refused the credentials we sent: the digest flow gives up after a
    second challenge of the same realm, unless it says ``stale=true``)."""
    creds = leg.target.auth
    if response.status not in (401, 407) or creds is None or leg.request is None:
        return False
    if leg.state is not LegState.INVITING:
        return False
    try:
        flow = leg.auth_flow
        if flow is None:
            flow = leg.auth_flow = client_auth_flow(leg.request, creds)
            next(flow)  # the request as first sent
        retry = flow.send(response)
    except StopIteration:
        leg.auth_flow = None
        return False
    except (SipError, ValueError) as exc:  # a challenge we cannot read ends only this leg
        log.info("unreadable challenge from %s: %s", leg.target.uri, exc)
        leg.auth_flow = None
        return False
    leg.request = retry
    leg.invite_key = host.ua.send_request(retry, leg.flow, host.now())
    host.track_key(leg.invite_key, actor)
    host.flush()
    return True


def hang_up(host: B2bua, leg: PlacedLeg, *, elsewhere: bool = False) -> None:
    """BYE a confirmed leg, CANCEL a ringing one. ``elsewhere``: it lost to another fork's
    answer, and its CANCEL says so (RFC 3326), so the phone does not log a missed call."""
    ua, now = host.ua, host.now()
    if leg.state is LegState.CONFIRMED and leg.dialog is not None:
        ua.send_request(ua.create_request(leg.dialog, "BYE", leg.flow), leg.flow, now)
        ua.forget_dialog(leg.dialog)
    elif leg.state is LegState.INVITING and leg.invite_key is not None and not leg.cancel_sent:
        leg.cancel_sent = True
        why = COMPLETED_ELSEWHERE if elsewhere else ()
        ua.cancel(leg.invite_key, leg.flow, now, headers=why)  # a crossing 2xx: ACK + BYE
    leg.state = LegState.ENDED
    host.flush()


async def release_media(host: B2bua, call_id: str, *media_ids: str) -> None:
    """Free the call's engine legs that are still its own (tracked; "" and the ones released
    already are skipped). Never raises: the end of a call must go on."""
    for media_id in media_ids:
        if not host.untrack_media(media_id):
            continue
        try:
            await host.engine.release(media_id)
        except MediaError as exc:
            log.debug("call %s: release %s: %s", call_id, media_id, exc)
