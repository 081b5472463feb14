"""Reliable provisional responses (RFC 3262, option tag ``100rel``) for the UA core, sans-IO.

Some carriers' SBCs send ``Require: 100rel`` in their INVITEs, or answer ours with reliable
18x (``Require: 100rel`` and ``RSeq``) and cancel the call when no PRACK comes. The UA does
both roles itself, so the application never sees a PRACK:

- UAC (:meth:`Reliable.provisional_in`): a reliable 1xx to our INVITE gets a PRACK in its
  early dialog (``RAck: <RSeq> <CSeq> INVITE``, §7.2). The first one may carry any RSeq;
  later ones must be exactly one higher, else they are retransmissions or out of order and
  are neither PRACKed nor passed on (§4). The PRACK's own responses stay in the UA.
- UAS (:meth:`Reliable.stamp` and friends): when the INVITE *requires* 100rel, every 1xx
  but 100 goes out reliably: ``Require: 100rel`` and ``RSeq`` (a random start, +1 each,
  §3), retransmitted at T1, 2·T1, … until its PRACK arrives, for at most 64·T1; a second
  reliable 1xx waits for the first one's PRACK, and so does a 2xx when the outstanding 1xx
  carried a session description (§3: the offer/answer must be settled first; a 2xx still
  queued when the UA gives up at 64·T1 goes out then — a caller that is gone will not ACK
  it, and the application hears AckTimeout). A PRACK that names no outstanding 1xx gets
  481 (§3). Where the INVITE only *supports* 100rel we keep plain provisionals (allowed).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from zvonar.sip.dialog import Dialog, DialogId
from zvonar.sip.message import SipMessage, SipRequest, SipResponse, make_response
from zvonar.sip.transaction import TransactionKey
from zvonar.sip.ua.events import CancelRequested, Flow, IncomingRequest

if TYPE_CHECKING:
    from zvonar.sip.ua import UserAgent

__all__ = [
    "REL",
    "Outstanding",
    "Reliable",
    "on_prack",
    "on_provisional",
    "outgoing",
    "requires_100rel",
    "retransmit",
    "sent",
]

REL = "100rel"


def requires_100rel(message: SipMessage) -> bool:
    return any(v.lower() == REL for v in message.header_values("Require"))


def _rack(value: str) -> tuple[int, int, str] | None:
    parts = value.split()
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    return int(parts[0]), int(parts[1]), parts[2].upper()


@dataclass
class Outstanding:
    """UAS: a reliable 1xx sent and not yet PRACKed, and the ones queued behind it (not yet
    stamped: each gets its RSeq when it goes out)."""

    incoming: IncomingRequest  # the INVITE, whose server transaction sends the 1xx again
    dialog_id: DialogId
    response: SipResponse
    rseq: int
    cseq: int
    interval: float
    next_at: float
    give_up_at: float
    queued: list[SipResponse] = field(default_factory=list)


class Reliable:
    """The UA's RFC 3262 state (see the module docstring). Owned by one ``UserAgent``."""

    def __init__(self, t1: float, rng: random.Random | None = None) -> None:
        self.t1 = t1
        self._rng = rng or random.Random()
        # UAC: the last RSeq PRACKed, per SIP Call-ID and early dialog (its remote tag).
        self._prack_seq: dict[str, dict[str, int]] = {}
        self.pracks: set[TransactionKey] = set()  # UAC: our PRACKs' client transactions
        self._out: dict[TransactionKey, Outstanding] = {}  # UAS: by the INVITE's transaction
        self._next_rseq: dict[TransactionKey, int] = {}
        self.gave_up = 0  # UAS: reliable 1xx never PRACKed within 64*T1

    # -- UAC ----------------------------------------------------------------------------------

    def provisional_in(self, dialog_id: DialogId, response: SipResponse) -> int | None:
        """A 1xx to our INVITE: the RSeq to PRACK, or None when it needs no PRACK (not
        reliable). Raises :class:`Stale` for a retransmitted or out-of-order one."""
        if not requires_100rel(response):
            return None
        raw = response.header("RSeq") or ""
        if not raw.strip().isdigit():
            raise Stale("a reliable provisional response without a valid RSeq")
        rseq = int(raw)
        seen = self._prack_seq.setdefault(dialog_id.call_id, {})
        last = seen.get(dialog_id.remote_tag)
        if last is not None and rseq != last + 1:
            raise Stale(f"RSeq {rseq} after {last}")
        seen[dialog_id.remote_tag] = rseq
        return rseq

    def invite_over(self, call_id: str) -> None:
        """Our INVITE got its final response (or its dialog is gone): no more to PRACK."""
        self._prack_seq.pop(call_id, None)

    # -- UAS ----------------------------------------------------------------------------------

    def stamp(self, invite_key: TransactionKey, response: SipResponse) -> SipResponse:
        """``response`` (a 1xx other than 100 to an INVITE that requires 100rel) made
        reliable: Require and the transaction's next RSeq."""
        rseq = self._next_rseq.get(invite_key)
        if rseq is None:
            rseq = self._rng.randint(1, 2**31 - 1)  # §7.1: below 2**31
        self._next_rseq[invite_key] = rseq + 1
        return response.adding_header("Require", REL).adding_header("RSeq", str(rseq))

    def busy(self, invite_key: TransactionKey) -> Outstanding | None:
        """The unacknowledged reliable 1xx of this INVITE, if any."""
        return self._out.get(invite_key)

    def sent(
        self, incoming: IncomingRequest, dialog_id: DialogId, response: SipResponse, now: float
    ) -> None:
        """A stamped 1xx went out: retransmit it until its PRACK."""
        rseq = int(response.header("RSeq") or 0)
        self._out[incoming.key] = Outstanding(
            incoming,
            dialog_id,
            response,
            rseq,
            response.cseq.seq,
            self.t1,
            now + self.t1,
            now + 64 * self.t1,
        )

    def prack_in(self, dialog_id: DialogId, prack: SipRequest) -> Outstanding | None:
        """A PRACK: the outstanding 1xx it acknowledges (no longer retransmitted), or None
        when it names none (§3: 481)."""
        rack = _rack(prack.header("RAck") or "")
        if rack is None:
            return None
        rseq, cseq, method = rack
        for key, out in self._out.items():
            if (out.dialog_id, out.rseq, out.cseq, method) == (dialog_id, rseq, cseq, "INVITE"):
                del self._out[key]
                return out
        return None

    def final_sent(self, invite_key: TransactionKey) -> None:
        """The INVITE got its final response: nothing provisional is pending any more."""
        self._out.pop(invite_key, None)
        self._next_rseq.pop(invite_key, None)

    def next_deadline(self) -> float | None:
        if not self._out:
            return None
        return min(out.next_at for out in self._out.values())

    def due(self, now: float) -> tuple[list[Outstanding], list[Outstanding]]:
        """The 1xx to send again now (their next retransmission scheduled), and those given
        up after 64*T1 (no longer retransmitted; what was queued behind them is theirs)."""
        again: list[Outstanding] = []
        given_up: list[Outstanding] = []
        for key, out in list(self._out.items()):
            if out.next_at > now:
                continue
            if now >= out.give_up_at:
                del self._out[key]
                self.gave_up += 1
                given_up.append(out)
                continue
            out.interval *= 2  # §3: doubling, no cap at T2 (unlike §17)
            out.next_at = min(now + out.interval, out.give_up_at)
            again.append(out)
        return again, given_up


