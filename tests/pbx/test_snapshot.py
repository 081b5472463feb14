"""The resolver's read model: loaded once, and a change made through the services is what the
very next call sees (schemes, assignments, numbers, employees, groups, trunks, calendar)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from zvonar.accounts.models import Account
from zvonar.calls.events import CallEnded, Direction, Disposition, HangupSide
from zvonar.calls.plan import InboundCall, Plan, Reject
from zvonar.configfile import apply_config
from zvonar.container import Container
from zvonar.directory.models import GroupStrategy, Transport, TrunkAuth
from zvonar.directory.schemas import (
    EmployeeIn,
    EmployeePatch,
    GroupIn,
    GroupPatch,
    MemberIn,
    NumberIn,
    NumberPatch,
    TrunkIn,
)
from zvonar.pbx.credentials import DirectoryCredentialStore
from zvonar.pbx.resolver import PbxResolver
from zvonar.pbx.snapshot import AccountSnapshot, RoutingSnapshot
from zvonar.routing.schedule import Branch
from zvonar.routing.scheme import RingStep
from zvonar.sip.location import Binding
from zvonar.sip.ua import Flow

from .conftest import NUMBER, Seeded, seed_account

T0 = datetime(2024, 3, 4, 10, 0, tzinfo=UTC)


def ring(*targets: dict[str, str], timeout: int = 10, **extra: str) -> dict[str, object]:
    step = {"type": "ring", "targets": list(targets), "timeout": timeout, **extra}
    return {"branches": {"working": [step]}, "final": {"type": "hangup"}}


def call(dialed: str, *, from_uri: str = "sip:+79161234567@10.1.1.1") -> InboundCall:
    return InboundCall(
        call_id="c1",
        dialed=dialed,
        caller=from_uri.split(":", 1)[1].split("@", 1)[0],
        caller_display=None,
        from_uri=from_uri,
        to_uri=f"sip:{dialed}@127.0.0.1",
        source=Flow("UDP", "127.0.0.1", 5070),
        started_at=T0,
    )


async def resolver_for(container: Container) -> PbxResolver:
    creds = DirectoryCredentialStore(container.db)
    await creds.load()
    return PbxResolver(container.db, creds, lambda _aor: [], container.contacts.index)


async def account(snapshot: RoutingSnapshot, alpha: Seeded) -> AccountSnapshot:
    snap = await snapshot.account(alpha.account_id)
    assert snap is not None
    return snap


def first_ring(snap: AccountSnapshot, number_id: uuid.UUID) -> RingStep:
    scheme = snap.scheme_of(number_id)
    assert scheme is not None
    step = scheme.branches[Branch.working][0]
    assert isinstance(step, RingStep)
    return step


async def test_calls_read_memory_until_something_changes(container: Container) -> None:
    alpha = await seed_account(container)
    beta = await seed_account(container, "beta", number="+74957654321")
    resolver = await resolver_for(container)
    assert isinstance(await resolver(call(NUMBER)), Plan)
    loads = resolver.snapshot.loads
    for _ in range(5):
        assert isinstance(await resolver(call(NUMBER)), Plan)
    assert resolver.snapshot.loads == loads  # no database reads after the first call
    # A change in another account leaves this one's data cached.
    await container.directory.update_employee(
        beta.principal, beta.employee_id, EmployeePatch(name="Boris")
    )
    assert isinstance(await resolver(call(NUMBER)), Plan)
    assert resolver.snapshot.loads == loads
    await container.directory.update_employee(
        alpha.principal, alpha.employee_id, EmployeePatch(name="Anya")
    )
    assert isinstance(await resolver(call(NUMBER)), Plan)
    assert resolver.snapshot.loads == loads + 1
    assert (await account(resolver.snapshot, alpha)).staff["101"].name == "Anya"


async def test_changed_scheme_takes_effect_for_the_next_call(container: Container) -> None:
    alpha = await seed_account(container, ring_seconds=10)
    resolver = await resolver_for(container)
    assert isinstance(await resolver(call(NUMBER)), Plan)
    assert first_ring(await account(resolver.snapshot, alpha), alpha.number_id).timeout == 10
    (row,) = (await container.routing.list_schemes(alpha.principal)).items
    await container.routing.replace_scheme(
        alpha.principal, row.id, "Main", ring({"employee": "101"}, timeout=25)
    )
    assert isinstance(await resolver(call(NUMBER)), Plan)
    assert first_ring(await account(resolver.snapshot, alpha), alpha.number_id).timeout == 25

    # Re-assigning the number to another scheme, then taking the scheme away.
    other = await container.routing.create_scheme(
        alpha.principal, "Other", ring({"employee": "101"}, timeout=7)
    )
    await container.routing.assign(alpha.principal, alpha.number_id, other.id)
    assert isinstance(await resolver(call(NUMBER)), Plan)
    assert first_ring(await account(resolver.snapshot, alpha), alpha.number_id).timeout == 7
    await container.routing.assign(alpha.principal, alpha.number_id, None)
    assert await resolver(call(NUMBER)) == Reject(480, "No Route", account_id=alpha.account_id)


async def test_numbers_added_changed_and_removed(container: Container) -> None:
    alpha = await seed_account(container)
    resolver = await resolver_for(container)
    new = "+74959876543"
    assert await resolver(call(new)) == Reject(404, "Not Found")
    num = await container.directory.add_number(alpha.principal, NumberIn(number=new, label="New"))
    (row,) = (await container.routing.list_schemes(alpha.principal)).items
    await container.routing.assign(alpha.principal, num.id, row.id)
    plan = await resolver(call(new))
    assert isinstance(plan, Plan) and plan.number_label == "New"
    await container.directory.update_number(alpha.principal, num.id, NumberPatch(label="Renamed"))
    plan = await resolver(call(new))
    assert isinstance(plan, Plan) and plan.number_label == "Renamed"
    await container.directory.update_number(alpha.principal, num.id, NumberPatch(active=False))
    assert await resolver(call(new)) == Reject(404, "Not Found")
    await container.directory.remove_number(alpha.principal, alpha.number_id)
    assert await resolver(call(NUMBER)) == Reject(404, "Not Found")


async def test_employees_groups_trunks_and_calendar_follow_events(container: Container) -> None:
    alpha = await seed_account(container)
    p = alpha.principal
    snapshot = (await resolver_for(container)).snapshot
    snap = await account(snapshot, alpha)
    assert set(snap.staff) == {"101"} and snap.groups == {} and snap.trunks == ()
    assert not snap.needs_history

    bob = await container.directory.create_employee(
        p, EmployeeIn(name="Bob", extension="102", sip_password="bob-pass-102")
    )
    members = [MemberIn(employee_id=bob.view.employee.id), MemberIn(employee_id=alpha.employee_id)]
    group = await container.directory.create_group(
        p, GroupIn(name="Sales", strategy=GroupStrategy.in_turn, members=members)
    )
    snap = await account(snapshot, alpha)
    assert set(snap.staff) == {"101", "102"}
    assert snap.groups["Sales"].members == (("102", 1), ("101", 1))
    assert snap.group_names == {group.group.id: "Sales"}

    await container.directory.set_members(
        p, group.group.id, [MemberIn(employee_id=alpha.employee_id, weight=3)]
    )
    assert (await account(snapshot, alpha)).groups["Sales"].members == (("101", 3),)
    await container.directory.update_employee(p, alpha.employee_id, EmployeePatch(active=False))
    snap = await account(snapshot, alpha)
    assert set(snap.staff) == {"102"} and "Sales" not in snap.groups  # no active member left
    assert snap.extensions[alpha.employee_id] == "101"  # HTTP route replies still name it

    await container.directory.update_group(
        p, group.group.id, GroupPatch(strategy=GroupStrategy.least_recent)
    )
    await container.directory.update_employee(p, alpha.employee_id, EmployeePatch(active=True))
    assert (await account(snapshot, alpha)).needs_history

    trunk = await container.directory.create_trunk(
        p,
        TrunkIn(name="Carrier", host="192.0.2.10", transport=Transport.udp,
                auth_mode=TrunkAuth.ip, allowed_sources=["192.0.2.10"]),
    )  # fmt: skip
    (only,) = (await account(snapshot, alpha)).trunks
    assert only.id == trunk.id and only.host == "192.0.2.10" and only.transport == "udp"

    await container.routing.set_calendar(p, {"hours": {"mon": ["00:00-23:59"]}, "country": None})
    cal = (await account(snapshot, alpha)).calendar
    assert cal.branch_at(datetime(2024, 3, 4, 22, 0, tzinfo=UTC)) is Branch.working


async def test_a_write_during_a_load_is_not_lost(container: Container) -> None:
    alpha = await seed_account(container, ring_seconds=10)
    (row,) = (await container.routing.list_schemes(alpha.principal)).items
    snapshot = RoutingSnapshot(container.db)
    snapshot.attach(container.bus)
    read = snapshot._read_account
    started, release = asyncio.Event(), asyncio.Event()

    async def slow_read(account_id: uuid.UUID) -> AccountSnapshot | None:
        result = await read(account_id)
        if snapshot.loads == 0:  # the first load read the old scheme; hold it back
            started.set()
            await release.wait()
        return result

    snapshot._read_account = slow_read  # type: ignore[method-assign]
    first = asyncio.create_task(snapshot.account(alpha.account_id))
    await started.wait()
    await container.routing.replace_scheme(
        alpha.principal, row.id, "Main", ring({"employee": "101"}, timeout=40)
    )
    release.set()
    snap = await first
    assert snap is not None and first_ring(snap, alpha.number_id).timeout == 40
    assert snapshot.loads == 2  # the stale read was thrown away and read again


async def clocked(container: Container) -> tuple[Seeded, list[float], RoutingSnapshot]:
    """An account, and a snapshot on a clock the test moves (``now[0]``) that has loaded it.
    The snapshot follows no bus: to it, the container's writes are another process's."""
    alpha = await seed_account(container)
    now = [0.0]
    snapshot = RoutingSnapshot(container.db, max_age=30, clock=lambda: now[0])
    assert (await account(snapshot, alpha)).account.recording_enabled is True
    return alpha, now, snapshot


async def recording_off(container: Container, alpha: Seeded) -> None:
    """``zvonar config apply`` run elsewhere: its events go to its own bus; it bumps the
    account's routing version."""
    doc = {"account": {"recording_enabled": False}}
    assert await apply_config(container, alpha.account_id, doc, dry_run=False)


