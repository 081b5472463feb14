"""Busy lamp fields and presence: phones watch colleagues' extensions (RFC 6665
SUBSCRIBE/NOTIFY with the dialog event package, RFC 4235, or the presence one, RFC 3856).

A BLF key of a desk phone or softphone subscribes to ``sip:<extension>@<our domain>`` with
``Event: dialog``. We answer 200 (which creates the subscription's dialog), NOTIFY the
extension's state at once and again whenever it changes: idle (no dialog), ringing (an early
dialog, direction recipient: the key blinks, and ``*8<ext>`` picks the call up,
pbx/features.py) and on a call (confirmed). Each NOTIFY is the full state. A softphone's
buddy list subscribes with ``Event: presence`` instead: a PIDF document (sip/pidf.py), open
while a phone of the colleague is registered, ``on-the-phone`` while they talk, ``busy`` (with
a note) while they are in do not disturb. A park key subscribes to a park slot,
``sip:*51@<our domain>`` (dialog package only): lit (confirmed, with the parked caller) while
a call waits there (calls/park.py).

Rules, in the order they are checked:

- an event package other than ``dialog`` and ``presence`` gets 489 Bad Event with
  ``Allow-Events`` (RFC 6665 §8.2.2): message waiting is not offered;
- only our phones subscribe: From in an account realm, digest (407 via the UA's challenger)
  with the From user as username, else 403 — as the INVITE gate (invite_auth.py);
- the target is an extension of the subscriber's own account, or one of its park slots
  with the dialog package, else 404: nobody watches another tenant;
- ``Accept``, when given, must take the package's body type (406);
- ``Expires``: default and most 3600 s (RFC 4235 §3.2, RFC 3856 §6.4); below 60 s (but not
  0) is 423 with ``Min-Expires``; 0 is a fetch: 200, then one NOTIFY that ends it
  (RFC 6665 §4.2.1.4);
- at most ``max_per_account`` subscriptions per account (503 ``Retry-After`` beyond).

In the dialog: a SUBSCRIBE refreshes (``Expires: 0`` ends it). One NOTIFY is in flight per
subscription at a time; a change meanwhile is sent once its final response comes, as the
latest state. A NOTIFY that fails (any final non-2xx, or no answer) ends the subscription
(RFC 6665 §4.2.2); so does its expiry, with a last NOTIFY ``terminated;reason=timeout``.

What a watched extension looks like, and following the calls for it, is pbx/lines.py; this
module keeps the subscriptions. The registrar tells presence (``devices_changed``: a binding
saved or removed; one that lapses unrenewed is seen within ``PRESENCE_SWEEP``). Changes are
gathered and sent once per loop turn. Nothing is kept while no one watches.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from zvonar.calls.events import (
    CallAnswered,
    CallEnded,
    CallRinging,
    CallStarted,
    CallTransferred,
    LegEnded,
)
from zvonar.calls.park import park_slot
from zvonar.calls.talking import Talking
from zvonar.core.bus import EventBus
from zvonar.core.events import Event
from zvonar.directory.events import EmployeeDndChanged
from zvonar.pbx.credentials import DirectoryCredentialStore, SipIdentity
from zvonar.pbx.lines import Forks, Lines, LineState, ParkedIn, ParkSlot, Watched
from zvonar.sip.body import media_type
from zvonar.sip.dialog import Dialog, DialogId
from zvonar.sip.dialog_info import DIALOG_INFO
from zvonar.sip.io.runner import SipApplication, SipRunner
from zvonar.sip.message import SipRequest, make_response
from zvonar.sip.pidf import PIDF
from zvonar.sip.transaction import TransactionKey
from zvonar.sip.ua import Flow, IncomingRequest, RequestFailed, ResponseIn, UaEvent
from zvonar.sip.uri import SipUri

__all__ = ["Blf", "BlfFront"]

log = logging.getLogger(__name__)

EVENT = "dialog"
PRESENCE = "presence"
BODY_TYPES = {EVENT: DIALOG_INFO, PRESENCE: PIDF}  # the packages we notify, and their bodies
ALLOW_EVENTS = ", ".join(BODY_TYPES)
DEFAULT_EXPIRES = 3600
MAX_EXPIRES = 3600
MIN_EXPIRES = 60
NOTIFY_PER_TURN = 32  # NOTIFYs built per loop turn; the rest wait for the next turn
# How often presence looks again at the watched employees' registrations: one that lapses
# without a REGISTER tells nobody (the registrar only reports saves and removals).
PRESENCE_SWEEP = 30.0


@dataclass(eq=False)
class _Sub:
    dialog: Dialog
    flow: Flow
    watcher: SipIdentity  # who subscribed
    watched: SipIdentity | ParkSlot  # the extension (or park slot) they watch
    entity: str  # the watched extension's address, as the subscriber named it
    host: str  # its domain
    expires_at: float
    package: str = EVENT
    version: int = 0
    in_flight: TransactionKey | None = None
    dirty: bool = False  # changed while a NOTIFY was in flight
    over: bool = False  # the terminating NOTIFY went out
    sent: LineState | None = None  # the state last notified
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)

    @property
    def key(self) -> Watched:
        watched = self.watched
        return watched.employee_id if isinstance(watched, SipIdentity) else watched


class Blf:
    """See the module docstring. ``front(app)`` puts it before the B2BUA on the runner;
    ``attach(bus)`` follows the calls; ``close()`` ends every subscription."""

    def __init__(
        self,
        runner: SipRunner,
        credentials: DirectoryCredentialStore,
        talking: Talking,
        *,
        max_per_account: int = 2000,
        forks: Forks | None = None,
        parked: ParkedIn | None = None,
    ) -> None:
        self.runner = runner
        self.ua = runner.ua
        self.ua.allow_events = tuple(BODY_TYPES)  # what OPTIONS answers say we notify
        self.credentials = credentials
        self.max_per_account = max_per_account
        self._subs: dict[DialogId, _Sub] = {}
        self._by_key: dict[TransactionKey, _Sub] = {}
        self._watching: dict[Watched, set[_Sub]] = {}  # watched employee/slot → subscriptions
        self._per_account: Counter[uuid.UUID] = Counter()
        # The watched extensions' state; a fork's SIP dialog (B2bua.fork_ids) for Replaces;
        # the call in a park slot (B2bua.parked_in).
        self.lines = Lines(
            self.ua, credentials, talking, self._watching, self._touch, forks, parked
        )
        self._touched: set[Watched] = set()  # employees and slots whose state may have changed
        self._due: dict[_Sub, None] = {}  # subscriptions to NOTIFY, in order (a queue)
        self._flush_handle: asyncio.Handle | None = None
        self._sweep: asyncio.TimerHandle | None = None  # presence's look at registrations

    # -- wiring ------------------------------------------------------------------------------

    def front(self, app: SipApplication) -> BlfFront:
        return BlfFront(self, app)

    def attach(self, bus: EventBus) -> Callable[[], None]:
        async def on_event(event: Event) -> None:
            self.lines.apply(event)

        async def on_dnd(event: Event) -> None:
            # After the credential store re-read the employee (it subscribed first).
            if isinstance(event, EmployeeDndChanged):
                self._touch(event.employee_id)

        kinds = (CallStarted, CallRinging, CallAnswered, CallTransferred, LegEnded, CallEnded)
        offs = [bus.subscribe(kind, on_event) for kind in kinds]
        offs.append(bus.subscribe(EmployeeDndChanged, on_dnd))

        def detach() -> None:
            for off in offs:
                off()

        return detach

    @property
    def count(self) -> int:
        return len(self._subs)

    @property
    def settled(self) -> bool:
        """No NOTIFY is waiting for its turn (tests, benchmarks)."""
        return self._flush_handle is None and not self._due and not self._touched

    def close(self) -> None:
        """End every subscription (a NOTIFY ``terminated;reason=deactivated`` each: the
        phones subscribe again at once, to whichever PBX answers then)."""
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        now = self.runner.loop.time()
        for sub in list(self._subs.values()):
            self._notify(sub, now, ending="deactivated")
            self._drop(sub)
        self.runner.pump()

    def owns(self, event: UaEvent) -> bool:
        if isinstance(event, IncomingRequest):
            return event.request.method == "SUBSCRIBE"
        if isinstance(event, ResponseIn):
            return event.key is not None and event.key in self._by_key
        if isinstance(event, RequestFailed):
            return event.key in self._by_key
        return False

    # -- SIP --------------------------------------------------------------------------------

    def handle_event(self, event: UaEvent, now: float) -> None:
        if isinstance(event, IncomingRequest):
            if event.dialog is None:
                self._subscribe(event, now)
            else:
                self._resubscribe(event, now)
        elif isinstance(event, ResponseIn):
            self._notified(event.key, event.response.status, now)
        elif isinstance(event, RequestFailed):
            self._notified(event.key, event.status, now)

    def _subscribe(self, inc: IncomingRequest, now: float) -> None:
        req = inc.request
        package = _event_package(req)
        if package not in BODY_TYPES:
            self.ua.reply(inc, 489, now, (("Allow-Events", ALLOW_EVENTS),))
            return
        from_uri = req.from_.uri
        if not isinstance(from_uri, SipUri) or not self.credentials.serves(from_uri.host):
            self.ua.reply(inc, 403, now)  # not one of our phones
            return
        user = self.ua.authenticate(inc, now)  # sends the 407 / refusal itself
        if user is None:
            return
        watcher = self.credentials.identity(user, from_uri.host)
        if watcher is None or (from_uri.user or "") != user:
            self.ua.reply(inc, 403, now)
            return
        uri = req.uri
        target = uri.user if isinstance(uri, SipUri) else None
        watched = _watched(self.credentials, watcher.account_id, target, package)
        if watched is None or not isinstance(uri, SipUri):
            self.ua.reply(inc, 404, now)
            return
        if not _accepts(req, BODY_TYPES[package]):
            self.ua.reply(inc, 406, now, (("Accept", BODY_TYPES[package]),))
            return
        expires = self._granted(inc, now)
        if expires is None:
            return
        if expires and self._per_account[watcher.account_id] >= self.max_per_account:
            self.ua.reply(inc, 503, now, (("Retry-After", "300"),))
            return
        tag = self.ua.token()
        headers = (
            ("Contact", f"<{self.ua.contact_uri(inc.flow)}>"),
            ("Expires", str(expires)),
        )
        ok = make_response(req, 200, to_tag=tag, headers=headers)
        self.ua.respond(inc, ok, now)
        dialog = self.ua.dialogs.get(DialogId(req.call_id, tag, req.from_.tag or ""))
        if dialog is None:  # the transaction no longer took the 200
            return
        name = watched.extension if isinstance(watched, SipIdentity) else watched.code
        entity = f"sip:{name}@{uri.host}"
        sub = _Sub(dialog, inc.flow, watcher, watched, entity, uri.host, now + expires, package)
        self._subs[dialog.id] = sub
        if expires == 0:  # a fetch: the state once, and over (RFC 6665 §4.2.1.4)
            self._notify(sub, now, ending="timeout")
            self._drop(sub)
            return
        self._per_account[watcher.account_id] += 1
        self._watching.setdefault(sub.key, set()).add(sub)
        self._arm(sub, expires)
        self._notify(sub, now)
        if package == PRESENCE and self._sweep is None:
            self._sweep = self.runner.loop.call_later(PRESENCE_SWEEP, self._look_again)

    def _resubscribe(self, inc: IncomingRequest, now: float) -> None:
        assert inc.dialog is not None
        sub = self._subs.get(inc.dialog.id)
        if sub is None or sub.over:
            self.ua.reply(inc, 481, now)
            return
        req = inc.request
        if _event_package(req) != sub.package:  # RFC 6665 §4.2.1: one package per dialog
            self.ua.reply(inc, 489, now, (("Allow-Events", ALLOW_EVENTS),))
            return
        expires = self._granted(inc, now)
        if expires is None:
            return
        sub.flow = inc.flow  # a phone behind NAT may come back on a new mapping
        self.ua.reply(inc, 200, now, (("Expires", str(expires)),))
        if expires == 0:
            self._notify(sub, now, ending="timeout")
            self._drop(sub)
            return
        sub.expires_at = now + expires
        self._arm(sub, expires)
        sub.sent = None  # RFC 6665 §4.2.1.2: a refresh is answered with a NOTIFY too
        self._notify(sub, now)

    def _granted(self, inc: IncomingRequest, now: float) -> int | None:
        """The duration granted for the ``Expires`` asked (the default without one, at most
        ``MAX_EXPIRES``); None once a malformed (400) or too brief (423) one is refused."""
        value = inc.request.header("Expires")
        if value is None:
            return DEFAULT_EXPIRES
        value = value.strip()
        if not value.isdigit() or len(value) > 10:
            self.ua.reply(inc, 400, now)
            return None
        asked = int(value)
        if 0 < asked < MIN_EXPIRES:
            self.ua.reply(inc, 423, now, (("Min-Expires", str(MIN_EXPIRES)),))
            return None
        return min(asked, MAX_EXPIRES)

    def _notified(self, key: TransactionKey | None, status: int, now: float) -> None:
        if key is None:
            return
        sub = self._by_key.get(key)
        if sub is None or status < 200:
            return
        del self._by_key[key]
        if sub.in_flight == key:
            sub.in_flight = None
        if sub.over:
            self._forget_dialog(sub)
            return
        if status >= 300:  # RFC 6665 §4.2.2: refused or unanswered: the subscription is over
            self._drop(sub)  # nothing in flight now: its dialog goes too
            return
        if sub.dirty:
            sub.dirty = False
            self._notify(sub, now)

    # -- NOTIFY -----------------------------------------------------------------------------

    def _notify(self, sub: _Sub, now: float, *, ending: str | None = None) -> None:
        """The extension's state to ``sub``, unless unchanged; ``ending``: the last NOTIFY,
        with that reason."""
        if sub.over:
            return
        state = self.lines.state(sub.package == PRESENCE, sub.watched, sub.host, now)
        if ending is None:
            if sub.in_flight is not None:
                sub.dirty = True
                return
            if state == sub.sent:
                return
            left = max(0, round(sub.expires_at - now))
            subscription_state = f"active;expires={left}"
        else:
            sub.over = True
            subscription_state = f"terminated;reason={ending}"
        body = Lines.body(sub.entity, sub.version, state)
        sub.version += 1
        sub.sent = state
        try:
            request = self.ua.create_request(
                sub.dialog,
                "NOTIFY",
                sub.flow,
                headers=(("Event", sub.package), ("Subscription-State", subscription_state)),
                body=body,
                content_type=BODY_TYPES[sub.package],
            )
            key = self.ua.send_request(request, sub.flow, now)
        except Exception:
            log.exception("BLF: NOTIFY to %s failed", sub.watcher.extension)
            self._drop(sub)  # nothing in flight: its dialog goes too
            return
        sub.in_flight = key
        self._by_key[key] = sub

    # -- bookkeeping ------------------------------------------------------------------------

    def _arm(self, sub: _Sub, seconds: float) -> None:
        if sub.timer is not None:
            sub.timer.cancel()
        sub.timer = self.runner.loop.call_later(seconds, self._expired, sub)

    def _expired(self, sub: _Sub) -> None:
        if sub.over or self._subs.get(sub.dialog.id) is not sub:
            return
        self._notify(sub, self.runner.loop.time(), ending="timeout")
        self._drop(sub)
        self.runner.pump()

    def _drop(self, sub: _Sub) -> None:
        """The subscription ends; its dialog goes once the last NOTIFY is answered."""
        if self._subs.pop(sub.dialog.id, None) is None:
            return
        self._due.pop(sub, None)
        if sub.timer is not None:
            sub.timer.cancel()
        watchers = self._watching.get(sub.key)
        if watchers is not None and sub in watchers:
            watchers.discard(sub)
            self._per_account[sub.watcher.account_id] -= 1
            if self._per_account[sub.watcher.account_id] <= 0:
                del self._per_account[sub.watcher.account_id]
            if not watchers:
                del self._watching[sub.key]
        if sub.in_flight is None:
            self._forget_dialog(sub)

    def _forget_dialog(self, sub: _Sub) -> None:
        if sub.in_flight is not None:
            self._by_key.pop(sub.in_flight, None)
            sub.in_flight = None
        self.ua.forget_dialog(sub.dialog)

    def _look_again(self) -> None:
        """Every ``PRESENCE_SWEEP`` s while anyone watches presence: a registration that
        lapsed closes it (a NOTIFY only where the state changed)."""
        self._sweep = None
        watched = [
            employee
            for employee, subs in self._watching.items()
            if any(s.package == PRESENCE for s in subs)
        ]
        for employee in watched:
            self._touch(employee)
        if watched:
            self._sweep = self.runner.loop.call_later(PRESENCE_SWEEP, self._look_again)

    def devices_changed(self, account_id: uuid.UUID) -> None:
        """A phone of the account registered or went away (pbx/location_sql.py): presence
        watchers of its employees may see them come or go."""
        for employee, subs in self._watching.items():
            if any(s.package == PRESENCE and s.watched.account_id == account_id for s in subs):
                self._touch(employee)

    def _touch(self, watched: Watched) -> None:
        if watched not in self._watching:
            return
        self._touched.add(watched)
        self._schedule()

    def _schedule(self) -> None:
        if self._flush_handle is None:
            # After every handler of this event ran (the Talking index among them).
            self._flush_handle = self.runner.loop.call_soon(self._flush)

    def _flush(self) -> None:
        """NOTIFY the watchers of what was touched, at most ``NOTIFY_PER_TURN`` per loop
        turn: a receptionist watched by hundreds of phones must not hold every call's
        signalling for the whole round (bench/bench_blf.py). Each gets the state as it is
        when its turn comes."""
        self._flush_handle = None
        for watched in self._touched:
            for sub in self._watching.get(watched, ()):
                self._due[sub] = None
        self._touched.clear()
        now = self.runner.loop.time()
        for _ in range(min(NOTIFY_PER_TURN, len(self._due))):
            sub = next(iter(self._due))
            del self._due[sub]
            if self._subs.get(sub.dialog.id) is sub:
                self._notify(sub, now)
        self.runner.pump()
        if self._due:
            self._schedule()


class BlfFront:
    """The runner's application: subscriptions and their NOTIFYs' answers to the BLF, the
    rest to the application behind it (the B2BUA)."""

    def __init__(self, blf: Blf, app: SipApplication) -> None:
        self.blf = blf
        self.app = app

    def handle_event(self, event: UaEvent, now: float) -> None:
        if self.blf.owns(event):
            try:
                self.blf.handle_event(event, now)
            except Exception:
                log.exception("BLF failed on %s", type(event).__name__)
            return
        self.app.handle_event(event, now)


def _watched(
    credentials: DirectoryCredentialStore, account_id: uuid.UUID, user: str | None, package: str
) -> SipIdentity | ParkSlot | None:
    """What a SUBSCRIBE's Request-URI user names in the account: an extension, or (for the
    dialog package) a park slot; None: nothing to watch (404)."""
    if not user:
        return None
    slot = park_slot(user)
    if slot is not None:
        return ParkSlot(account_id, slot) if package == EVENT else None
    return credentials.by_extension(account_id, user)


def _event_package(request: SipRequest) -> str:
    """The Event header's package (RFC 6665 §8.2.1: token, case-sensitive; params dropped)."""
    value = request.header("Event")
    return value.split(";", 1)[0].strip() if value else ""


def _accepts(request: SipRequest, body_type: str) -> bool:
    accept = request.header_values("Accept")
    if not accept:
        return True  # RFC 4235 §3.3, RFC 3856 §6.6: the package's default body type
    kinds = {media_type(part) for v in accept for part in v.split(",")}
    return bool(kinds & {body_type, "application/*", "*/*"})