class Stale(Exception):
    """A reliable 1xx already PRACKed, or out of order: dropped (RFC 3262 §4)."""


# -- the UA's hooks: what it does with a response or request where 100rel applies -------------


def outgoing(
    ua: UserAgent, incoming: IncomingRequest | CancelRequested, response: SipResponse
) -> SipResponse | None:
    """A response to an INVITE about to go out: made reliable when the INVITE requires it
    (None: queued behind the outstanding one, §3); a final one ends what was pending."""
    reliable, key = ua.reliable, incoming.key
    if response.status >= 200:
        pending = reliable.busy(key)
        if pending is not None and response.status < 300 and pending.response.body:
            pending.queued.append(response)  # §3: a 2xx waits for the SDP 1xx's PRACK
            return None
        reliable.final_sent(key)
        return response
    if not isinstance(incoming, IncomingRequest) or response.status == 100:
        return response
    if not requires_100rel(incoming.request):
        return response
    pending = reliable.busy(key)
    if pending is not None:
        pending.queued.append(response)
        return None
    return reliable.stamp(key, response)


def sent(
    ua: UserAgent,
    incoming: IncomingRequest | CancelRequested,
    dialog: Dialog,
    response: SipResponse,
    now: float,
) -> None:
    """A response went out in ``dialog``: a reliable 1xx is retransmitted until its PRACK."""
    reliable_1xx = 100 < response.status < 200 and requires_100rel(response)
    if reliable_1xx and isinstance(incoming, IncomingRequest):
        ua.reliable.sent(incoming, dialog.id, response, now)


def on_prack(ua: UserAgent, incoming: IncomingRequest, dialog_id: DialogId, now: float) -> None:
    """A PRACK is the UA's own: 200 when it acknowledges our outstanding reliable 1xx (then
    the next one queued goes out), 481 when it names none."""
    acked = ua.reliable.prack_in(dialog_id, incoming.request)
    ua.respond(incoming, make_response(incoming.request, 200 if acked else 481), now)
    if acked is not None and acked.queued:
        following, *rest = acked.queued
        ua.respond(acked.incoming, following, now)
        pending = ua.reliable.busy(acked.incoming.key)
        if pending is not None:
            pending.queued.extend(rest)


def retransmit(ua: UserAgent, now: float) -> None:
    """Retransmit the reliable 1xx due now; for those given up at 64·T1, send the 2xx that
    waited behind them (the 1xx queued with it are moot)."""
    again, given_up = ua.reliable.due(now)
    for out in again:
        ua.layer(out.incoming.flow.transport).send_response(out.response, now)
    for out in given_up:
        for response in out.queued:
            if response.status >= 200:
                ua.respond(out.incoming, response, now)


def on_provisional(
    ua: UserAgent, dialog: Dialog, response: SipResponse, flow: Flow, now: float
) -> bool:
    """A 1xx to our INVITE: PRACKed if reliable (RFC 3262 §4); False to drop it (a
    retransmission or out of order)."""
    reliable = ua.reliable
    try:
        rseq = reliable.provisional_in(dialog.id, response)
    except Stale:
        ua.counters.dropped_malformed += 1
        return False
    if rseq is not None:
        rack = f"{rseq} {response.cseq.seq} INVITE"
        prack = ua.create_request(dialog, "PRACK", flow, headers=(("RAck", rack),))
        reliable.pracks.add(ua.send_request(prack, flow, now))
    return True
