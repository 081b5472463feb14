"""Session timers (RFC 4028, option tag ``timer``) for the UA core, sans-IO.

Carriers' SBCs ask for a session timer in their INVITEs (``Session-Expires``, often with
``Require: timer``) and cut a call whose refreshes stop, or whose far end does not take
part: an INVITE that required ``timer`` used to get 420 — every call from such a trunk was
lost. The UA does the whole extension per dialog, so the call layer only hears
:class:`~zvonar.sip.ua.events.SessionExpired` when a session is dead:

- a request whose ``Session-Expires`` is below our minimum gets 422 with ``Min-SE`` when its
  sender supports timers (§9); when it does not, the interval is raised instead (the RFC's
  errata 1687: refusing would only fail the call);
- our 2xx to an INVITE or UPDATE that asked for a timer carries the negotiated
  ``Session-Expires`` and refresher (the request's choice; ``uac`` when its sender supports
  timers and left it to us; else ``uas``), with ``Require: timer`` when the refresher is
  the peer (§9);
- a 2xx to our INVITE or UPDATE with ``Session-Expires`` starts (or renews) the timer, we
  refreshing when it says ``refresher=uac`` (§7.2);
- the refresher — us — sends a refresh at half the interval (§10): UPDATE without a body
  when the peer allows UPDATE, else a re-INVITE with the session description we last sent
  (same version: no change, RFC 3264 §8). Its responses stay here; 408, 481 or no answer
  end the session, 491 and other failures are retried until the session would expire;
- a peer that should refresh and does not is given up ``min(32, interval/3)`` seconds
  before the expiry (§10), and the application told, so it sends BYE.

Any 2xx to an INVITE or UPDATE in the dialog, whichever side sent it, renews the timer. A
re-INVITE or UPDATE the application creates in such a dialog (``UserAgent.create_request``)
is a session refresh request too and carries the running interval and refresher (§7.4:
without them the peer's 2xx could turn the timer off, §9), with ``Supported: timer``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from zvonar.sip.dialog import Dialog, DialogId, DialogState
from zvonar.sip.message import SipMessage, SipRequest, SipResponse
from zvonar.sip.transaction import TransactionKey
from zvonar.sip.ua.edge import Headers
from zvonar.sip.ua.events import Flow, ResponseIn, SessionExpired

if TYPE_CHECKING:
    from zvonar.sip.ua import UserAgent

__all__ = [
    "MIN_SE",
    "REFRESHED",
    "TIMER",
    "Interval",
    "Session",
    "SessionTimers",
    "answer",
    "answered",
    "answered_by_us",
    "due",
    "parse_session_expires",
    "refresh_answered",
    "refresh_failed",
    "refusal",
    "stamp",
]

TIMER = "timer"
MIN_SE = 90  # §4/§5: the smallest interval a UA may insist on
REFRESHED = ("INVITE", "UPDATE")  # the methods that negotiate and refresh a timer
_GLARE_WAIT = 2.0  # a refresh that met a re-INVITE of the call layer (or a 491) waits


@dataclass(frozen=True, slots=True)
class Interval:
    """A ``Session-Expires`` value: delta-seconds and the refresher, relative to the
    transaction that carries it (``uac``: its sender; ``uas``: its answerer)."""

    seconds: int
    refresher: str | None


def parse_session_expires(value: str | None) -> Interval | None:
    """``Session-Expires: 1800;refresher=uac`` (§4); None when absent or unreadable."""
    if not value:
        return None
    head, _, params = value.partition(";")
    head = head.strip()
    if not head.isdigit() or len(head) > 10:
        return None
    refresher = None
    for param in params.split(";"):
        name, _, val = param.partition("=")
        if name.strip().lower() == "refresher" and val.strip().lower() in ("uac", "uas"):
            refresher = val.strip().lower()
    return Interval(int(head), refresher)


def supports_timer(message: SipMessage) -> bool:
    values = (*message.header_values("Supported"), *message.header_values("Require"))
    return any(v.lower() == TIMER for v in values)


def _allows_update(message: SipMessage) -> bool | None:
    allow = message.header_values("Allow")
    return any(v.upper() == "UPDATE" for v in allow) if allow else None


def _margin(interval: int) -> float:
    return min(32.0, interval / 3)  # §10: the non-refresher's BYE before the expiry


@dataclass(slots=True)
class Session:
    """One dialog's running timer."""

    dialog: Dialog
    flow: Flow
    interval: int
    we_refresh: bool
    expires_at: float
    next_at: float  # our next refresh (refresher) or when we give the peer up
    peer_update: bool  # the peer said it allows UPDATE: refresh without a body
    sdp: bytes  # the session description we last sent, for a re-INVITE refresh
    content_type: str | None
    refreshing: TransactionKey | None = None
    use_invite: bool = False  # the peer refused our UPDATE (405/501)

    def renew(self, interval: int, we_refresh: bool, now: float) -> None:
        self.interval, self.we_refresh = interval, we_refresh
        self.expires_at = now + interval
        self.next_at = now + interval / 2 if we_refresh else self.expires_at - _margin(interval)

    @property
    def deadline(self) -> float:
        """When the session is over: the expiry for the refresher, earlier for the other."""
        return self.expires_at if self.we_refresh else self.expires_at - _margin(self.interval)


