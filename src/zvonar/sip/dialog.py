"""Dialogs (RFC 3261 §12), target refresh (§12.2, RFC 3311 UPDATE) and glare (§14).

Sans-IO and clock-free like the transaction layer: the TU feeds the DialogLayer the
requests it receives, the responses it sends and the responses it receives; the layer
keeps each dialog's state (id, CSeqs, route set, remote target) and builds in-dialog
requests and ACKs for 2xx. Randomness (tags, branches, glare back-off) is injected.
"""

from __future__ import annotations

import enum
import random
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final

from zvonar.sip.errors import DialogError
from zvonar.sip.headers import NameAddr, Via
from zvonar.sip.message import SipRequest, SipResponse, make_response
from zvonar.sip.uri import SipUri, Uri

__all__ = [
    "DIALOG_TABLE",
    "Dialog",
    "DialogId",
    "DialogInput",
    "DialogLayer",
    "DialogRole",
    "DialogState",
    "RequestCheck",
]

MAGIC_COOKIE: Final = "z9hG4bK"
# §12.2: requests that refresh the remote target; INVITE and UPDATE (RFC 3311 §5.1) also
# carry offers for glare detection.
TARGET_REFRESH: Final = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})
# Requests whose 2xx we send creates a UAS dialog: INVITE (§12.1.1) and SUBSCRIBE (RFC 6665
# §4.2.1: the notifier's dialog, in which its NOTIFYs go).
_CREATING: Final = frozenset({"INVITE", "SUBSCRIBE"})


class DialogRole(enum.Enum):
    UAC = "UAC"
    UAS = "UAS"


