"""Calls placed by authenticated phones (and transfers): extensions, emergency, the outside.

The PBX resolver hands every call whose ``InboundCall.auth`` names an account here
(``PbxResolver(..., extension_calls=OutboundCalls(...))``)::

    dialed → withheld (a *67 / #31# prefix: the caller ID is not shown, RFC 3323)
           → normalize_dialed(account country, the account's extensions)
      internal  → the existing internal path (the extension's registered phones)
      emergency → straight to a trunk: never refused, never counted
      external  → TollFraudGuard.admit with the account's policy (its country is national;
                  international_calls, outbound_max_concurrent, outbound_max_per_hour), read
                  with the account for every call (Deny → 403 with the reason in the phrase,
                  journalled under the callee's E.164 and contact: ``_refused``)
                → select_caller_id (callee region / the number the client last called us on
                  (journal) / the contact's city; never a toll-free, premium-rate or
                  shared-cost number of ours unless it is the trunk's default) → rank_trunks
                  (the trunk hosting that number, the longest of the trunks' E.164
                  ``prefixes`` matching the callee, the lowest ``priority``, the name)
                → Plan: a wave per trunk (best first, at most MAX_TRUNKS), each
                  sip:<e164>@<trunk host>:<port> over a flow to that trunk, direction
                  outbound, From/P-Asserted-Identity = the chosen caller ID (a trunk that does
                  not host it shows its own); the next trunk rings only when the carrier
                  failed (CARRIER_FAILURES: 408, 5xx, refused credentials), else the caller
                  gets the carrier's answer (486 busy, 404) as it came; a carrier silent
                  for SERVER_SILENCE (not even 100 Trying) counts as failed (408)

The guard's slot is released on the call's CallEnded (``attach(bus)``), or at once when the
call cannot be placed after admission. A trunk's host may be a name: with a ``dns``
(pbx/dns.py) it is located when chosen (RFC 3263: SRV for the trunk's transport when the
trunk names no port, else A/AAAA), and each of its destinations, in SRV order, is a wave of
its own — a carrier's server that times out or answers 503 hands the call to the next one
(§4.3), then to the next trunk. A trunk whose name locates nothing is passed over for the
next best one (503 only when none is left); without a ``dns``, only IP-literal hosts are
reachable.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy import select

from zvonar.accounts.models import Account
from zvonar.calls.events import CallEnded, Direction, Target, TargetKind
from zvonar.calls.plan import InboundCall, Plan, Reject, RingTarget, Wave
from zvonar.contacts.index import ContactIndex
from zvonar.core.bus import EventBus
from zvonar.core.errors import InvalidInput
from zvonar.core.events import Event
from zvonar.directory.models import Employee, Number, Trunk
from zvonar.directory.phone import normalize
from zvonar.journal.models import CallRecord
from zvonar.outbound.callerid import OwnNumber, presentable, select_caller_id
from zvonar.outbound.dialplan import DialKind, DialTarget, normalize_dialed, withheld
from zvonar.outbound.errors import InvalidDialString, NoTrunk
from zvonar.outbound.tollfraud import Deny, TollFraudGuard, TollPolicy
from zvonar.outbound.trunks import TrunkOption, rank_trunks
from zvonar.pbx.credentials import DirectoryCredentialStore
from zvonar.pbx.dns import SERVER_SILENCE, HostResolver, is_ip, named_flow, server_part
from zvonar.pbx.snapshot import trunk_credentials
from zvonar.sip.ua import Flow
from zvonar.store.db import Database

__all__ = ["OUTBOUND_RING_SECONDS", "Internal", "OutboundCalls"]

log = logging.getLogger(__name__)

OUTBOUND_RING_SECONDS = 90.0
MAX_TRUNKS = 3  # carriers an outbound call fails over to, at most
MAX_SERVERS = 4  # of one carrier's servers (SRV targets and their addresses), at most
# A carrier's final responses that are its own failure, not the callee's: the next trunk is
# tried (no answer at all, an overloaded or broken carrier, credentials or a quota refused).
# Busy, "no such number", declined and the like end the call: they would be the same there.
CARRIER_FAILURES = frozenset({401, 403, 407, 408, 500, 502, 503, 504})
LAST_CALLED_SCAN = 20  # recent inbound calls looked at for "the number they called last"
Internal = Callable[[InboundCall, uuid.UUID, str], Awaitable[Plan | Reject]]


def _trunk_flow(trunk: Trunk, names: bool) -> Flow | None:
    """The flow to ``trunk`` (its host maybe a name still to resolve, when ``names``)."""
    flow = named_flow(trunk.host, trunk.port, trunk.transport.value)
    if flow is None or not (names or is_ip(flow.host)):
        return None
    return flow


def _toll_policy(account: Account) -> TollPolicy:
    """The guard's limits for ``account``, from its settings (``zvonar config``'s account
    section). Read with the account row for each call: a change applies to the next call."""
    return TollPolicy(
        country=account.country,
        international=account.international_calls,
        max_concurrent=account.outbound_max_concurrent,
        max_per_hour=account.outbound_max_per_hour,
    )


class OutboundCalls:
    """``await outbound(call, internal)`` for calls with an authenticated account."""

    def __init__(
        self,
        db: Database,
        credentials: DirectoryCredentialStore,
        contacts: ContactIndex,
        guard: TollFraudGuard | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        dns: HostResolver | None = None,
    ) -> None:
        self.dns = dns
        self.db = db
        self.credentials = credentials
        self.contacts = contacts
        self.guard = guard or TollFraudGuard()
        self.monotonic = monotonic

    def attach(self, bus: EventBus) -> Callable[[], None]:
        """Release the guard's slot when a call ends (whatever ended it)."""

        async def on_ended(event: Event) -> None:
            if isinstance(event, CallEnded):
                self.guard.release(event.account_id, event.call_id)

        return bus.subscribe(CallEnded, on_ended)

    async def __call__(self, call: InboundCall, internal: Internal) -> Plan | Reject:
        auth = call.auth
        account_id = auth.account_id if auth is not None else None
        if account_id is None:
            return Reject(403, "Forbidden")
        realm = self.credentials.realm_of(account_id) or ""
        async with self.db.read() as s:
            account = await s.get(Account, account_id)
            staff = (
                await s.execute(
                    select(Employee.extension, Employee.sip_username, Employee.id).where(
                        Employee.account_id == account_id, Employee.active.is_(True)
                    )
                )
            ).all()
        extensions = {ext for ext, _user, _id in staff}
        # The journal's "placed by": the phone's digest user is the employee's SIP username.
        user = auth.user if auth is not None else None
        placed_by = next((eid for _ext, name, eid in staff if name == user), None)
        if account is None:
            return Reject(403, "Forbidden")
        dialed, private = withheld(call.dialed)  # *67 / #31#: the number is not shown
        try:
            target = normalize_dialed(dialed, account.country, extensions=extensions)
        except InvalidDialString:
            return Reject(484, "Address Incomplete", account_id=account_id)
        if target.kind is DialKind.internal:
            return await internal(call, account_id, realm)
        if target.kind is DialKind.external:
            decision = self.guard.admit(
                account_id, call.call_id, target, self.monotonic(), policy=_toll_policy(account)
            )
            if isinstance(decision, Deny):
                log.warning("call %s to %s refused: %s", call.call_id, target.value, decision)
                refusal = Reject(403, f"Forbidden ({decision.reason.value})", account_id=account_id)
                return await self._refused(call, account, target, placed_by, refusal)
        try:
            return await self._plan(call, account, target, placed_by, private=private)
        except NoTrunk:
            self.guard.release(account_id, call.call_id)
            refusal = Reject(503, "No Trunk Available", account_id=account_id)
            return await self._refused(call, account, target, placed_by, refusal)
        except Exception:
            self.guard.release(account_id, call.call_id)
            raise

    async def _refused(
        self,
        call: InboundCall,
        account: Account,
        target: DialTarget,
        placed_by: uuid.UUID | None,
        refusal: Reject,
    ) -> Plan | Reject:
        """A call the PBX will not place, as the journal is to find it. A phone's own call is
        a row of its own: under the callee in E.164 and their contact, as a call put through
        is ("84957654321" refused by the hourly cap is found by ``number=+74957654321`` and by
        the customer) — a Plan that rings nobody and ends in ``refusal``, since a Reject
        carries only what the phone sent. A transfer's or a callback's target (no phone user)
        is no call of its own: the refusal itself, whose status the transfer reports."""
        if call.auth is None or call.auth.user is None:
            return refusal
        external = target.kind is DialKind.external
        hit = await self.contacts.lookup(account.id, target.value) if external else None
        return Plan(
            account_id=account.id,
            waves=(),
            final=refusal,
            direction=Direction.outbound,
            contact_id=hit.contact_id if hit is not None else None,
            dialed=target.value if external else None,
            placed_by=placed_by,
        )

    async def _plan(
        self,
        call: InboundCall,
        account: Account,
        target: DialTarget,
        placed_by: uuid.UUID | None,
        *,
        private: bool = False,
    ) -> Plan:
        async with self.db.read() as s:
            numbers = list(
                await s.scalars(
                    select(Number).where(Number.account_id == account.id, Number.active.is_(True))
                )
            )
            trunks = list(
                await s.scalars(
                    select(Trunk)
                    .where(Trunk.account_id == account.id, Trunk.active.is_(True))
                    .order_by(Trunk.name)
                )
            )
        names = self.dns is not None
        by_id = {t.id: t for t in trunks if _trunk_flow(t, names) is not None}
        options = [
            TrunkOption(
                id=t.id,
                name=t.name,
                priority=t.priority,
                prefixes=tuple(t.prefixes),
                numbers=frozenset(n.e164 for n in numbers if n.trunk_id == t.id),
                default_caller_id=t.caller_id,
            )
            for t in by_id.values()
        ]
        callee = target.value
        caller_id: str | None = None
        hit = None
        if target.kind is DialKind.external:
            ours = [OwnNumber(n.e164) for n in numbers]
            # The last of ours the client called that we may show: past a call to our 8-800
            # hotline, the city line they called before it.
            shown_ours = {n.e164 for n in numbers if presentable(n.e164)}
            last = await self._last_called(account, callee, shown_ours)
            hit = await self.contacts.lookup(account.id, callee)
            choice = select_caller_id(
                callee, ours, last_called=last, contact_city=hit.city if hit else None
            )
            caller_id = choice.e164
        owner = {n.e164: n.trunk_id for n in numbers}
        waves = []
        for trunk, flow in await self._reachable(callee, options, by_id, caller_id):
            # A carrier presents only the numbers it hosts: a chosen caller ID that another
            # trunk hosts goes out as this trunk's own number here (a failover trunk).
            elsewhere = caller_id is not None and owner.get(caller_id) not in (None, trunk.id)
            shown = (trunk.caller_id if elsewhere else None) or caller_id or trunk.caller_id
            # The Request-URI keeps the trunk's name (RFC 3263 §4: resolved only for sending)
            # and, located by SRV, no port of one server but the transport it was found for.
            where = server_part(trunk.host, trunk.port, trunk.transport.value)
            ring = RingTarget(
                f"sip:{callee}@{where}",
                flow,
                Target(TargetKind.external, callee),
                label="out",
                from_user=shown,
                auth=trunk_credentials(trunk, self.db.sealer),
                secure_media=trunk.srtp,
                carrier_user=trunk.from_user,
                withhold=private,
            )
            waves.append(Wave((ring,), OUTBOUND_RING_SECONDS, silence=SERVER_SILENCE))
            log.info("call %s: %s via %s as %s", call.call_id, callee, trunk.name, shown)
        return Plan(
            account_id=account.id,
            waves=tuple(waves),
            final=Reject(480, "Temporarily Unavailable", account_id=account.id),
            direction=Direction.outbound,
            record=account.recording_enabled,
            park_seconds=account.park_seconds,
            park_ring_back_seconds=account.park_ring_back_seconds,
            fail_over=CARRIER_FAILURES,
            contact_id=hit.contact_id if hit is not None else None,  # the customer called
            # The journal's row: whom, as E.164 whatever the employee dialled ("8916…"), and
            # who dialled (a customer who calls back reaches them: {manager: last}).
            dialed=callee if target.kind is DialKind.external else None,
            placed_by=placed_by,
        )

    async def _reachable(
        self,
        callee: str,
        options: list[TrunkOption],
        by_id: dict[uuid.UUID, Trunk],
        caller_id: str | None,
    ) -> list[tuple[Trunk, Flow]]:
        """The trunks whose hosts resolve, best first, each with the flows to its servers in
        the order to try them (at most MAX_TRUNKS trunks); NoTrunk when none does."""
        found: list[tuple[Trunk, Flow]] = []
        trunks = 0
        for choice in rank_trunks(callee, options, caller_id=caller_id):  # NoTrunk if empty
            trunk = by_id[choice.id]
            flow = _trunk_flow(trunk, self.dns is not None)
            flows: tuple[Flow, ...] = () if flow is None else (flow,)
            if flow is not None and self.dns is not None:
                flows = await self.dns.locate(trunk.host, trunk.port, flow.transport)
            if not flows:
                log.warning("trunk %s: %s does not resolve, passed over", trunk.name, trunk.host)
                continue
            found.extend((trunk, f) for f in flows[:MAX_SERVERS])
            trunks += 1
            if trunks == MAX_TRUNKS:
                break
        if not found:
            raise NoTrunk(f"no trunk that can dial {callee} is reachable")
        return found

    async def _last_called(self, account: Account, callee: str, ours: set[str]) -> str | None:
        """The number of ours the callee called last (the journal stores what the carrier
        sent, so both sides are normalized here)."""
        variants = {callee, callee.lstrip("+")}
        if callee.startswith("+7"):
            variants.add("8" + callee[2:])
        async with self.db.read() as s:
            dialed = list(
                await s.scalars(
                    select(CallRecord.dialed)
                    .where(
                        CallRecord.account_id == account.id,
                        CallRecord.direction == Direction.inbound,
                        CallRecord.caller.in_(variants),
                    )
                    .order_by(CallRecord.started_at.desc())
                    .limit(LAST_CALLED_SCAN)
                )
            )
        for raw in dialed:
            try:
                e164 = normalize(raw, account.country)
            except InvalidInput:
                continue
            if e164 in ours:
                return e164
        return None