async def hand_edit(container: Container, alpha: Seeded) -> None:
    """A write that bypasses the services: no event, no routing version."""
    async with container.db.unit_of_work() as uow:
        acc = await uow.session.get(Account, alpha.account_id)
        assert acc is not None
        acc.recording_enabled = False


async def reload_behind(snapshot: RoutingSnapshot) -> None:
    """Wait for the one background confirmation or reload the last read started."""
    (task,) = [slot.refresh for slot in snapshot._accounts.values() if slot.refresh is not None]
    async with asyncio.timeout(5):
        await task


async def test_max_age_bounds_what_another_process_writes(container: Container) -> None:
    alpha, now, snapshot = await clocked(container)
    loads = snapshot.loads
    await recording_off(container, alpha)
    now[0] = 14.0
    assert (await account(snapshot, alpha)).account.recording_enabled is True
    # A quiet account past max_age: its version moved, so it is read on the call path;
    # nothing older is served, even once.
    now[0] = 31.0
    assert (await account(snapshot, alpha)).account.recording_enabled is False
    assert (snapshot.checks, snapshot.loads, snapshot.refreshes) == (1, loads + 1, 0)


async def test_a_quiet_account_past_max_age_is_confirmed_by_its_version(
    container: Container,
) -> None:
    alpha, now, snapshot = await clocked(container)
    loads = snapshot.loads
    before = await account(snapshot, alpha)
    now[0] = 31.0  # nothing changed: one read of the version, not of the data
    assert await account(snapshot, alpha) is before
    assert (snapshot.checks, snapshot.loads) == (1, loads)
    now[0] = 45.0  # confirmed at 31: young again
    assert await account(snapshot, alpha) is before
    assert (snapshot.checks, snapshot.loads, snapshot.refreshes) == (1, loads, 0)