class SessionTimers:
    """The UA's RFC 4028 state (see the module docstring). Owned by one ``UserAgent``."""

    def __init__(self, min_se: int = MIN_SE) -> None:
        self.min_se = min_se
        self.sessions: dict[DialogId, Session] = {}
        self.refreshes: dict[TransactionKey, DialogId] = {}  # our refreshes in flight
        self.refreshed = 0  # refreshes we sent that were answered 2xx
        self.expired = 0  # sessions given up (no refresh, or ours failed)

    def track(
        self,
        dialog: Dialog,
        flow: Flow,
        interval: int,
        we_refresh: bool,
        sdp: tuple[bytes, str | None],
        peer_update: bool | None,
        now: float,
    ) -> None:
        session = self.sessions.get(dialog.id)
        if session is None:
            session = self.sessions[dialog.id] = Session(
                dialog, flow, interval, we_refresh, 0.0, 0.0, bool(peer_update), *sdp
            )
        else:
            if sdp[0]:
                session.sdp, session.content_type = sdp
            if peer_update is not None:
                session.peer_update = peer_update
        session.renew(interval, we_refresh, now)

    def forget(self, dialog_id: DialogId) -> None:
        session = self.sessions.pop(dialog_id, None)
        if session is not None and session.refreshing is not None:
            self.refreshes.pop(session.refreshing, None)

    def next_deadline(self) -> float | None:
        if not self.sessions:
            return None
        return min(s.next_at for s in self.sessions.values())


# -- the UA's hooks ----------------------------------------------------------------------------


def stamp(
    timers: SessionTimers, dialog: Dialog, method: str, headers: tuple[tuple[str, str], ...]
) -> tuple[tuple[str, str], ...]:
    """The headers of an INVITE or UPDATE the application sends in ``dialog``: with the
    running timer's ``Session-Expires`` (refresher: whoever refreshes now; ``uac`` is us, the
    request's sender) and ``Supported: timer``, unless it has its own (§7.4)."""
    session = timers.sessions.get(dialog.id)
    if session is None or method not in REFRESHED:
        return headers
    names = {name.lower() for name, _ in headers}
    if "session-expires" in names or "x" in names:
        return headers
    refresher = "uac" if session.we_refresh else "uas"
    stamped = (*headers, ("Session-Expires", f"{session.interval};refresher={refresher}"))
    supported = [v for name, v in headers if name.lower() in ("supported", "k")]
    if not any(TIMER in (t.strip().lower() for t in v.split(",")) for v in supported):
        stamped = (*stamped, ("Supported", TIMER))
    return stamped


def refusal(ua: UserAgent, request: SipRequest) -> tuple[int, str, Headers] | None:
    """422 for an INVITE or UPDATE asking for a shorter interval than ours, when its sender
    can retry with a longer one (§9)."""
    asked = parse_session_expires(request.header("Session-Expires"))
    if asked is None or asked.seconds >= ua.sessions.min_se or not supports_timer(request):
        return None
    return 422, "Session Interval Too Small", (("Min-SE", str(ua.sessions.min_se)),)


def answer(
    ua: UserAgent, request: SipRequest, response: SipResponse
) -> tuple[SipResponse, Interval | None]:
    """Our 2xx to an INVITE or UPDATE, stamped with the negotiated timer when there is one
    (§9): the response to send and the interval to track once it is out."""
    timers = ua.sessions
    asked = parse_session_expires(request.header("Session-Expires"))
    dialog_id = DialogId(request.call_id, response.to.tag or "", request.from_.tag or "")
    session = timers.sessions.get(dialog_id)
    if asked is None and session is None:
        return response, None
    if asked is not None:
        seconds = max(asked.seconds, timers.min_se)  # errata 1687: raised, not refused
        refresher = asked.refresher or ("uac" if supports_timer(request) else "uas")
        if refresher == "uac" and not supports_timer(request):
            refresher = "uas"  # it cannot refresh what it does not support
    else:
        assert session is not None
        seconds = session.interval
        refresher = "uas" if session.we_refresh or not supports_timer(request) else "uac"
    stamped = response.with_header("Session-Expires", f"{seconds};refresher={refresher}")
    if refresher == "uac" and not any(
        v.lower() == TIMER for v in response.header_values("Require")
    ):
        stamped = stamped.adding_header("Require", TIMER)  # §9: the peer must refresh
    return stamped, Interval(seconds, refresher)


