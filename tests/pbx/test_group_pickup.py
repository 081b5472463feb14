"""Group pickup (``*8`` alone): the feature code over a real directory, and the B2BUA taking
the oldest call that rings a fellow group member over loopback; ``*8<ext>`` keeps working."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from tests.calls.conftest import Phone, make_phone
from tests.calls.rig import ACCOUNT, Pbx, start_pbx
from tests.calls.test_b2bua import dial, final_status, hang_up
from tests.calls.test_transfer import until
from zvonar.accounts.access import Principal
from zvonar.accounts.models import Role
from zvonar.calls.events import CallAnswered, CallRinging, Target, TargetKind
from zvonar.calls.pickup import GroupPickup
from zvonar.calls.plan import CallerAuth, InboundCall, Pickup, Plan, Reject, RingTarget, Wave
from zvonar.container import Container
from zvonar.directory.models import Employee
from zvonar.directory.schemas import EmployeeIn, GroupIn, MemberIn
from zvonar.media.io import EmbeddedMediaEngine
from zvonar.pbx.features import GROUP_PICKUP_CODE, PICKUP_CODE, feature_call
from zvonar.sip.ua import Flow

# -- the feature code over the directory -------------------------------------------------------


def dialing(dialed: str, user: str | None, account: uuid.UUID | None) -> InboundCall:
    return InboundCall(
        call_id="pk1",
        dialed=dialed,
        caller=user or "",
        caller_display=None,
        from_uri=f"sip:{user}@x.zvonar",
        to_uri=f"sip:{dialed}@x.zvonar",
        source=Flow("UDP", "127.0.0.1", 5099),
        started_at=datetime(2024, 3, 4, 10, 0, tzinfo=UTC),
        auth=CallerAuth(account_id=account, user=user, realm="x.zvonar") if account else None,
    )


async def _staff(container: Container, slug: str) -> tuple[Principal, dict[str, uuid.UUID]]:
    account = await container.accounts.create_account(f"Account {slug}", slug)
    p = Principal(account_id=account.id, role=Role.admin)
    ids = {}
    for ext in ("101", "102", "103", "104"):
        made = await container.directory.create_employee(
            p, EmployeeIn(name=f"E{ext}", extension=ext, sip_password="s3cret-pass-1")
        )
        ids[ext] = made.view.employee.id
    return p, ids


def _members(ids: dict[str, uuid.UUID], *exts: str) -> list[MemberIn]:
    return [MemberIn(employee_id=ids[e]) for e in exts]


async def _user(container: Container, employee_id: uuid.UUID) -> str:
    async with container.db.read() as s:
        emp = await s.get(Employee, employee_id)
        assert emp is not None
        return emp.sip_username


async def test_group_code_names_the_fellow_members(container: Container) -> None:
    p, ids = await _staff(container, "alpha")
    await container.directory.create_group(
        p, GroupIn(name="sales", members=_members(ids, "101", "102"))
    )
    await container.directory.create_group(
        p, GroupIn(name="support", members=_members(ids, "102", "103"))
    )
    # 104 is in no group; another account's group with "102" must never count.
    q, other = await _staff(container, "beta")
    await container.directory.create_group(
        q, GroupIn(name="sales", members=_members(other, "101", "102"))
    )
    user102 = await _user(container, ids["102"])
    order = await feature_call(container.db, dialing(GROUP_PICKUP_CODE, user102, p.account_id))
    assert isinstance(order, GroupPickup)
    assert order.account_id == p.account_id
    assert order.members == {ids["101"], ids["103"]}  # both groups, not 102 itself
    assert order.picker == Target(TargetKind.employee, "E102", ids["102"])

    user101 = await _user(container, ids["101"])
    order = await feature_call(container.db, dialing("*8", user101, p.account_id))
    assert isinstance(order, GroupPickup) and order.members == {ids["102"]}

    user104 = await _user(container, ids["104"])
    alone = await feature_call(container.db, dialing("*8", user104, p.account_id))
    assert alone == Reject(404, "Not Found")

    # Directed pickup is unchanged: *8<ext> names that one employee.
    directed = await feature_call(container.db, dialing(f"{PICKUP_CODE}104", user101, p.account_id))
    assert isinstance(directed, Pickup) and not isinstance(directed, GroupPickup)
    assert directed.employee_id == ids["104"]

    # Not a phone of ours (a trunk, a stranger) or a user of another account: refused.
    assert await feature_call(container.db, dialing("*8", None, None)) == Reject(403, "Forbidden")
    stranger = await feature_call(container.db, dialing("*8", user102, uuid.uuid4()))
    assert stranger == Reject(403, "Forbidden")
    # Beta's 102 shares "sales" with beta's 101 only: alpha's members never leak in.
    beta = await feature_call(
        container.db, dialing("*8", await _user(container, other["102"]), q.account_id)
    )
    assert isinstance(beta, GroupPickup) and beta.members == {other["101"]}


# -- the B2BUA carries it out ------------------------------------------------------------------

ANNA = uuid.UUID("00000000-0000-4000-8000-0000000000a1")  # in Boris's group
CARL = uuid.UUID("00000000-0000-4000-8000-0000000000c3")  # in Boris's group
DORA = uuid.UUID("00000000-0000-4000-8000-0000000000d4")  # not
BORIS = uuid.UUID("00000000-0000-4000-8000-0000000000b2")  # picks up


@pytest.fixture
async def pbx() -> AsyncIterator[Pbx]:
    engine = EmbeddedMediaEngine(media_timeout=0, host6=None)
    rig = await start_pbx(engine)
    yield rig
    await rig.close()
    await engine.close()


@pytest.fixture
async def phones() -> AsyncIterator[tuple[Phone, Phone, Phone]]:
    caller, callee, picker = await make_phone(), await make_phone(), await make_phone()
    yield caller, callee, picker
    for phone in (caller, callee, picker):
        await phone.runner.close()


def ring(phone: Phone, who: uuid.UUID) -> Plan:
    target = RingTarget(phone.uri("ring"), phone.flow, Target(TargetKind.employee, "x", who))
    return Plan(ACCOUNT, (Wave((target,), 20),))


def group_pickup(_call: InboundCall) -> Pickup:
    boris = Target(TargetKind.employee, "Boris", BORIS)
    return GroupPickup(ACCOUNT, BORIS, boris, members=frozenset({ANNA, CARL}))


async def test_group_pickup_takes_the_oldest_call_ringing_a_member(
    pbx: Pbx, phones: tuple[Phone, Phone, Phone]
) -> None:
    caller, callee, picker = phones
    pbx.resolver.plans.update(
        {"200": ring(callee, DORA), "201": ring(callee, ANNA), "202": ring(callee, CARL)}
    )
    pbx.resolver.plans["*8"] = group_pickup  # type: ignore[assignment]
    legs = {}
    for n, dialed in enumerate(("200", "201", "202"), start=1):  # oldest first
        legs[dialed] = dial(caller, pbx, dialed)
        await until(lambda n=n: len(pbx.bus.of_type(CallRinging)) == n)
    ids = {r.target.target_id: r.call_id for r in pbx.bus.of_type(CallRinging)}

    first = dial(picker, pbx, "*8")
    assert await final_status(first) == 200
    assert await final_status(legs["201"]) == 200  # Anna's call: the oldest of the group's
    second = dial(picker, pbx, "*8")
    assert await final_status(second) == 200
    assert await final_status(legs["202"]) == 200  # then Carl's
    third = dial(picker, pbx, "*8")
    assert await final_status(third) == 404  # Dora's call rings someone outside the group
    answered = {e.call_id: e.by for e in pbx.bus.of_type(CallAnswered)}
    assert answered == {ids[ANNA]: BORIS, ids[CARL]: BORIS}

    for dialed in ("201", "202"):
        hang_up(caller, legs[dialed])
    hang_up(caller, legs["200"])  # CANCEL
    await pbx.wait_ended(3)


async def test_a_call_ringing_only_the_picker_is_not_group_picked(
    pbx: Pbx, phones: tuple[Phone, Phone, Phone]
) -> None:
    caller, callee, picker = phones
    pbx.resolver.plans["300"] = ring(callee, BORIS)
    pbx.resolver.plans["*8"] = group_pickup  # type: ignore[assignment]
    leg = dial(caller, pbx, "300")
    await until(lambda: pbx.bus.of_type(CallRinging))
    assert await final_status(dial(picker, pbx, "*8")) == 404
    assert not pbx.bus.of_type(CallAnswered)
    hang_up(caller, leg)
    await pbx.wait_ended()