async def test_a_value_past_half_its_age_is_served_and_confirmed_in_the_background(
    container: Container,
) -> None:
    alpha, now, snapshot = await clocked(container)
    loads = snapshot.loads
    await recording_off(container, alpha)
    now[0] = 14.0  # young: served, nothing read
    assert (await account(snapshot, alpha)).account.recording_enabled is True
    await asyncio.sleep(0.05)
    assert (snapshot.checks, snapshot.loads, snapshot.refreshes) == (0, loads, 0)
    now[0] = 16.0  # past half its age: this call is served at once, the check runs behind it
    assert (await account(snapshot, alpha)).account.recording_enabled is True
    assert (snapshot.checks, snapshot.loads) == (0, loads)  # not on this call's path
    await reload_behind(snapshot)  # the version moved: read whole
    assert (snapshot.checks, snapshot.loads, snapshot.refreshes) == (1, loads + 1, 1)
    now[0] = 40.0  # 24 s after the reload: still young, no call waited for a read
    assert (await account(snapshot, alpha)).account.recording_enabled is False
    assert snapshot.loads == loads + 1
    await reload_behind(snapshot)  # past half its age again: confirmed, nothing read
    assert (snapshot.checks, snapshot.loads, snapshot.refreshes) == (2, loads + 1, 2)