def answered_by_us(
    ua: UserAgent,
    dialog: Dialog,
    flow: Flow,
    request: SipRequest,
    response: SipResponse,
    negotiated: Interval,
    now: float,
) -> None:
    """Our stamped 2xx went out: the timer runs from now."""
    sdp = (response.body, response.header("Content-Type")) if response.body else (b"", None)
    ua.sessions.track(
        dialog,
        flow,
        negotiated.seconds,
        negotiated.refresher == "uas",
        sdp,
        _allows_update(request),
        now,
    )


def answered(ua: UserAgent, event: ResponseIn, now: float) -> None:
    """A 2xx to an INVITE or UPDATE the application sent: the peer's word on the timer
    (§7.2), or a refresh of the one running."""
    dialog, request, response = event.dialog, event.request, event.response
    if dialog is None or request is None:
        return
    timers = ua.sessions
    granted = parse_session_expires(response.header("Session-Expires"))
    session = timers.sessions.get(dialog.id)
    sdp = (request.body, request.header("Content-Type")) if request.body else (b"", None)
    if granted is not None:
        we_refresh = granted.refresher != "uas"  # §7.2: the UAS must say; uac if it did not
        seconds = max(granted.seconds, 1)
        timers.track(dialog, event.flow, seconds, we_refresh, sdp, _allows_update(response), now)
    elif session is not None:
        if session.we_refresh:  # we may go on refreshing on our own
            timers.track(dialog, event.flow, session.interval, True, sdp, None, now)
        else:  # §7.2: no Session-Expires in the 2xx, no session expiration
            timers.forget(dialog.id)


def due(ua: UserAgent, now: float) -> None:
    """Refreshes to send and sessions to give up, at ``now``."""
    timers = ua.sessions
    for dialog_id, session in list(timers.sessions.items()):
        if session.next_at > now:
            continue
        if session.dialog.state is DialogState.TERMINATED:
            timers.forget(dialog_id)
        elif now >= session.deadline:
            _expire(ua, session)
        elif session.we_refresh and session.refreshing is None:
            _refresh(ua, session, now)
        else:  # a refresh in flight: its outcome or the deadline decides
            session.next_at = session.deadline


def _refresh(ua: UserAgent, session: Session, now: float) -> None:
    dialog = session.dialog
    invite = (session.use_invite or not session.peer_update) and bool(session.sdp)
    if invite and dialog.pending_invite_out is not None:
        # The call layer's own re-INVITE is in flight: a second one would be glare.
        session.next_at = min(now + _GLARE_WAIT, session.deadline)
        return
    method = "INVITE" if invite else "UPDATE"
    headers = (
        ("Session-Expires", f"{session.interval};refresher=uac"),
        ("Supported", TIMER),
    )
    request = ua.create_request(
        dialog,
        method,
        session.flow,
        headers=headers,
        body=session.sdp if invite else b"",
        content_type=session.content_type if invite else None,
    )
    key = ua.send_request(request, session.flow, now)
    ua.sessions.refreshes[key] = dialog.id
    session.refreshing = key
    session.next_at = session.deadline


def _expire(ua: UserAgent, session: Session) -> None:
    ua.sessions.forget(session.dialog.id)
    ua.sessions.expired += 1
    ua.emit(SessionExpired(session.dialog, session.flow, session.interval))


def refresh_answered(ua: UserAgent, event: ResponseIn, now: float) -> None:
    """A response to one of our refreshes (never shown to the application)."""
    response = event.response
    if response.status < 200:
        return
    timers = ua.sessions
    dialog_id = timers.refreshes.pop(event.key) if event.key is not None else None
    session = timers.sessions.get(dialog_id) if dialog_id is not None else None
    if session is None:
        return
    session.refreshing = None
    status = response.status
    if status < 300:
        if response.cseq.method == "INVITE" and event.request is not None:
            ua.send_ack(session.dialog, event.request, event.flow)
        granted = parse_session_expires(response.header("Session-Expires"))
        seconds = granted.seconds if granted is not None else session.interval
        session.renew(max(seconds, 1), granted is None or granted.refresher != "uas", now)
        timers.refreshed += 1
        return
    if status in (408, 481):  # §10: the session is gone
        _expire(ua, session)
        return
    if status in (405, 501) and response.cseq.method == "UPDATE" and session.sdp:
        session.use_invite = True  # it takes no UPDATE after all: re-INVITE at once
        session.next_at = now
        return
    if status == 422:
        min_se = response.header("Min-SE") or ""
        head = min_se.split(";")[0].strip()
        if head.isdigit():
            session.interval = max(session.interval, int(head))
        session.next_at = now
        return
    # 491 and the rest: the session is still up (§10); try again before it would expire.
    session.next_at = min(now + max(_GLARE_WAIT, (session.deadline - now) / 2), session.deadline)


def refresh_failed(ua: UserAgent, key: TransactionKey) -> None:
    """Our refresh got no answer (timeout or transport): the session is over (§10)."""
    dialog_id = ua.sessions.refreshes.pop(key, None)
    session = ua.sessions.sessions.get(dialog_id) if dialog_id is not None else None
    if session is not None:
        _expire(ua, session)
