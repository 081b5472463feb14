"""The PBX's resolver (``calls.plan.Resolver``): who rings for each new call.

Inbound (from a carrier, or anyone not registered here)::

    dialed → E.164 → Number (globally unique) → account → assigned scheme
      → schedule branch now (account calendar and zone) → caller in contacts (caller rules)
      → SchemeRun walked into waves (``flatten``) → Plan

Internal: the INVITE comes from a phone registered here (its From AOR has a binding at the
INVITE's source address — INVITEs are not digest-checked yet, so this is the identity check)
and dials an extension of its own account: that employee's registered contacts ring.

Targets: employees ring every live binding; groups expand by their strategy over member
presence (available = has a live binding); SIP URIs and external numbers (through the
number's trunk, else the account's first active trunk) only when the host is an IP literal —
there is no DNS resolution in the call path yet. Round-robin pointers are kept in this
process (a dict per account): a restart starts groups over from their first member.
"Least recent" and "fewest calls" read each employee's answered calls from the journal (the
last one's end, and how many since midnight in the account's zone).

Hooks for tests and operators: ``clock`` (the instant the schedule branch is chosen at; default
the call's start), ``allow_private`` (HTTP route URLs on loopback/private addresses, refused by
default — see ``integrations.ssrf``).
"""

from __future__ import annotations

import ipaddress
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from zvonar.accounts.models import Account
from zvonar.calls.events import Direction, Disposition, Target, TargetKind
from zvonar.calls.plan import (
    InboundCall,
    Pickup,
    Plan,
    Reject,
    RingTarget,
    VoicemailSpec,
    Wave,
)
from zvonar.contacts.index import ContactIndex
from zvonar.core.errors import InvalidInput
from zvonar.directory.models import Employee, Group, GroupMember, Number, Trunk
from zvonar.directory.phone import normalize
from zvonar.integrations.http_route import CallFacts, Fallback, HttpRouter, RouteDecision
from zvonar.journal.models import CallLeg, CallRecord
from zvonar.media.engine import PromptNotFoundError
from zvonar.media.prompts import prompt_path
from zvonar.pbx.credentials import DirectoryCredentialStore
from zvonar.pbx.features import feature_call
from zvonar.pbx.flatten import Flattened, flatten
from zvonar.routing.engine import (
    CallContext,
    Dial,
    GroupInfo,
    HttpRequest,
    Outcome,
    OutcomeKind,
    SchemeRun,
    Voicemail,
)
from zvonar.routing.models import CalendarRow, SchemeAssignment, SchemeRow
from zvonar.routing.schedule import calendar_from_dict
from zvonar.routing.scheme import Scheme
from zvonar.routing.scheme import TargetKind as RouteKind
from zvonar.routing.scheme_codec import scheme_from_dict
from zvonar.routing.strategies import MemberState, Presence, Strategy
from zvonar.sip.location import Binding
from zvonar.sip.ua import Flow, UserAgent
from zvonar.sip.uri import SipUri, parse_uri
from zvonar.store.db import Database

__all__ = ["PbxResolver"]

log = logging.getLogger(__name__)

INTERNAL_RING_SECONDS = 30.0
Bindings = Callable[[str], list[Binding]]  # canonical AOR → live bindings
ExtensionCalls = Callable[
    [InboundCall, Callable[[InboundCall, uuid.UUID, str], Awaitable[Plan | Reject]]],
    Awaitable[Plan | Reject],
]  # pbx/outbound_resolver.OutboundCalls: (call, the internal path) → plan


@dataclass(frozen=True)
class _Person:
    id: uuid.UUID
    name: str
    extension: str
    sip_username: str


