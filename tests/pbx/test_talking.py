"""Who is on a call (calls/talking.py), from the neutral call events; and the ring strategies
passing over an employee who talks."""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from tests.pbx.test_resolver import PHONE, _resolver, call
from tests.support.routes import unroll
from zvonar.calls.events import (
    CallAnswered,
    CallEnded,
    CallStarted,
    Direction,
    Disposition,
    HangupSide,
    LegEnded,
    LegEndReason,
)
from zvonar.calls.talking import Talking
from zvonar.container import Container
from zvonar.routing import engine as engine_module
from zvonar.routing import strategies
from zvonar.routing.strategies import MemberState, Presence, Strategy

from .conftest import seed_account

ACCOUNT, ANNA, BORIS = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
AT = datetime(2024, 3, 4, 10, 0, tzinfo=UTC)


def _answered(call_id: str, leg: str, by: uuid.UUID) -> CallAnswered:
    return CallAnswered(account_id=ACCOUNT, call_id=call_id, leg_id=leg, at=AT, by=by)


def _ended(call_id: str) -> CallEnded:
    return CallEnded(
        account_id=ACCOUNT,
        call_id=call_id,
        disposition=Disposition.answered,
        ended_at=AT,
        hangup=HangupSide.caller,
    )


def test_an_employee_talks_from_the_answer_to_the_end_of_the_leg_or_call() -> None:
    t = Talking()
    t.apply(_answered("c1", "c1.w0t0", ANNA))
    assert t.busy(ACCOUNT, ANNA, "101") and not t.busy(ACCOUNT, BORIS, "102")
    t.apply(_answered("c2", "c2.w0t0", ANNA))  # a second call (call waiting)
    over = LegEndReason.completed
    t.apply(LegEnded(account_id=ACCOUNT, call_id="c1", leg_id="c1.w0t0", reason=over, at=AT))
    assert t.busy(ACCOUNT, ANNA, "101")  # still on c2
    t.apply(_ended("c2"))
    assert not t.busy(ACCOUNT, ANNA, "101")


def test_the_employee_who_dialled_talks_until_the_call_ends() -> None:
    t = Talking()
    started = CallStarted(
        account_id=ACCOUNT, call_id="o1", direction=Direction.outbound, caller="102",
        dialed="+73831234567", started_at=AT,
    )  # fmt: skip
    t.apply(started)
    assert t.busy(ACCOUNT, BORIS, "102") and not t.busy(uuid.uuid4(), BORIS, "102")
    t.apply(_ended("o1"))
    assert not t.busy(ACCOUNT, BORIS, "102")
    inbound = CallStarted(
        account_id=ACCOUNT, call_id="i1", direction=Direction.inbound, caller="102",
        dialed="+74951234567", started_at=AT,
    )  # fmt: skip
    t.apply(inbound)  # a customer whose number looks like an extension is no employee
    assert not t.busy(ACCOUNT, BORIS, "102")


async def test_an_employee_on_a_call_is_busy_to_the_strategies(container: Container) -> None:
    """The resolver marks a talking employee busy; alone in the step they are rung anyway
    (call waiting: a receptionist takes a second caller), see the strategies for the rest."""
    alpha = await seed_account(container, ring_seconds=10)  # the scheme: ring 101
    resolver = await _resolver(container, [PHONE])
    talking = resolver.talking = Talking()
    talking.apply(
        CallAnswered(
            account_id=alpha.account_id, call_id="x", leg_id="x.w0t0", at=AT, by=alpha.employee_id
        )
    )
    seen: list[Presence] = []
    real = strategies.plan

    def spy(members: Sequence[MemberState], *args: Any, **kw: Any) -> Any:
        seen.extend(m.presence for m in members)
        return real(members, *args, **kw)

    engine_module.plan = spy  # type: ignore[attr-defined]
    try:
        plan = await resolver(call("+74951234567"))
        assert len((await unroll(plan)).waves) == 1  # rung: nobody else to prefer
    finally:
        engine_module.plan = real  # type: ignore[attr-defined]
    assert seen == [Presence.busy]


def test_busy_members_are_passed_over_while_someone_is_free() -> None:
    rng = random.Random(1)
    members = [MemberState("a", Presence.busy), MemberState("b"), MemberState("c")]
    for strategy in (Strategy.in_turn, Strategy.least_recent, Strategy.round_robin):
        waves = strategies.plan(members, strategy, rng=rng, ring_timeout=20, member_timeout=10)
        assert [w.members[0].key for w in waves.waves] == ["b", "c"], strategy
    together = strategies.plan(
        members, Strategy.all_at_once, rng=rng, ring_timeout=20, member_timeout=10
    )
    assert [m.key for m in together.waves[0].members] == ["b", "c"]
    alone = [MemberState("a", Presence.busy)]  # a step's only member: call waiting
    waves = strategies.plan(alone, Strategy.in_turn, rng=rng, ring_timeout=20, member_timeout=10)
    assert [w.members[0].key for w in waves.waves] == ["a"]


def test_an_outbound_call_names_who_placed_it_whatever_their_sip_username() -> None:
    """``placed_by``: Boris's phone registers as "boris", not his extension 102."""
    t = Talking()
    t.apply(
        CallStarted(
            account_id=ACCOUNT, call_id="o2", direction=Direction.outbound, caller="boris",
            dialed="+73831234567", started_at=AT, placed_by=BORIS,
        )
    )  # fmt: skip
    assert t.busy(ACCOUNT, BORIS, "102") and not t.busy(ACCOUNT, ANNA, "101")
    t.apply(_ended("o2"))
    assert not t.busy(ACCOUNT, BORIS, "102")