class DialogState(enum.Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class DialogInput(enum.Enum):
    PROVISIONAL = "1xx with tag"  # §12.1: creates or refreshes an early dialog
    SUCCESS = "2xx"  # §12.1, §13.2.2.4: confirms
    FAILURE = "non-2xx final to the initial INVITE"  # early dialogs end (§12.3)
    BYE = "BYE"  # §15
    GONE = "481/408 to an in-dialog request"  # §12.2.1.2


_S = DialogState
_I = DialogInput
# Inputs absent from the table do not change the dialog (a late 1xx on a confirmed
# dialog, a failure after the 2xx, …).
DIALOG_TABLE: Final[Mapping[tuple[DialogState, DialogInput], DialogState]] = {
    (_S.EARLY, _I.PROVISIONAL): _S.EARLY,
    (_S.EARLY, _I.SUCCESS): _S.CONFIRMED,
    (_S.EARLY, _I.FAILURE): _S.TERMINATED,
    (_S.EARLY, _I.BYE): _S.TERMINATED,
    (_S.EARLY, _I.GONE): _S.TERMINATED,
    (_S.CONFIRMED, _I.SUCCESS): _S.CONFIRMED,
    (_S.CONFIRMED, _I.BYE): _S.TERMINATED,
    (_S.CONFIRMED, _I.GONE): _S.TERMINATED,
}


@dataclass(frozen=True, slots=True)
class DialogId:
    """§12: Call-ID, local tag, remote tag (seen from this UA)."""

    call_id: str
    local_tag: str
    remote_tag: str


@dataclass(slots=True)
class Dialog:
    """The state of one dialog (§12.1.1 UAS, §12.1.2 UAC)."""

    id: DialogId
    role: DialogRole
    state: DialogState
    local_uri: NameAddr  # From (UAC) / To (UAS) of the creating request, without tag
    remote_uri: NameAddr
    remote_target: Uri
    route_set: tuple[NameAddr, ...]
    local_seq: int | None
    remote_seq: int | None
    invite_seq: int  # CSeq number of the creating request
    secure: bool = False
    local_contact: NameAddr | None = None
    call_id_owner: bool = False  # §14.1: we generated the Call-ID (we were the UAC)
    pending_invite_out: int | None = None  # CSeq of our re-INVITE awaiting a final
    pending_invite_in: int | None = None  # CSeq of their INVITE we have not answered
    pending_update_out: int | None = None  # our UPDATE with an offer awaiting a final
    pending_update_in: int | None = None
    last_ack: SipRequest | None = None  # re-sent as is for 2xx retransmissions (§13.2.2.4)
    history: list[DialogState] = field(default_factory=list)

    def fire(self, inp: DialogInput) -> bool:
        """Apply one input of DIALOG_TABLE; False when the state does not take it."""
        nxt = DIALOG_TABLE.get((self.state, inp))
        if nxt is None:
            return False
        if nxt is not self.state:
            self.history.append(self.state)
        self.state = nxt
        return True

    def request_target(self) -> tuple[Uri, list[NameAddr]]:
        """§12.2.1.1: the Request-URI and Route header values for a request in this dialog."""
        if not self.route_set:
            return self.remote_target, []
        first = self.route_set[0].uri
        if isinstance(first, SipUri) and first.has_param("lr"):
            return self.remote_target, list(self.route_set)  # loose routing (RFC 3261)
        # Strict routing (RFC 2543 proxies): the first route becomes the Request-URI (less
        # params not allowed there, §19.1.1 Table 1), the remote target the last Route.
        ruri: Uri = first
        if isinstance(first, SipUri):
            ruri = first.without_headers().without_params("method")
        return ruri, [*self.route_set[1:], NameAddr(None, self.remote_target)]

    def build_request(
        self,
        method: str,
        via: Via,
        *,
        cseq: int,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> SipRequest:
        """A request within the dialog (§12.2.1.1). `via` must carry its branch."""
        if not (via.branch or "").startswith(MAGIC_COOKIE):
            raise DialogError("the Via of an in-dialog request needs a z9hG4bK branch", 500)
        ruri, routes = self.request_target()
        out: list[tuple[str, str]] = [
            ("Via", str(via)),
            ("Max-Forwards", "70"),
            ("From", str(self.local_uri.with_tag(self.id.local_tag))),
            ("To", str(self.remote_uri.with_tag(self.id.remote_tag))),
            ("Call-ID", self.id.call_id),
            ("CSeq", f"{cseq} {method}"),
        ]
        out.extend(("Route", str(r)) for r in routes)
        if method in TARGET_REFRESH and self.local_contact is not None:
            out.append(("Contact", str(self.local_contact)))  # §12.2.1.1 target refresh
        out.extend(headers)
        request = SipRequest(method, ruri, tuple(out))
        if body or content_type is not None:
            request = request.with_body(body, content_type)
        return request


@dataclass(frozen=True, slots=True)
class RequestCheck:
    """What the dialog layer says about a received request.

    `response` set: send it and stop (481, 500 out of order / with Retry-After, 491).
    `dialog` None with no response: an out-of-dialog request for the TU.
    """

    dialog: Dialog | None
    response: SipResponse | None = None

    @property
    def rejected(self) -> bool:
        return self.response is not None


def _without_tag(addr: NameAddr) -> NameAddr:
    params = tuple(p for p in addr.params if p[0].lower() != "tag")
    return NameAddr(addr.display_name, addr.uri, params)


def _has_offer(msg: SipRequest) -> bool:
    return bool(msg.body)


def _default_token() -> str:
    return secrets.token_hex(8)


class DialogLayer:
    """All dialogs of one UA, keyed by DialogId."""

    def __init__(
        self,
        *,
        token: Callable[[], str] = _default_token,
        rng: random.Random | None = None,
    ) -> None:
        self._token = token
        self._rng = rng or random.Random()  # back-off jitter, not a secret
        self._dialogs: dict[DialogId, Dialog] = {}
        self._by_local: dict[tuple[str, str], set[DialogId]] = {}

    def __len__(self) -> int:
        return len(self._dialogs)

    def __iter__(self) -> Iterator[Dialog]:
        return iter(list(self._dialogs.values()))

    def get(self, dialog_id: DialogId) -> Dialog | None:
        return self._dialogs.get(dialog_id)

    def find_for_response(self, response: SipResponse) -> Dialog | None:
        """The dialog of a response to a request we sent (From tag local, To tag remote),
        e.g. for a 2xx retransmission arriving after its transaction ended."""
        local, remote = response.from_.tag, response.to.tag
        if local is None or remote is None:
            return None
        return self._dialogs.get(DialogId(response.call_id, local, remote))

    def new_tag(self) -> str:
        """A To/From tag (§19.3: at least 32 bits of randomness)."""
        return self._token()

    def new_branch(self) -> str:
        return MAGIC_COOKIE + self._token()

    def glare_backoff(self, dialog: Dialog) -> float:
        """§14.1: wait before retrying a re-INVITE that got 491, in units of 10 ms.

        2.1–4 s if we own the Call-ID (we sent the initial INVITE), else 0–2 s.
        """
        if dialog.call_id_owner:
            return self._rng.randint(210, 400) / 100
        return self._rng.randint(0, 200) / 100

    def terminate(self, dialog_id: DialogId) -> Dialog | None:
        dialog = self._dialogs.pop(dialog_id, None)
        if dialog is not None:
            if dialog.state is not _S.TERMINATED:
                dialog.history.append(dialog.state)
            dialog.state = _S.TERMINATED
            ids = self._by_local.get((dialog_id.call_id, dialog_id.local_tag))
            if ids is not None:
                ids.discard(dialog_id)
                if not ids:
                    del self._by_local[(dialog_id.call_id, dialog_id.local_tag)]
        return dialog

    # -- dialog creation ------------------------------------------------------------------

    def _add(self, dialog: Dialog) -> Dialog:
        self._dialogs[dialog.id] = dialog
        self._by_local.setdefault((dialog.id.call_id, dialog.id.local_tag), set()).add(dialog.id)
        return dialog

    def _apply(self, dialog: Dialog, inp: DialogInput) -> Dialog:
        dialog.fire(inp)
        if dialog.state is _S.TERMINATED:
            self.terminate(dialog.id)
        return dialog

    @staticmethod
    def _secure(request: SipRequest) -> bool:
        """§12.1.1/§12.1.2: SIPS Request-URI over TLS (seen from the top Via)."""
        return request.uri.scheme == "sips" and request.top_via.transport == "TLS"

    def _uac_dialog(self, request: SipRequest, response: SipResponse, tag: str) -> Dialog:
        local_tag = request.from_.tag or ""
        contacts = response.contacts
        return Dialog(
            id=DialogId(request.call_id, local_tag, tag),
            role=DialogRole.UAC,
            state=_S.EARLY,
            local_uri=_without_tag(request.from_),
            remote_uri=_without_tag(request.to),
            # §12.1.2: the Contact of the response; a 2xx without one keeps the R-URI.
            remote_target=contacts[0].uri if contacts else request.uri,
            route_set=tuple(reversed(response.record_routes)),  # §12.1.2: reversed
            local_seq=request.cseq.seq,
            remote_seq=None,
            invite_seq=request.cseq.seq,
            secure=self._secure(request),
            local_contact=request.contacts[0] if request.contacts else None,
            call_id_owner=True,
        )

    def _uas_dialog(self, request: SipRequest, response: SipResponse, tag: str) -> Dialog:
        contacts = request.contacts
        return Dialog(
            id=DialogId(request.call_id, tag, request.from_.tag or ""),
            role=DialogRole.UAS,
            state=_S.EARLY,
            local_uri=_without_tag(request.to),
            remote_uri=_without_tag(request.from_),
            remote_target=contacts[0].uri if contacts else request.from_.uri,
            route_set=tuple(request.record_routes),  # §12.1.1: in order
            local_seq=None,  # §12.1.1: empty until we send a request
            remote_seq=request.cseq.seq,
            invite_seq=request.cseq.seq,
            secure=self._secure(request),
            local_contact=response.contacts[0] if response.contacts else None,
            call_id_owner=False,
        )

    # -- UAS side: requests in, responses out ---------------------------------------------

    def on_request(self, request: SipRequest) -> RequestCheck:
        """Check a received request against the dialogs (§12.2.2, §14.2, RFC 3311 §5.2).

        Feed every request (ACKs for 2xx included). A request without a To tag is outside
        any dialog: RequestCheck(None) (an INVITE without Contact gets 400, §8.1.1.8).
        """
        to_tag = request.to.tag
        if to_tag is None:
            if request.method == "INVITE" and not request.contacts:
                resp = make_response(request, 400, "Missing Contact", to_tag=self.new_tag())
                return RequestCheck(None, resp)
            return RequestCheck(None)
        dialog = self._dialogs.get(DialogId(request.call_id, to_tag, request.from_.tag or ""))
        if dialog is None:
            if request.method == "ACK":
                return RequestCheck(None)  # never answered (§17)
            return RequestCheck(None, make_response(request, 481))  # §12.2.2
        method, seq = request.method, request.cseq.seq
        if method in ("ACK", "CANCEL"):
            return RequestCheck(dialog)  # same CSeq as their INVITE; no ordering check
        if dialog.remote_seq is not None and seq < dialog.remote_seq:
            return RequestCheck(dialog, make_response(request, 500, "Out Of Order CSeq"))
        offer = _has_offer(request)
        if method == "INVITE" or (method == "UPDATE" and offer):
            ours_pending = dialog.pending_invite_out is not None or (
                method == "UPDATE" and dialog.pending_update_out is not None
            )
            if ours_pending:
                return RequestCheck(dialog, make_response(request, 491))  # §14.2 glare
            if dialog.pending_invite_in is not None or dialog.pending_update_in is not None:
                # §14.2 / RFC 3311 §5.2: their earlier offer is unanswered → 500 Retry-After.
                retry = str(self._rng.randint(0, 10))
                resp = make_response(request, 500, headers=[("Retry-After", retry)])
                return RequestCheck(dialog, resp)
        dialog.remote_seq = seq
        if method == "INVITE":
            dialog.pending_invite_in = seq
        elif method == "UPDATE" and offer:
            dialog.pending_update_in = seq
        if method in TARGET_REFRESH and request.contacts:
            dialog.remote_target = request.contacts[0].uri  # §12.2.2 target refresh
        if method == "BYE":
            self._apply(dialog, _I.BYE)  # §15.1.2: the TU answers 200
        return RequestCheck(dialog)

    def on_response_sent(self, request: SipRequest, response: SipResponse) -> Dialog | None:
        """Record a response we send: creates UAS dialogs (§12.1.1), ends glare windows."""
        tag = response.to.tag
        if tag is None:
            return None
        if request.to.tag is None:
            if request.method not in _CREATING or response.status == 100:
                return None
            dialog_id = DialogId(request.call_id, tag, request.from_.tag or "")
            dialog = self._dialogs.get(dialog_id)
            if dialog is None:
                if response.status >= 300:
                    return None
                dialog = self._add(self._uas_dialog(request, response, tag))
            if response.status < 200:
                return self._apply(dialog, _I.PROVISIONAL)
            if response.status < 300:
                if response.contacts:
                    dialog.local_contact = response.contacts[0]
                return self._apply(dialog, _I.SUCCESS)
            return self._apply(dialog, _I.FAILURE)
        dialog = self._dialogs.get(DialogId(request.call_id, tag, request.from_.tag or ""))
        if dialog is None or response.status < 200:
            return dialog
        if request.method == "INVITE" and dialog.pending_invite_in == request.cseq.seq:
            dialog.pending_invite_in = None
        if request.method == "UPDATE" and dialog.pending_update_in == request.cseq.seq:
            dialog.pending_update_in = None
        return dialog

    # -- UAC side: requests out, responses in ---------------------------------------------

    def on_response(self, request: SipRequest, response: SipResponse) -> Dialog | None:
        """Feed each response to a request we sent (ResponseReceived.request).

        Creates UAC dialogs from 1xx-with-tag / 2xx to an INVITE (§12.1.2, forks give one
        dialog per To tag), confirms early ones and recomputes their route set from the 2xx
        (§13.2.2.4), ends early dialogs on a non-2xx final, refreshes the remote target on a
        2xx to a target refresh (§12.2.1.2) and ends the dialog on 481/408 (§12.2.1.2).
        """
        tag = response.to.tag
        local_tag = request.from_.tag or ""
        status = response.status
        if request.to.tag is None:
            if request.method != "INVITE":
                return None
            if status >= 300:
                for dialog_id in list(self._by_local.get((request.call_id, local_tag), ())):
                    early = self._dialogs[dialog_id]
                    if early.state is _S.EARLY and early.invite_seq == request.cseq.seq:
                        self._apply(early, _I.FAILURE)  # §13.2.2.3
                return None
            if tag is None or status == 100:
                return None
            dialog = self._dialogs.get(DialogId(request.call_id, local_tag, tag))
            if dialog is None:
                return self._apply(
                    self._add(self._uac_dialog(request, response, tag)),
                    _I.PROVISIONAL if status < 200 else _I.SUCCESS,
                )
            if status < 200:
                if response.contacts:
                    dialog.remote_target = response.contacts[0].uri
                return self._apply(dialog, _I.PROVISIONAL)
            if dialog.state is _S.EARLY:
                fresh = self._uac_dialog(request, response, tag)
                dialog.route_set = fresh.route_set  # §13.2.2.4: recomputed from the 2xx
                dialog.remote_target = fresh.remote_target
            return self._apply(dialog, _I.SUCCESS)
        dialog = self._dialogs.get(DialogId(request.call_id, local_tag, request.to.tag or ""))
        if dialog is None or status < 200:
            return dialog
        seq = request.cseq.seq
        if request.method == "INVITE" and dialog.pending_invite_out == seq:
            dialog.pending_invite_out = None
        if request.method == "UPDATE" and dialog.pending_update_out == seq:
            dialog.pending_update_out = None
        if status in (481, 408):
            return self._apply(dialog, _I.GONE)
        if request.method == "BYE":
            return self._apply(dialog, _I.BYE)
        if status < 300 and request.method in TARGET_REFRESH and response.contacts:
            dialog.remote_target = response.contacts[0].uri  # §12.2.1.2
        return dialog

    def on_timeout(self, request: SipRequest) -> Dialog | None:
        """A request we sent in a dialog got no response (TransactionTimeout or a transport
        error): §12.2.1.2 treats it like 408, which ends the dialog."""
        return self.on_response(request, make_response(request, 408))

    def create_request(
        self,
        dialog: Dialog,
        method: str,
        via: Via,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> SipRequest:
        """Build the next request in `dialog` (§12.2.1.1): CSeq is local_seq + 1.

        A Via without a branch gets a fresh one. Use create_ack for ACK; CANCEL is built
        from the INVITE (transaction.build_cancel).
        """
        if method in ("ACK", "CANCEL"):
            raise DialogError(f"{method} is not built with create_request", 500)
        if dialog.local_seq is None:
            dialog.local_seq = self._rng.randint(1, 2**20)  # §8.1.1.5: below 2**31
        dialog.local_seq += 1
        seq = dialog.local_seq
        request = dialog.build_request(
            method,
            self._branched(via),
            cseq=seq,
            headers=headers,
            body=body,
            content_type=content_type,
        )
        if method == "INVITE":
            dialog.pending_invite_out = seq
        elif method == "UPDATE" and body:
            dialog.pending_update_out = seq
        return request

    def create_ack(
        self, dialog: Dialog, invite: SipRequest, via: Via, *, sdp: bytes = b""
    ) -> SipRequest:
        """The ACK for a 2xx (§13.2.2.4): a new branch, the INVITE's CSeq number, its
        credentials; built like any in-dialog request otherwise. Sent outside transactions.
        ``sdp``: the answer to an offer the 2xx made (an INVITE without one, §13.2.1).

        Asked again for the same INVITE (a 2xx retransmission) it returns the same ACK,
        which is what must be re-sent.
        """
        last = dialog.last_ack
        if last is not None and last.cseq.seq == invite.cseq.seq:
            return last
        creds = [
            (name, value)
            for name, value in invite.headers
            if name.lower() in ("authorization", "proxy-authorization")
        ]
        dialog.last_ack = dialog.build_request(
            "ACK",
            self._branched(via),
            cseq=invite.cseq.seq,
            headers=creds,
            body=sdp,
            content_type="application/sdp" if sdp else None,
        )
        return dialog.last_ack

    def _branched(self, via: Via) -> Via:
        if via.branch:
            return via
        return via.with_params(branch=self.new_branch())