def _ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _uri_flow(uri: SipUri, default_port: int = 5060) -> Flow | None:
    if not _ip_literal(uri.host):
        return None
    transport = (uri.param("transport") or "udp").upper()
    if transport not in ("UDP", "TCP"):
        return None
    return Flow(transport, uri.host.strip("[]"), uri.port or default_port)


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
        extension_calls: ExtensionCalls | None = None,
        prompts_dir: Callable[[uuid.UUID], Path] | None = None,
    ) -> None:
        self.prompts_dir = prompts_dir
        self.db = db
        self.credentials = credentials
        self.bindings = bindings
        self.contacts = contacts
        self.http = http
        self.route_secret = route_secret
        self.default_region = default_region
        self.rng = rng or random.Random()
        self.extension_calls = extension_calls
        self.clock = clock
        self.allow_private = allow_private
        self.memory: dict[uuid.UUID, dict[str, int]] = {}  # round-robin pointers per account

    async def __call__(self, call: InboundCall) -> Plan | Reject | Pickup:
        feature = await feature_call(self.db, call)  # *8<ext> etc. (pbx/features.py)
        if feature is not None:
            return feature
        if call.auth is not None and self.extension_calls is not None:
            # The B2BUA's INVITE gate ran: authenticated callers go to the extension-call
            # path (pbx/outbound_resolver.py), everyone else reaches our numbers only.
            if call.auth.account_id is not None:
                return await self.extension_calls(call, self._internal)
            return await self._inbound(call)
        internal = self._internal_caller(call)
        if internal is not None:
            return await self._internal(call, *internal)
        return await self._inbound(call)

    # -- internal calls ------------------------------------------------------------------------

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
        self, call: InboundCall, account_id: uuid.UUID, realm: str
    ) -> Reject | Plan:
        async with self.db.read() as s:
            emp = await s.scalar(
                select(Employee).where(
                    Employee.account_id == account_id,
                    Employee.extension == call.dialed,
                    Employee.active.is_(True),
                )
            )
        if emp is None:  # outbound dialing through trunks is not supported yet
            return Reject(404, "Not Found", account_id=account_id)
        person = _Person(emp.id, emp.name, emp.extension, emp.sip_username)
        targets = self._employee_targets(person, realm)
        waves = (Wave(targets, INTERNAL_RING_SECONDS),) if targets else ()
        return Plan(
            account_id=account_id,
            waves=waves,
            final=Reject(480, "Temporarily Unavailable", account_id=account_id),
            direction=Direction.internal,
        )

    def _employee_targets(self, person: _Person, realm: str) -> tuple[RingTarget, ...]:
        target = Target(TargetKind.employee, person.name, person.id)
        return tuple(
            RingTarget(b.contact, UserAgent.binding_flow(b), target, f"x{person.extension}")
            for b in self.bindings(f"sip:{person.sip_username}@{realm}")
        )

    # -- inbound calls -------------------------------------------------------------------------

    def _candidates(self, dialed: str) -> list[str]:
        out: list[str] = []
        digits = dialed.lstrip("+")
        for raw, region in ((dialed, self.default_region), ("+" + digits, None)):
            try:
                out.append(normalize(raw, region))
            except InvalidInput:
                continue
        return list(dict.fromkeys(out))

    async def _inbound(self, call: InboundCall) -> Plan | Reject:
        candidates = self._candidates(call.dialed) if call.dialed else []
        if not candidates:
            return Reject(404, "Not Found")
        async with self.db.read() as s:
            number = await s.scalar(
                select(Number).where(Number.e164.in_(candidates), Number.active.is_(True))
            )
            if number is None:
                return Reject(404, "Not Found")
            account = await s.get(Account, number.account_id)
            assignment = await s.get(SchemeAssignment, number.id)
            if account is None or assignment is None:
                return Reject(480, "No Route", account_id=number.account_id)
            rows = list(
                await s.scalars(select(SchemeRow).where(SchemeRow.account_id == account.id))
            )
            cal_row = await s.get(CalendarRow, account.id)
            people = list(
                await s.scalars(
                    select(Employee).where(
                        Employee.account_id == account.id, Employee.active.is_(True)
                    )
                )
            )
            members = (
                await s.execute(
                    select(Group.name, Group.strategy, Employee.extension, GroupMember.weight)
                    .join(GroupMember, GroupMember.group_id == Group.id)
                    .join(Employee, Employee.id == GroupMember.employee_id)
                    .where(Group.account_id == account.id, Employee.active.is_(True))
                    .order_by(Group.name, GroupMember.position)
                )
            ).all()
            trunks = list(
                await s.scalars(
                    select(Trunk)
                    .where(Trunk.account_id == account.id, Trunk.active.is_(True))
                    .order_by(Trunk.name)
                )
            )
            now = self.clock() if self.clock is not None else call.started_at
            history = await _call_history(s, account.id, _midnight(now, account.time_zone))
        library, scheme = _library(rows, assignment.scheme_id)
        if scheme is None:
            return Reject(480, "No Route", account_id=account.id)
        realm = self.credentials.realm_of(account.id) or ""
        staff = {e.extension: _Person(e.id, e.name, e.extension, e.sip_username) for e in people}
        presence = {
            f"employee:{ext}": replace(
                history.get(p.id, MemberState("")),
                key=f"employee:{ext}",
                presence=Presence.available
                if self.bindings(f"sip:{p.sip_username}@{realm}")
                else Presence.unregistered,
            )
            for ext, p in staff.items()
        }
        groups: dict[str, tuple[Strategy, list[tuple[str, int]]]] = {}
        for name, strategy, ext, weight in members:
            groups.setdefault(name, (Strategy(strategy.value), []))[1].append((ext, weight))
        known, tags = await self._caller(call.caller, account)
        calendar = calendar_from_dict(
            cal_row.definition if cal_row else {},
            tz=account.time_zone,
            default_country=account.country,
        )
        ctx = CallContext(
            call_id=call.call_id,
            caller=call.caller,
            called=number.e164,
            calendar=calendar,
            schemes=library,
            caller_known=known,
            caller_tags=tags,
            presence=presence,
            groups={n: GroupInfo(st, tuple(m)) for n, (st, m) in groups.items()},
            memory=self.memory.get(account.id, {}),
        )
        run = SchemeRun(scheme, ctx, now, rng=self.rng)
        trunk = next((t for t in trunks if t.id == number.trunk_id), trunks[0] if trunks else None)

        def expand(dial: Dial) -> list[RingTarget]:
            return self._expand(dial, staff, realm, trunk)

        facts = CallFacts(
            call_id=call.call_id,
            caller=self._e164(call.caller, account.country),
            dialed=number.e164,
            dialed_label=number.label,
            started_at=call.started_at,
        )
        result = await self._walk(run, expand, now, facts, account.id, rows)
        if result.memory:
            self.memory.setdefault(account.id, {}).update(result.memory)
        log.info("call %s: %s", call.call_id, result.path)
        return Plan(
            account_id=account.id,
            waves=result.waves,
            final=_final(
                result, account, self.prompts_dir(account.id) if self.prompts_dir else None
            ),
            direction=Direction.inbound,
            record=account.recording_enabled,
            number_label=number.label,
            scheme_path=result.hops,
        )

    def _e164(self, raw: str, country: str) -> str | None:
        if not raw:
            return None
        try:
            return normalize(raw, country)
        except InvalidInput:
            return None

    async def _caller(self, caller: str, account: Account) -> tuple[bool, frozenset[str]]:
        e164 = self._e164(caller, account.country)
        if e164 is None:
            return False, frozenset()
        hit = await self.contacts.lookup(account.id, e164)
        return (True, hit.tags) if hit is not None else (False, frozenset())

    def _expand(
        self, dial: Dial, staff: Mapping[str, _Person], realm: str, trunk: Trunk | None
    ) -> list[RingTarget]:
        if dial.kind is RouteKind.employee:
            person = staff.get(dial.ref)
            return list(self._employee_targets(person, realm)) if person else []
        if dial.kind is RouteKind.sip:
            try:
                uri = parse_uri(dial.ref)
            except Exception:
                return []
            flow = _uri_flow(uri) if isinstance(uri, SipUri) else None
            if flow is None:
                return []
            return [RingTarget(dial.ref, flow, Target(TargetKind.external, dial.ref[:200]))]
        if dial.kind is RouteKind.number and trunk is not None and _ip_literal(trunk.host):
            transport = trunk.transport.value.upper()
            if transport not in ("UDP", "TCP"):
                return []
            host = trunk.host.strip("[]")
            flow = Flow(transport, host, trunk.port)
            uri_host = f"[{host}]" if ":" in host else host
            via_trunk = f"sip:{dial.ref}@{uri_host}:{trunk.port}"
            return [RingTarget(via_trunk, flow, Target(TargetKind.external, dial.ref))]
        return []

    async def _walk(
        self,
        run: SchemeRun,
        expand: Callable[[Dial], list[RingTarget]],
        now: datetime,
        facts: CallFacts,
        account_id: uuid.UUID,
        rows: list[SchemeRow],
    ) -> Flattened:
        flow = flatten(run, expand, now)
        try:
            request = next(flow)
            while True:
                outcome = await self._ask(request, facts, account_id, rows)
                request = flow.send(outcome)
        except StopIteration as stop:
            result: Flattened = stop.value
            return result

    async def _ask(
        self,
        request: HttpRequest,
        facts: CallFacts,
        account_id: uuid.UUID,
        rows: list[SchemeRow],
    ) -> Outcome:
        if self.http is None:
            return Outcome(OutcomeKind.http_error)
        decision = await self.http.route(
            request.url,
            facts,
            secret=self.route_secret(account_id),
            allow_private=self.allow_private,
            timeout=request.timeout,
        )
        if isinstance(decision, Fallback):
            return Outcome(OutcomeKind.http_error)
        payload = await self._engine_reply(decision, account_id, rows)
        if payload is None:
            return Outcome(OutcomeKind.http_error)
        return Outcome(OutcomeKind.http_reply, payload=payload)

    async def _engine_reply(
        self, decision: RouteDecision, account_id: uuid.UUID, rows: list[SchemeRow]
    ) -> dict[str, str] | None:
        """The back office names things by id; the interpreter by natural key."""
        kind, value = decision.kind.value, decision.value
        if kind in ("number", "action"):
            return {kind: value}
        if kind == "scheme":
            name = next((r.name for r in rows if str(r.id) == value), None)
            return {"scheme": name} if name else None
        async with self.db.read() as s:
            if kind == "group":
                gname = await s.scalar(
                    select(Group.name).where(
                        Group.account_id == account_id, Group.id == _uuid(value)
                    )
                )
                return {"group": gname} if gname else None
            if value.isdigit():
                return {"employee": value}
            ext = await s.scalar(
                select(Employee.extension).where(
                    Employee.account_id == account_id, Employee.id == _uuid(value)
                )
            )
            return {"employee": ext} if ext else None


