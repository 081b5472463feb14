"""The PBX's resolver (``calls.plan.Resolver``): who rings for each new call.

Inbound (from a carrier, or anyone not registered here)::

    dialed → E.164 → Number (globally unique) → account → assigned scheme
      → schedule branch now (account calendar and zone) → caller in contacts (caller rules)
      → a Plan whose live route (``pbx/route.py``) walks the SchemeRun as the call goes

Internal: the INVITE comes from a phone registered here (its From AOR has a binding at the
INVITE's source address — INVITEs are not digest-checked yet, so this is the identity check)
and dials an extension of its own account: that employee's registered contacts ring.

Targets: employees ring every live binding; groups expand by their strategy over member
presence (available = has a live binding); SIP URIs and external numbers (each through the
trunk ranked first for it, as an employee's own call ranks them: ``AccountSnapshot.trunk_for``)
by IP literal or host name (names are resolved, cached, by ``pbx/dns.py`` before the wave
rings). How each is rung — contacts, mobiles, carriers, diversion, "press 1" — is
``pbx/reach.py``'s. Round-robin pointers are kept in memory per account and written behind
(``pbx/ring_memory.py``): a restart goes on from where each group was.
"Least recent" and "fewest calls" read each employee's answered calls from the journal (the
last one's end, and how many since midnight in the account's zone), only for accounts whose
schemes or groups use them.

Nothing above queries the database per call: numbers, schemes, calendar, employees, groups and
trunks come from the in-memory read model of ``pbx/snapshot.py``, which the directory's and
routing's events keep current.

Hooks for tests and operators: ``clock`` (the instant the schedule branch is chosen at; default
the call's start), ``allow_private`` (HTTP route URLs on loopback/private addresses for every
account; otherwise only an account's ``http_route_private`` allows them: pbx/back_office.py,
``integrations.ssrf``). Member states for the ring strategies: pbx/presence.py.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from zvonar.calls.events import Direction
from zvonar.calls.plan import (
    InboundCall,
    Pickup,
    Plan,
    Reject,
    RingTarget,
    Wave,
)
from zvonar.calls.signalling import uri_user
from zvonar.calls.talking import Talking
from zvonar.contacts.index import ContactHit, ContactIndex
from zvonar.core.errors import InvalidInput
from zvonar.directory.phone import normalize, normalize_caller
from zvonar.integrations.http_route import CallFacts, HttpRouter
from zvonar.media.prompts import FALLBACK_LANGUAGE
from zvonar.outbound.dialplan import DialKind, normalize_dialed
from zvonar.outbound.errors import InvalidDialString
from zvonar.pbx.back_office import BackOffice
from zvonar.pbx.credentials import DirectoryCredentialStore
from zvonar.pbx.features import feature_call, intercom_extension
from zvonar.pbx.presence import StaffPresence, midnight
from zvonar.pbx.reach import Bindings, Reach
from zvonar.pbx.ring_memory import RingMemory
from zvonar.pbx.route import QueueSessions, RouteSetup, SchemeRoute
from zvonar.pbx.snapshot import (
    AccountSnapshot,
    NumberInfo,
    Person,
    RoutingSnapshot,
)
from zvonar.routing.engine import (
    CallContext,
    Dial,
    HttpRequest,
    Outcome,
    SchemeRun,
)
from zvonar.routing.scheme import LAST_MANAGER_DAYS, ManagerRef
from zvonar.routing.strategies import MemberState
from zvonar.sip.errors import SipError
from zvonar.sip.ua import UserAgent
from zvonar.sip.uri import SipUri, TelUri, parse_uri
from zvonar.store.db import Database

__all__ = ["PbxResolver"]

log = logging.getLogger(__name__)

INTERNAL_RING_SECONDS = 30.0
_DIALED_CACHE = 4096
# The journal read for {manager: last}: well inside the resolver's own bound (5 s), so a slow
# database costs the call that target, not the call.
LAST_MANAGER_TIMEOUT = 1.0
ExtensionCalls = Callable[
    [InboundCall, Callable[[InboundCall, uuid.UUID, str], Awaitable[Plan | Reject]]],
    Awaitable[Plan | Reject],
]  # pbx/outbound_resolver.OutboundCalls: (call, the internal path) → plan


def _uri_user(text: str) -> str:
    """The user part of a SIP URI (unescaped, as the Request-URI's: calls/signalling.py), or
    a tel: URI's number, in text ("" for none)."""
    try:
        uri = parse_uri(text)
    except SipError:
        return ""
    if isinstance(uri, TelUri):
        return uri.number
    return uri_user(uri)


class PbxResolver:
    """``await resolver(call)`` → :class:`Plan` or :class:`Reject` (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        credentials: DirectoryCredentialStore,
        bindings: Bindings,
        contacts: ContactIndex,
        *,
        http: HttpRouter | None = None,
        route_secret: Callable[[uuid.UUID], str] = lambda _a: "",
        default_region: str = "RU",
        rng: random.Random | None = None,
        clock: Callable[[], datetime] | None = None,
        allow_private: bool = False,
        ring_memory: RingMemory | None = None,
        extension_calls: ExtensionCalls | None = None,
        prompts_dir: Callable[[uuid.UUID], Path] | None = None,
        queues: QueueSessions | None = None,
        snapshot: RoutingSnapshot | None = None,
        talking: Talking | None = None,
    ) -> None:
        self.prompts_dir = prompts_dir
        self.reach = Reach(bindings, prompts_dir)  # how a dial's contacts are rung
        self.talking = talking  # who is on a call: busy for the strategies (calls/talking.py)
        self.queues = queues  # the ACD runtime (queue steps); None: queue steps are skipped
        self.db = db
        self.credentials = credentials
        self.bindings = bindings
        self.contacts = contacts
        self.default_region = default_region
        self.rng = rng or random.Random()
        self.extension_calls = extension_calls
        self.clock = clock
        # Round-robin pointers per account: in memory on the call path, kept across restarts
        # when the runtime starts it (pbx/ring_memory.py).
        self.ring_memory = ring_memory if ring_memory is not None else RingMemory(db)
        self._dialed: dict[str, tuple[str, ...]] = {}  # dialed string → its E.164 candidates
        self._callers: dict[tuple[str, str], str | None] = {}  # (caller, country) → E.164
        # (dialed, country) → the number a phone's call goes out to, if one (_dialled_out)
        self._out: dict[tuple[str, str], tuple[str, ...]] = {}
        self.detach: Callable[[], None] = lambda: None  # stops following the bus
        if snapshot is None:
            # A read model of its own, kept current by the bus every write through ``db``
            # publishes on; a shared one is attached by its owner.
            snapshot = RoutingSnapshot(db)
            self.detach = snapshot.attach(db.bus)
        self.snapshot = snapshot
        # The HTTP route step's questions (pbx/back_office.py).
        self.back_office = BackOffice(http, route_secret, snapshot, allow_private=allow_private)

    async def __call__(self, call: InboundCall) -> Plan | Reject | Pickup:
        # *8<ext>, *78 etc. (pbx/features.py)
        feature = await feature_call(self.db, call, self._prompt)
        if feature is not None:
            return feature
        if call.auth is not None and self.extension_calls is not None:
            # The B2BUA's INVITE gate ran: authenticated callers go to the extension-call
            # path (pbx/outbound_resolver.py), everyone else reaches our numbers only.
            account_id = call.auth.account_id
            if account_id is not None:
                placed = await self._from_phone(call, account_id, self.extension_calls)
                return await self._placed(placed, account_id, call.auth.user)
            return await self._inbound(call)
        internal = self._internal_caller(call)
        if internal is not None:
            # The phone's registration vouched for From: its user is the SIP username.
            return await self._placed(
                await self._internal(call, *internal), internal[0], call.caller
            )
        return await self._inbound(call)

    async def _from_phone(
        self, call: InboundCall, account_id: uuid.UUID, extension_calls: ExtensionCalls
    ) -> Plan | Reject:
        """A call from a phone (or a transfer) of ``account_id``: an intercom call, one of
        the account's own numbers, else the extension-call path (a colleague, the outside)."""
        extension = intercom_extension(call.dialed)
        if extension is not None:  # *9<ext>: an internal call, answered by the phone
            realm = self.credentials.realm_of(account_id) or ""
            return await self._internal(call, account_id, realm, extension=extension, intercom=True)
        own = await self._own_line(call, account_id)
        if own is not None:
            return own
        return await extension_calls(call, self._internal)

    async def _placed(
        self, outcome: Plan | Reject, account_id: uuid.UUID, user: str | None
    ) -> Plan | Reject:
        """An employee's own call, put through or refused: the journal names who placed it
        (the employee whose SIP username ``user`` is; None for a transfer the B2BUA places),
        and a refusal is outbound unless the internal path made it (a colleague's number)."""
        if outcome.account_id != account_id:
            return outcome  # no account (nothing is journalled), or another's number
        snap = await self.snapshot.account(account_id)
        placed_by = None
        if snap is not None and user:
            person = snap.staff_by_username.get(user)
            placed_by = person.id if person is not None else None
        if isinstance(outcome, Plan):
            if outcome.placed_by is not None or placed_by is None:
                return outcome
            return replace(outcome, placed_by=placed_by)
        return replace(
            outcome,
            direction=outcome.direction or Direction.outbound,
            placed_by=outcome.placed_by or placed_by,
        )

    async def _prompt(self, account_id: uuid.UUID, key: str) -> Path | None:
        """The prompt ``key`` in the account's language, its own recording first."""
        snap = await self.snapshot.account(account_id)
        language = snap.account.language if snap is not None else FALLBACK_LANGUAGE
        return self.reach.prompt(account_id, language, key)

    # -- internal calls ------------------------------------------------------------------------

    async def _own_line(self, call: InboundCall, account_id: uuid.UUID) -> Plan | Reject | None:
        """An employee who dials one of the account's own numbers reaches its scheme here, as
        a customer would — not out through the carrier and back in (nor refused by the
        toll-fraud guard) — and so does a transfer "to the sales line", however the outbound
        dial plan would have read it (national, 8~10, 00). None: not one."""
        snap = await self.snapshot.account(account_id)
        if snap is None or not call.dialed or call.dialed in snap.staff:
            return None
        # Read first as the outbound dial plan reads it, the account's own plan before 00 as
        # the international prefix ("0074951234567" in RU): what would go out to the carrier
        # is what stays here.
        candidates = (*self._dialled_out(call.dialed, snap), *self._candidates(call.dialed))
        number = await self.snapshot.number(candidates) if candidates else None
        if number is None or number.account_id != account_id:
            return None
        # Its number's account is this one: a refusal (480 No Route) is journalled too. The
        # scheme's call is to the number as found (the inbound path reads no dial plan).
        plan = await self._inbound(replace(call, dialed=number.e164))
        return replace(plan, direction=Direction.internal)

    def _dialled_out(self, dialed: str, snap: AccountSnapshot) -> tuple[str, ...]:
        """The number (E.164) an employee's ``dialed`` goes out to (outbound/dialplan.py, the
        account's country), if it is one: () for an extension, a short or an emergency code,
        or a string the dial plan refuses. Cached: every outside call from a phone asks, and
        a parse costs ~50 us (``dialed`` is never one of the staff's extensions here)."""
        key = (dialed, snap.account.country)
        found = self._out.get(key)
        if found is None:
            try:
                target = normalize_dialed(dialed, snap.account.country, extensions=snap.staff)
            except InvalidDialString:
                found = ()
            else:
                found = (target.value,) if target.kind is DialKind.external else ()
            if len(self._out) >= _DIALED_CACHE:  # bounded: phones dial anything
                self._out.clear()
            self._out[key] = found
        return found

    def _internal_caller(self, call: InboundCall) -> tuple[uuid.UUID, str] | None:
        """(account, realm) of a caller registered here from the INVITE's source, or None."""
        try:
            uri = parse_uri(call.from_uri)
        except Exception:
            return None
        if not isinstance(uri, SipUri) or uri.user is None:
            return None
        account_id = self.credentials.account_for_realm(uri.host)
        if account_id is None:
            return None
        src = call.source
        for b in self.bindings(f"sip:{call.caller}@{uri.host}"):
            flow = UserAgent.binding_flow(b)
            if (flow.transport, flow.host, flow.port) == (src.transport, src.host, src.port):
                return account_id, uri.host
        return None

    async def _internal(
        self,
        call: InboundCall,
        account_id: uuid.UUID,
        realm: str,
        *,
        extension: str | None = None,
        intercom: bool = False,
    ) -> Reject | Plan:
        """A colleague's call to ``extension`` (the dialed one by default). ``intercom``:
        their phones only (a mobile has no speaker to open), each asked to answer at once."""
        snap = await self.snapshot.account(account_id)
        dialed = extension if extension is not None else call.dialed
        person = snap.staff.get(dialed) if snap is not None else None
        if snap is None or person is None:  # not an extension of the account
            return Reject(404, "Not Found", account_id=account_id, direction=Direction.internal)
        # Their mobiles go out as an employee's own calls do (no number of ours was called).
        trunks = None if intercom else partial(snap.trunk_for, None)
        targets = self.reach.employee(person, realm, trunks, account=snap.account)
        if intercom:
            targets = tuple(replace(t, auto_answer=True) for t in targets)
        waves = (Wave(targets, INTERNAL_RING_SECONDS),) if targets else ()
        return Plan(
            account_id=account_id,
            waves=waves,
            final=Reject(
                480,
                "Do Not Disturb" if person.dnd else "Temporarily Unavailable",
                account_id=account_id,
            ),
            direction=Direction.internal,
            record=snap.account.recording_enabled,  # every call, colleagues' too
            fail_over=frozenset(),  # a busy colleague is busy for the employee who called
            park_seconds=snap.account.park_seconds,
            park_ring_back_seconds=snap.account.park_ring_back_seconds,
        )

    # -- inbound calls -------------------------------------------------------------------------

    def _candidates(self, dialed: str) -> tuple[str, ...]:
        cached = self._dialed.get(dialed)
        if cached is None:
            if len(self._dialed) >= _DIALED_CACHE:  # bounded: dialed strings come from outside
                self._dialed.clear()
            cached = self._dialed[dialed] = self._normalized(dialed)
        return cached

    def _normalized(self, dialed: str) -> tuple[str, ...]:
        out: list[str] = []
        digits = dialed.lstrip("+")
        for raw, region in ((dialed, self.default_region), ("+" + digits, None)):
            try:
                out.append(normalize(raw, region))
            except InvalidInput:
                continue
        return tuple(dict.fromkeys(out))

    async def _number_for(self, call: InboundCall) -> tuple[NumberInfo | None, bool]:
        """The account's number the call is for, and whether To named it. A carrier we
        register with sends its calls to the Contact we registered — our account's username
        there, not a number, in the Request-URI — and puts the number in To, the request's
        logical recipient (RFC 3261 §8.1.1.2). Anyone may call our numbers, so reading To
        when the Request-URI names none opens nothing new."""
        if call.dialed:
            candidates = self._candidates(call.dialed)
            number = await self.snapshot.number(candidates) if candidates else None
            if number is not None:
                return number, False
        to_user = _uri_user(call.to_uri)
        if to_user and to_user != call.dialed:
            candidates = self._candidates(to_user)
            number = await self.snapshot.number(candidates) if candidates else None
            if number is not None:
                return number, True
        return None, False

    async def _inbound(self, call: InboundCall) -> Plan | Reject:
        number, by_to = await self._number_for(call)
        if number is None:
            return Reject(404, "Not Found")
        # A trunk speaks for its own account only (plan.CallerAuth): what it asserts about
        # the caller stands when this number is that account's.
        call = call.for_account(number.account_id)
        snap = await self.snapshot.account(number.account_id)
        scheme_id = snap.assignments.get(number.id) if snap is not None else None
        if snap is None or scheme_id is None:
            return Reject(480, "No Route", account_id=number.account_id)
        account, rows = snap.account, snap.rows
        scheme = snap.scheme_by_id.get(scheme_id)
        if scheme is None:
            return Reject(480, "No Route", account_id=account.id)
        now = self.clock() if self.clock is not None else call.started_at
        history: Mapping[uuid.UUID, MemberState] = {}
        if snap.needs_history:  # only "least recent" / "fewest calls" read the journal
            history = await self.snapshot.history(account.id, midnight(now, account.time_zone))
        realm = self.credentials.realm_of(account.id) or ""
        staff = snap.staff
        talking = self.talking

        def busy(person: Person) -> bool:
            return talking is not None and talking.busy(account.id, person.id, person.extension)

        presence = StaffPresence(staff, history, self.bindings, realm, busy)
        caller_e164 = self._e164(call.caller, account.country)
        hit = await self._caller(caller_e164, account.id)
        known, tags = (True, hit.tags) if hit is not None else (False, frozenset[str]())
        managers = await self._managers(snap, hit, caller_e164, now)
        ctx = CallContext(
            call_id=call.call_id,
            caller=call.caller,
            called=number.e164,
            calendar=snap.calendar,
            schemes=snap.schemes,
            caller_known=known,
            caller_tags=tags,
            presence=presence,
            groups=snap.groups,
            memory=self.ring_memory.of(account.id),
            managers=managers,
        )
        run = SchemeRun(scheme, ctx, now, rng=self.rng)
        # Each outside number the call is forwarded to (a mobile, a scheme's number) takes
        # the trunk ranked first for it (the one hosting ``number``, the callee's prefix...).
        trunks = partial(snap.trunk_for, number)

        def expand(dial: Dial) -> list[RingTarget]:
            return self.reach.dial(dial, staff, realm, trunks, number.e164, account)

        facts = CallFacts(
            call_id=call.call_id,
            caller=caller_e164,
            dialed=number.e164,
            dialed_label=number.label,
            started_at=call.started_at,
        )
        by_id = {str(p.id): p for p in staff.values()}
        account_id = account.id

        def agent_targets(agent_id: str) -> tuple[RingTarget, ...]:
            """A queue's offer to an agent. Their mobile must press 1 (calls/accept.py): a
            voicemail that answers would take the queue's caller and count as served."""
            person = by_id.get(agent_id)
            if person is None:
                return ()
            # The agent's status decides (do not disturb is one, acd/runtime.employee_dnd):
            # this staff list may be older than the DND a waiting caller's offer follows.
            return self.reach.employee(
                replace(person, dnd=False),
                realm,
                trunks,
                number.e164,
                account=account,
                confirm_mobiles=True,
            )

        async def ask(request: HttpRequest) -> Outcome:
            return await self.back_office.ask(request, facts, account_id, rows)

        def remember(memory: Mapping[str, int]) -> None:
            self.ring_memory.remember(account_id, memory)

        setup = RouteSetup(
            account_id=account.id,
            call_id=call.call_id,
            language=account.language,
            expand=expand,
            ask=ask,
            agent_targets=agent_targets,
            caller_tags=ctx.tags,
            caller=facts.caller or "",
            prompts_dir=self.prompts_dir(account.id) if self.prompts_dir else None,
            queues=self.queues,
            clock=self.clock,
            remember=remember,
        )
        return Plan(
            account_id=account.id,
            waves=(),
            direction=Direction.inbound,
            record=account.recording_enabled,
            park_seconds=account.park_seconds,
            park_ring_back_seconds=account.park_ring_back_seconds,
            number_label=number.label,
            dialed=number.e164 if by_to else None,
            route=SchemeRoute(run, setup, now),
            caller_display=caller_display(
                number.label,
                hit.name if hit is not None else call.caller_display,
                caller_e164 or call.caller,
            ),
            caller=caller_e164,
            contact_id=hit.contact_id if hit is not None else None,
        )

    def _e164(self, raw: str, country: str) -> str | None:
        if not raw:
            return None
        key = (raw, country)
        if key in self._callers:  # customers call again; parsing a number costs ~50 us
            return self._callers[key]
        e164 = normalize_caller(raw, country)
        if len(self._callers) >= _DIALED_CACHE:  # bounded: callers are chosen by strangers
            self._callers.clear()
        self._callers[key] = e164
        return e164

    async def _managers(
        self, snap: AccountSnapshot, hit: ContactHit | None, caller: str | None, now: datetime
    ) -> dict[str, str]:
        """The caller's own employees who can take a call (active): the contact's manager,
        and — only when a scheme asks for it, it costs a journal read — who talked with them
        last (answered their call, or called them)."""
        found: dict[str, uuid.UUID | None] = {}
        if hit is not None:
            found[ManagerRef.contact] = hit.manager_id
        if caller and snap.needs_last_manager:
            since = now - timedelta(days=LAST_MANAGER_DAYS)
            try:  # a slow or failing journal costs the call this target, never the call
                async with asyncio.timeout(LAST_MANAGER_TIMEOUT):
                    found[ManagerRef.last] = await self.snapshot.last_talked_with(
                        snap.account.id, caller, since
                    )
            except (TimeoutError, OSError, SQLAlchemyError) as exc:
                log.warning("no last manager for %s: %r", caller, exc)
        out: dict[str, str] = {}
        for ref, employee_id in found.items():
            ext = snap.extensions.get(employee_id) if employee_id is not None else None
            if ext is not None and ext in snap.staff:
                out[ref] = ext
        return out

    async def _caller(self, e164: str | None, account_id: uuid.UUID) -> ContactHit | None:
        if e164 is None:
            return None
        return await self.contacts.lookup(account_id, e164)


MAX_CALLER_DISPLAY = 48  # phones show a line of about this much


def caller_display(label: str | None, who: str | None, number: str) -> str | None:
    """What the employees' phones show as the caller's name: the line the customer called
    (the number's label, "Resorts") and who it is — the contact's name, else the name the
    carrier sent, else the number. None (the carrier's From untouched) when there is neither
    a label nor a name to add."""
    who = (who or "").strip() or None
    if label:
        shown = f"{label}: {who or number}"
    elif who:
        shown = who
    else:
        return None
    return shown[:MAX_CALLER_DISPLAY]