async def test_a_failed_background_reload_keeps_the_value_until_max_age(
    container: Container, caplog: pytest.LogCaptureFixture
) -> None:
    alpha, now, snapshot = await clocked(container)
    await recording_off(container, alpha)  # the version moves: the reload must read
    read = snapshot._read_account
    failed = asyncio.Event()

    async def broken(account_id: uuid.UUID) -> AccountSnapshot | None:
        failed.set()
        raise OSError("database gone")

    snapshot._read_account = broken  # type: ignore[method-assign]
    now[0] = 20.0
    assert (await account(snapshot, alpha)).account.recording_enabled is True
    await reload_behind(snapshot)
    assert failed.is_set() and "background reload failed" in caplog.text
    assert (await account(snapshot, alpha)).account.recording_enabled is True  # kept
    await reload_behind(snapshot)  # that read tried again behind the call (and failed again)
    assert snapshot.refreshes == 0
    snapshot._read_account = read  # type: ignore[method-assign]
    now[0] = 31.0
    assert (await account(snapshot, alpha)).account.recording_enabled is False


async def test_a_write_past_the_services_is_read_within_full_age(container: Container) -> None:
    alpha, now, snapshot = await clocked(container)
    loads = snapshot.loads
    await hand_edit(container, alpha)
    now[0] = 31.0  # no version moved: confirmed, still the old value
    assert (await account(snapshot, alpha)).account.recording_enabled is True
    now[0] = 301.0  # read whole 301 s ago: served, and read again behind this call
    assert (await account(snapshot, alpha)).account.recording_enabled is True
    await reload_behind(snapshot)
    assert snapshot.loads == loads + 1
    assert (await account(snapshot, alpha)).account.recording_enabled is False


async def test_account_settings_applied_here_take_effect_for_the_next_call(
    container: Container,
) -> None:
    alpha = await seed_account(container)
    snapshot = RoutingSnapshot(container.db)
    snapshot.attach(container.bus)
    assert (await account(snapshot, alpha)).account.recording_enabled is True
    await recording_off(container, alpha)  # this process's bus: AccountSettingsChanged
    assert (await account(snapshot, alpha)).account.recording_enabled is False
    assert snapshot.checks == 0


async def test_history_is_read_only_when_needed_and_again_after_a_call(
    container: Container,
) -> None:
    alpha = await seed_account(container)
    flushes: list[int] = []

    async def flush() -> None:
        flushes.append(1)

    snapshot = RoutingSnapshot(container.db, flush=flush)
    snapshot.attach(container.bus)
    creds = DirectoryCredentialStore(container.db)
    await creds.load()
    resolver = PbxResolver(
        container.db, creds, lambda _aor: [], container.contacts.index, snapshot=snapshot
    )
    assert isinstance(await resolver(call(NUMBER)), Plan)
    assert flushes == []  # a plain "ring 101" scheme never reads the journal

    (row,) = (await container.routing.list_schemes(alpha.principal)).items
    await container.routing.replace_scheme(
        alpha.principal, row.id, "Main", ring({"employee": "101"}, strategy="fewest_calls")
    )
    assert isinstance(await resolver(call(NUMBER)), Plan)
    assert isinstance(await resolver(call(NUMBER)), Plan)
    assert flushes == [1]  # read once, then cached
    await container.bus.publish(
        CallEnded(account_id=uuid.uuid4(), call_id="other", disposition=Disposition.answered,
                  ended_at=T0, hangup=HangupSide.caller)
    )  # fmt: skip
    assert isinstance(await resolver(call(NUMBER)), Plan)
    assert flushes == [1]  # another account's call changes nothing here
    await container.bus.publish(
        CallEnded(account_id=alpha.account_id, call_id="c1", disposition=Disposition.answered,
                  ended_at=T0, hangup=HangupSide.caller)
    )  # fmt: skip
    assert isinstance(await resolver(call(NUMBER)), Plan)
    assert flushes == [1, 1]