def _midnight(now: datetime, time_zone: str) -> datetime:
    try:
        tz = ZoneInfo(time_zone)
    except (ValueError, LookupError):  # validated on write; a bad zone must not drop calls
        tz = ZoneInfo("UTC")
    local = now.astimezone(tz)
    return datetime.combine(local.date(), time(), tz)


async def _call_history(
    s: AsyncSession, account_id: uuid.UUID, since: datetime
) -> dict[uuid.UUID, MemberState]:
    """Per employee: the end of their last answered call and how many they took since
    ``since`` (the strategies' ``last_call_end`` and ``calls_today``)."""
    ended = func.coalesce(CallLeg.ended_at, CallLeg.answered_at)
    rows = await s.execute(
        select(
            CallLeg.target_id,
            func.max(ended),
            func.count(case((CallRecord.started_at >= since, 1))),
        )
        .join(CallRecord, CallRecord.id == CallLeg.call_pk)
        .where(
            CallRecord.account_id == account_id,
            CallLeg.target_kind == TargetKind.employee,
            CallLeg.target_id.is_not(None),
            CallLeg.answered_at.is_not(None),
        )
        .group_by(CallLeg.target_id)
    )
    return {
        emp: MemberState("", last_call_end=last, calls_today=int(today))
        for emp, last, today in rows.all()
        if emp is not None
    }


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _library(
    rows: list[SchemeRow], scheme_id: uuid.UUID
) -> tuple[dict[str, Scheme], Scheme | None]:
    library: dict[str, Scheme] = {}
    chosen: Scheme | None = None
    for row in rows:
        try:
            scheme = scheme_from_dict(row.name, row.definition)
        except InvalidInput:  # rows are validated on write; a bad one must not drop calls
            log.exception("scheme %s does not parse", row.id)
            continue
        library[row.name] = scheme
        if row.id == scheme_id:
            chosen = scheme
    return library, chosen


def _prompt(key: str | None, language: str, base_dir: Path | None = None) -> Path | None:
    for candidate in (key, "leave_message_after_tone"):
        if candidate is None:
            continue
        try:
            return prompt_path(candidate, language, base_dir=base_dir)
        except PromptNotFoundError:
            continue
    return None


def _final(result: Flattened, account: Account, prompts: Path | None = None) -> Reject:
    """Voicemail: the greeting, a beep and a message mailed to the step's ``notify`` list
    (calls/voicemail.py; the greeting alone when the B2BUA cannot record). Hang up: 480."""
    if isinstance(result.final, Voicemail):
        prompt = _prompt(result.final.greeting, account.language, prompts)
        return Reject(
            480,
            "Temporarily Unavailable",
            prompt=prompt,
            account_id=account.id,
            disposition=Disposition.voicemail,
            voicemail=VoicemailSpec(greeting=prompt, notify=tuple(result.final.notify)),
        )
    return Reject(480, "Temporarily Unavailable", account_id=account.id)
