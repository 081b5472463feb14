"""A tiny "echo PBX": the test and demo fixture that proves the SIP stack end to end.

NOT the product's call logic — `zvonar.calls` (the B2BUA) replaces it. It does just enough
signalling for the real-peer tests (SIPp, baresip) and the benchmark:

- INVITE to user "answer" is answered 200 with the caller's SDP echoed back (our address
  in c=/o=); "plain" the same, but 488 for an offer in RTP/SAVP (a phone without SRTP);
  "busy" gets 486; "overloaded" 503; "ring" gets 180 and waits for a CANCEL
  (→ 487); "early" the same with a 183 carrying that echoed SDP (early media, RFC 3960);
- a call to a registered user is relayed as a new INVITE (a new dialog) to its binding's
  flow — a signalling-only back-to-back user agent: the SDP passes through unchanged,
  provisional and final responses, CANCEL and BYE are bridged between the two dialogs;
- re-INVITEs are answered 200 with the last SDP we sent on that dialog; BYE → 200;
  OPTIONS → 200; INFO/UPDATE and friends in a dialog → 200; others → 404 / 405;
- `originate()` places a call from our side (to SIPp's UAS, or to a registered baresip).

Dialog state lives in the UA core's `DialogLayer` (§12); a `CallLeg` only adds what the
bridge needs. In-dialog requests go to the flow the dialog was created over, which is
what an element in front of UAs behind NAT must do anyway (RFC 3581, RFC 5626).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from zvonar.sip.dialog import Dialog
from zvonar.sip.message import SipRequest, SipResponse, make_response
from zvonar.sip.transaction import TransactionKey
from zvonar.sip.ua import (
    AckReceived,
    AckTimeout,
    CancelRequested,
    Flow,
    IncomingRequest,
    RequestFailed,
    ResponseIn,
    UaEvent,
    UserAgent,
)
from zvonar.sip.uri import SipUri, parse_uri

__all__ = ["CallLeg", "EchoPbx", "echo_sdp"]

_SDP_ADDR = re.compile(rb"^(c=IN IP[46] |o=(?:\S+ ){3}IN IP[46] )(\S+)", re.MULTILINE)
_IN_DIALOG_OK = frozenset({"INFO", "UPDATE", "OPTIONS", "NOTIFY", "MESSAGE"})


def echo_sdp(offer: bytes, host: str) -> bytes:
    """The offer turned into an answer from `host`: same media lines, our address (RFC 3264
    allows answering with the offered codecs; no media actually flows from here)."""
    version = b"IP6 " if ":" in host else b"IP4 "
    addr = host.encode()

    def repl(m: re.Match[bytes]) -> bytes:
        return m.group(1)[:-4] + version + addr

    return _SDP_ADDR.sub(repl, offer)


def _response(
    request: SipRequest, status: int, to_tag: str, headers: Iterable[tuple[str, str]], body: bytes
) -> SipResponse:
    """make_response with an SDP body (serialize() writes Content-Length)."""
    if not body:
        return make_response(request, status, to_tag=to_tag, headers=headers)
    headers = (*headers, ("Content-Type", "application/sdp"))
    return make_response(request, status, to_tag=to_tag, headers=headers, body=body)


@dataclass(eq=False)
class CallLeg:
    """One call leg: our side of one dialog, as UAS (their INVITE) or UAC (our INVITE)."""

    call_id: str
    local_tag: str
    flow: Flow  # where requests of this dialog go
    kind: str  # "answer", "ring", "bridge", "originate"
    is_uac: bool
    dialog: Dialog | None = None
    invite: IncomingRequest | None = None  # UAS: their INVITE until we answer it finally
    request: SipRequest | None = None  # UAC: our initial INVITE
    invite_key: TransactionKey | None = None  # UAC: its client transaction
    peer: CallLeg | None = None  # the other leg of a bridged call
    local_sdp: bytes = b""
    cancelled: bool = False  # we sent CANCEL for our INVITE
    state: str = "early"  # early → confirmed → ended
    final_status: int | None = None
    answered: asyncio.Future[int] | None = None  # UAC legs from originate(): final status
    progress: list[tuple[int, bytes]] = field(default_factory=list)  # UAC: 1xx (status, body)
    remote_sdp: bytes = b""  # UAC: the body of the 2xx
    ack_sdp: bytes | None = None  # UAC with a delayed offer: the answer its ACK carries
    bye_before_ack: bool = False  # UAC: a 2xx gets our BYE first, then the ACK
    ended: asyncio.Future[str] | None = None  # … and why the call ended


class EchoPbx:
    """The application (`SipApplication`) of the test server. See the module docstring."""

    def __init__(self, ua: UserAgent, *, auth_invites: bool = False) -> None:
        self.ua = ua
        self.auth_invites = auth_invites
        # Sends what the core has queued (the runner's ``pump``), for what this app sends
        # outside an event's delivery; None: it waits for the runner's next event.
        self.flush: Callable[[], None] | None = None
        self._legs: dict[tuple[str, str], CallLeg] = {}  # (Call-ID, our tag) → leg
        self._by_server: dict[TransactionKey, CallLeg] = {}  # their pending INVITE → leg
        self._by_client: dict[TransactionKey, CallLeg] = {}  # our INVITEs → leg
        self.calls_answered = 0
        self.calls_ended = 0

    def leg_of(self, dialog: Dialog | None) -> CallLeg | None:
        if dialog is None:
            return None
        return self._legs.get((dialog.id.call_id, dialog.id.local_tag))

    # -- events -------------------------------------------------------------------------------

    def handle_event(self, event: UaEvent, now: float) -> None:
        if isinstance(event, IncomingRequest):
            if event.dialog is not None:
                self._in_dialog(event, event.dialog, now)
            elif event.request.method == "INVITE":
                self._new_call(event, now)
            elif event.request.method == "OPTIONS":
                self._reply(event, 200, now, (("Allow", self.ua.allow_header),))
            else:
                self._reply(event, 481 if event.request.to.tag else 404, now)
        elif isinstance(event, AckReceived):
            leg = self.leg_of(event.dialog)
            if leg is not None and leg.state == "early":
                leg.state = "confirmed"
        elif isinstance(event, ResponseIn):
            self._response(event, now)
        elif isinstance(event, CancelRequested):
            self._cancelled(event, now)
        elif isinstance(event, RequestFailed):
            self._failed(event, now)
        elif isinstance(event, AckTimeout):
            leg = self._legs.get((event.response.call_id, event.response.to.tag or ""))
            if leg is not None:
                self._hangup(leg, now, "ack timeout")

    # -- their requests -----------------------------------------------------------------------

    def _reply(
        self,
        inc: IncomingRequest,
        status: int,
        now: float,
        headers: Iterable[tuple[str, str]] = (),
        *,
        tag: str | None = None,
        body: bytes = b"",
    ) -> None:
        resp = _response(inc.request, status, tag or self.ua.token(), headers, body)
        self.ua.respond(inc, resp, now)

    def _new_call(self, inc: IncomingRequest, now: float) -> None:
        req = inc.request
        if self.auth_invites and self.ua.authenticate(inc, now) is None:
            return  # 407 sent (§22.3)
        leg = CallLeg(req.call_id, self.ua.token(), inc.flow, "answer", False, invite=inc)
        user = req.uri.user if isinstance(req.uri, SipUri) else None
        if user == "plain" and b"RTP/SAVP" in req.body:
            self._reply(inc, 488, now, tag=leg.local_tag)
        elif user in ("answer", "plain"):
            host = self.ua.local_for(inc.flow)[0]
            leg.local_sdp = echo_sdp(req.body, host) if req.body else b""
            self._add(leg)
            self._answer(leg, 200, now, leg.local_sdp)
        elif user == "busy":
            self._reply(inc, 486, now, tag=leg.local_tag)
        elif user == "overloaded":  # a carrier that cannot take the call
            self._reply(inc, 503, now, tag=leg.local_tag)
        elif user in ("ring", "early"):
            leg.kind = "ring"
            self._add(leg)
            self._by_server[inc.key] = leg
            if user == "early" and req.body:
                host = self.ua.local_for(inc.flow)[0]
                leg.local_sdp = echo_sdp(req.body, host)
                self._answer(leg, 183, now, leg.local_sdp)
            else:
                self._answer(leg, 180, now)
        else:
            bindings = self.ua.lookup(req.uri, now) if isinstance(req.uri, SipUri) else []
            if not bindings:
                self._reply(inc, 404, now, tag=leg.local_tag)
                return
            leg.kind = "bridge"
            self._add(leg)
            self._by_server[inc.key] = leg
            binding = bindings[0]  # highest q, most recent (LocationService order)
            out = self.originate(
                binding.contact,
                self.ua.binding_flow(binding),
                now,
                sdp=req.body,
                from_header=req.header("From"),
                to_header=req.header("To"),
                kind="bridge",
            )
            out.peer, leg.peer = leg, out

    def _add(self, leg: CallLeg) -> None:
        self._legs[(leg.call_id, leg.local_tag)] = leg

    def _answer(self, leg: CallLeg, status: int, now: float, body: bytes = b"") -> None:
        inc = leg.invite
        if inc is None:
            return
        headers = () if status == 100 else (("Contact", f"<{self.ua.contact_uri(inc.flow)}>"),)
        self.ua.respond(inc, _response(inc.request, status, leg.local_tag, headers, body), now)
        if status >= 200:
            leg.invite = None
            leg.final_status = status
            self._by_server.pop(inc.key, None)
            if status < 300:
                self.calls_answered += 1
            else:
                self._end(leg, "rejected")

    def _in_dialog(self, inc: IncomingRequest, dialog: Dialog, now: float) -> None:
        method = inc.request.method
        leg = self.leg_of(dialog)
        tag = dialog.id.local_tag
        if method == "BYE":
            self._reply(inc, 200, now, tag=tag)  # §15.1.2
            if leg is not None:
                self._end(leg, "bye")
                if leg.peer is not None:
                    self._hangup(leg.peer, now, "bye")
        elif method == "INVITE":  # a re-INVITE: keep the media as it is (our last SDP)
            contact = (("Contact", f"<{self.ua.contact_uri(inc.flow)}>"),)
            sdp = leg.local_sdp if leg is not None else b""
            self._reply(inc, 200, now, contact, tag=tag, body=sdp)
        elif method in _IN_DIALOG_OK:
            self._reply(inc, 200, now, tag=tag)
        else:
            self._reply(inc, 405, now, (("Allow", self.ua.allow_header),), tag=tag)

    def _cancelled(self, event: CancelRequested, now: float) -> None:
        leg = self._by_server.pop(event.key, None)
        if leg is None or leg.invite is None:
            return
        inc, leg.invite = leg.invite, None
        self.ua.respond(event, make_response(inc.request, 487, to_tag=leg.local_tag), now)
        leg.final_status = 487
        self._end(leg, "cancelled")
        peer = leg.peer
        if peer is not None:
            self._hangup(peer, now, "cancelled")

    # -- our requests -------------------------------------------------------------------------

    def originate(
        self,
        target: str,
        flow: Flow,
        now: float,
        *,
        sdp: bytes = b"",
        from_header: str | None = None,
        to_header: str | None = None,
        kind: str = "originate",
        delayed_offer: bool = False,
        answer_in_ack: bool = True,
        bye_before_ack: bool = False,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> CallLeg:
        """Send an INVITE to `target` (a URI) over `flow`; returns the new UAC leg.

        From/To default to zvonar@<our address> / the target; a bridge passes the caller's
        (the From tag is always ours: a new dialog). ``delayed_offer``: an INVITE without a
        body (§13.2.1), whose ACK answers the 2xx's offer with ``sdp`` (our default SDP if
        empty); ``answer_in_ack=False``: an ACK with no answer at all, as a broken peer's;
        ``bye_before_ack``: the 2xx is met with a BYE and only then the ACK, as Linphone turns
        down an offer it cannot take (§13.2.2.4 says ACK, then BYE; both orders reach a UAS).
        ``headers``: more header fields for the INVITE (a carrier's P-Asserted-Identity).
        """
        uri = parse_uri(target)
        host = self.ua.local_for(flow)[0]
        leg = CallLeg(f"{self.ua.token()}@zvonar", self.ua.token(), flow, kind, True)
        leg.local_sdp = sdp or _default_sdp(host)
        if kind == "originate":
            loop = asyncio.get_running_loop()
            leg.answered, leg.ended = loop.create_future(), loop.create_future()
        from_value = _strip_tag(from_header) if from_header else f"<sip:zvonar@{_host(host)}>"
        fields: list[tuple[str, str]] = [
            ("Via", self.ua.via_for(flow)),
            ("Max-Forwards", "70"),
            ("From", f"{from_value};tag={leg.local_tag}"),
            ("To", _strip_tag(to_header) if to_header else f"<{uri}>"),
            ("Call-ID", leg.call_id),
            ("CSeq", "1 INVITE"),
            ("Contact", f"<{self.ua.contact_uri(flow)}>"),
            ("User-Agent", self.ua.user_agent),
            *headers,
        ]
        leg.bye_before_ack = bye_before_ack
        if delayed_offer:
            leg.ack_sdp = leg.local_sdp if answer_in_ack else b""
            leg.request = SipRequest("INVITE", uri, tuple(fields))
        else:
            fields.append(("Content-Type", "application/sdp"))
            leg.request = SipRequest("INVITE", uri, tuple(fields), leg.local_sdp)
        self._add(leg)
        leg.invite_key = self.ua.send_request(leg.request, flow, now)
        self._by_client[leg.invite_key] = leg
        return leg

    def hangup(self, leg: CallLeg, now: float) -> None:
        """End a call from our side: BYE if confirmed, CANCEL if still ringing."""
        self._hangup(leg, now, "local")

    def reinvite(self, leg: CallLeg, now: float) -> TransactionKey | None:
        """Send a re-INVITE with our current SDP (a session refresh)."""
        if leg.dialog is None or leg.state != "confirmed":
            return None
        request = self.ua.create_request(
            leg.dialog, "INVITE", leg.flow, body=leg.local_sdp, content_type="application/sdp"
        )
        key = self.ua.send_request(request, leg.flow, now)
        self._by_client[key] = leg
        return key

    def _hangup(self, leg: CallLeg, now: float, why: str) -> None:
        if leg.state == "ended":
            return
        if leg.dialog is not None and leg.state == "confirmed":
            bye = self.ua.create_request(leg.dialog, "BYE", leg.flow)
            self.ua.send_request(bye, leg.flow, now)
            self._end(leg, why)
        elif leg.is_uac and leg.invite_key is not None:
            if self.ua.cancel(leg.invite_key, leg.flow, now) is None:
                self._end(leg, why)  # nothing to cancel any more
            else:
                leg.cancelled = True  # the 487 ends it (or a 2xx crossing it, then BYE)
        elif leg.invite is not None:  # UAS, not answered yet
            inc, leg.invite = leg.invite, None
            self.ua.respond(inc, make_response(inc.request, 480, to_tag=leg.local_tag), now)
            self._end(leg, why)

    def _end(self, leg: CallLeg, why: str) -> None:
        if leg.state == "ended":
            return
        leg.state = "ended"
        self.calls_ended += 1
        self._legs.pop((leg.call_id, leg.local_tag), None)
        if leg.dialog is not None:
            self.ua.forget_dialog(leg.dialog)
        if leg.answered is not None and not leg.answered.done():
            leg.answered.set_result(leg.final_status or 0)
        if leg.ended is not None and not leg.ended.done():
            leg.ended.set_result(why)

    # -- responses to our requests ------------------------------------------------------------

    def _response(self, event: ResponseIn, now: float) -> None:
        resp = event.response
        leg = self._by_client.get(event.key) if event.key is not None else None
        if leg is None or resp.cseq.method != "INVITE":
            return
        status = resp.status
        if status >= 200 and event.key is not None:
            del self._by_client[event.key]
        if event.request is not leg.request:  # our re-INVITE
            if 200 <= status < 300 and leg.dialog is not None and event.request is not None:
                self.ua.send_ack(leg.dialog, event.request, leg.flow)
            return
        if status < 200:
            if status > 100:
                leg.progress.append((status, resp.body))
            if status > 100 and leg.peer is not None and leg.peer.invite is not None:
                self._answer(leg.peer, status, now, resp.body)  # relay 180/183
            return
        leg.final_status = status
        if status >= 300:
            self._end(leg, f"status {status}")
            peer = leg.peer
            if peer is not None and peer.invite is not None:
                self._answer(peer, status, now)
            return
        leg.dialog = event.dialog
        leg.remote_sdp = resp.body
        if leg.dialog is not None and leg.request is not None:
            if leg.bye_before_ack:
                self._bye_then_ack(leg, leg.dialog, leg.request, now)
                return
            self.ua.send_ack(leg.dialog, leg.request, leg.flow, leg.ack_sdp or b"")
        leg.state = "confirmed"
        if leg.cancelled:  # a 2xx crossed our CANCEL (§9.1): the call exists, end it
            self._hangup(leg, now, "cancelled")
            return
        if leg.answered is not None and not leg.answered.done():
            leg.answered.set_result(status)
        peer = leg.peer
        if peer is not None:
            if peer.invite is not None:
                peer.local_sdp = resp.body
                self._answer(peer, 200, now, resp.body)
            else:  # the caller gave up meanwhile
                self._hangup(leg, now, "caller gone")

    def _bye_then_ack(self, leg: CallLeg, dialog: Dialog, invite: SipRequest, now: float) -> None:
        """BYE now, the ACK once the BYE is on the wire (the runner sends stateless messages
        before its transactions' in one flush: ``flush`` is the runner's ``pump``)."""
        self.ua.send_request(self.ua.create_request(dialog, "BYE", leg.flow), leg.flow, now)

        def ack() -> None:
            self.ua.send_ack(dialog, invite, leg.flow, leg.ack_sdp or b"")
            if self.flush is not None:
                self.flush()

        asyncio.get_running_loop().call_soon(ack)
        self._end(leg, "bye before ack")

    def _failed(self, event: RequestFailed, now: float) -> None:
        leg = self._by_client.pop(event.key, None)
        if leg is None or event.request is not leg.request:
            return
        leg.final_status = event.status
        self._end(leg, f"failed {event.status}")
        peer = leg.peer
        if peer is not None and peer.invite is not None:
            self._answer(peer, 480 if event.status == 408 else 503, now)


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _strip_tag(value: str) -> str:
    """A From/To value without its tag parameter (the new dialog gets its own tags)."""
    return re.sub(r";\s*tag\s*=\s*[^;>\s]*", "", value, flags=re.IGNORECASE)


def _default_sdp(host: str) -> bytes:
    version = "IP6" if ":" in host else "IP4"
    return (
        "v=0\r\n"
        f"o=zvonar 1 1 IN {version} {host}\r\n"
        "s=-\r\n"
        f"c=IN {version} {host}\r\n"
        "t=0 0\r\n"
        "m=audio 40000 RTP/AVP 0 8\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:8 PCMA/8000\r\n"
        "a=sendrecv\r\n"
    ).encode()