async def test_internal_calls_follow_employee_changes(container: Container) -> None:
    alpha = await seed_account(container)
    phones = {
        f"sip:{user}@alpha.zvonar": [
            Binding(aor=f"sip:{user}@alpha.zvonar", contact=f"sip:{user}@127.0.0.1:{port}",
                    expires_at=1e9, source=("127.0.0.1", port))
        ]
        for user, port in (("101", 5099), ("102", 5070), ("carol", 5098))
    }  # fmt: skip
    creds = DirectoryCredentialStore(container.db)
    creds.attach(container.bus)
    await creds.load()
    resolver = PbxResolver(
        container.db, creds, lambda aor: phones.get(aor, []), container.contacts.index
    )
    internal = call("103", from_uri="sip:102@alpha.zvonar")
    # A call between the account's phones to an unknown extension: internal, refused.
    assert await resolver(internal) == Reject(
        404, "Not Found", account_id=alpha.account_id, direction=Direction.internal
    )
    await container.directory.create_employee(
        alpha.principal, EmployeeIn(name="Bob", extension="102", sip_password="bob-pass-102")
    )
    # Carol's extension changes (101's could not: the account's scheme rings it).
    carol = await container.directory.create_employee(
        alpha.principal,
        EmployeeIn(name="Carol", extension="104", sip_username="carol", sip_password="carol-104"),
    )
    await container.directory.update_employee(
        alpha.principal, carol.view.employee.id, EmployeePatch(extension="103")
    )
    plan = await resolver(internal)
    assert isinstance(plan, Plan) and plan.account_id == alpha.account_id
    assert [t.uri for t in plan.waves[0].targets] == ["sip:carol@127.0.0.1:5098"]


async def test_preload_leaves_nothing_for_the_first_call(container: Container) -> None:
    await seed_account(container)
    await seed_account(container, "beta", number="+74957654321")
    resolver = await resolver_for(container)
    assert await resolver.snapshot.preload() == 2
    loads = resolver.snapshot.loads
    assert isinstance(await resolver(call(NUMBER)), Plan)
    assert isinstance(await resolver(call("+74957654321")), Plan)
    assert resolver.snapshot.loads == loads


def test_presence_is_worked_out_per_employee_on_demand() -> None:
    from zvonar.pbx.presence import StaffPresence
    from zvonar.pbx.snapshot import Person
    from zvonar.routing.strategies import MemberState, Presence

    anna = Person(uuid.uuid4(), "Anna", "101", "101")
    bob = Person(uuid.uuid4(), "Bob", "102", "bob")
    asked: list[str] = []

    def bindings(aor: str) -> list[Binding]:
        asked.append(aor)
        return [Binding(aor=aor, contact="sip:x@127.0.0.1", expires_at=1e9)] if "101" in aor else []

    history = {anna.id: MemberState("", last_call_end=T0, calls_today=3)}
    presence = StaffPresence({"101": anna, "102": bob}, history, bindings, "alpha.zvonar")
    assert asked == [] and len(presence) == 2
    assert set(presence) == {"employee:101", "employee:102"}
    first = presence["employee:101"]
    assert (first.key, first.presence, first.calls_today) == ("employee:101", Presence.available, 3)
    assert presence.get("employee:102") == MemberState("employee:102", Presence.unregistered)
    assert presence.get("employee:103") is None and presence.get("group:Sales") is None
    assert presence["employee:101"] is first  # asked once per call
    assert asked == ["sip:101@alpha.zvonar", "sip:bob@alpha.zvonar"]
