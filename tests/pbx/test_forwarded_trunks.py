"""Calls that leave through a trunk without an employee dialling them — a customer's call
forwarded to an employee's mobile or to a scheme's outside number, a queue's offer to an
agent's mobile, a colleague's call to one — choose their trunk as an employee's own call does
(outbound/trunks.py): the trunk hosting the number the customer called, else the longest of
the trunks' prefixes matching the callee, else the lowest priority, then the name. Before, they
all went out on the number's trunk, else the first active trunk by name.

And an employee who dials the account's own number as the outbound dial plan reads it
(``00`` + the number in RU, whose own international prefix is 8~10) reaches its scheme here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.support.routes import unroll
from zvonar.calls.events import Direction
from zvonar.calls.plan import CallerAuth, InboundCall, Plan, RingTarget
from zvonar.container import Container
from zvonar.directory.models import TrunkAuth
from zvonar.directory.schemas import EmployeeIn, EmployeePatch, NumberPatch, TrunkIn, TrunkPatch
from zvonar.outbound.trunks import TrunkOption, rank_trunks
from zvonar.pbx.credentials import DirectoryCredentialStore
from zvonar.pbx.outbound_resolver import OutboundCalls
from zvonar.pbx.resolver import PbxResolver
from zvonar.pbx.route import SchemeRoute
from zvonar.sip.ua import Flow

from .conftest import NUMBER, Seeded, seed_account

MOBILE_RU = "+79161112233"
MOBILE_UA = "+380501234567"
SHOP = "+74957654321"  # the scheme's outside number (a partner's shop)
# name → port; "a-world" sorts first by name and dials anything
PORTS = {"a-world": 5091, "b-mobile": 5092, "c-ukraine": 5093}


def via(target: RingTarget) -> str:
    """The trunk a target goes out on, by its port."""
    return next(name for name, port in PORTS.items() if target.flow.port == port)


def inbound(dialed: str = NUMBER) -> InboundCall:
    return InboundCall(
        call_id="c1",
        dialed=dialed,
        caller="+79160000001",
        caller_display=None,
        from_uri="sip:+79160000001@10.1.1.1",
        to_uri=f"sip:{dialed}@127.0.0.1",
        source=Flow("UDP", "127.0.0.1", 5070),
        started_at=datetime(2024, 3, 4, 10, 0, tzinfo=UTC),
    )


def from_phone(alpha: Seeded, dialed: str, call_id: str = "c2", user: str = "101") -> InboundCall:
    """An authenticated call from ``user``'s phone (SIP username = extension)."""
    return InboundCall(
        call_id=call_id,
        dialed=dialed,
        caller=user,
        caller_display=None,
        from_uri=f"sip:{user}@alpha.zvonar",
        to_uri=f"sip:{dialed}@alpha.zvonar",
        source=Flow("UDP", "127.0.0.1", 5099),
        started_at=datetime(2024, 3, 4, 10, 0, tzinfo=UTC),
        auth=CallerAuth(account_id=alpha.account_id, user=user, realm=alpha.realm),
    )


async def _resolver(container: Container) -> tuple[PbxResolver, OutboundCalls]:
    creds = DirectoryCredentialStore(container.db)
    await creds.load()
    outbound = OutboundCalls(container.db, creds, container.contacts.index)
    resolver = PbxResolver(
        container.db,
        creds,
        lambda _aor: [],  # no desk phones: only what leaves through a trunk rings
        container.contacts.index,
        extension_calls=outbound,
    )
    return resolver, outbound


async def _account(container: Container, **routing: dict[str, Any]) -> Seeded:
    """The seeded account (its number rings 101, then the shop), three trunks, and 101's
    mobiles in Russia and Ukraine, rung with the desk phone; ``routing``: trunk → fields."""
    alpha = await seed_account(container)
    p = alpha.principal
    for name, port in PORTS.items():
        fields: dict[str, Any] = {
            "b-mobile": {"prefixes": ["+7916"]},
            "c-ukraine": {"prefixes": ["+380"]},
        }.get(name, {})
        fields.update(routing.get(name, {}))
        await container.directory.create_trunk(
            p,
            TrunkIn(name=name, host="127.0.0.1", port=port, auth_mode=TrunkAuth.ip,
                    allowed_sources=[f"192.0.2.{port - 5090}/32"], **fields),
        )  # fmt: skip
    await container.directory.update_employee(
        p,
        alpha.employee_id,
        EmployeePatch(mobile_numbers=[MOBILE_RU, MOBILE_UA], ring_mobile=True),
    )
    scheme = await container.routing.create_scheme(
        p,
        "Mobile, then the shop",
        {
            "branches": {
                "working": [
                    {"type": "ring", "targets": [{"employee": "101"}], "timeout": 10},
                    {"type": "ring", "targets": [{"number": SHOP}], "timeout": 10},
                ]
            },
            "final": {"type": "hangup"},
        },
    )
    await container.routing.assign(p, alpha.number_id, scheme.id)
    return alpha


async def _forwarded(resolver: PbxResolver) -> list[list[tuple[str, str]]]:
    """Per wave of the customer's call: (callee, the trunk it goes out on)."""
    plan = await resolver(inbound())
    assert isinstance(plan, Plan) and plan.direction is Direction.inbound
    waves = (await unroll(plan)).waves
    return [[(t.uri.split("@")[0], via(t)) for t in w.targets] for w in waves]


async def test_a_forwarded_call_takes_the_trunk_its_callee_ranks_first(
    container: Container,
) -> None:
    """Each of 101's mobiles takes the trunk of its country's prefix (one call, two trunks),
    the shop the catch-all; not "a-world", the first by name, for all of them."""
    await _account(container)
    resolver, _ = await _resolver(container)
    assert await _forwarded(resolver) == [
        [(f"sip:{MOBILE_RU}", "b-mobile"), (f"sip:{MOBILE_UA}", "c-ukraine")],
        [(f"sip:{SHOP}", "a-world")],
    ]


async def test_priority_and_the_number_hosting_trunk_hold_for_forwarded_calls(
    container: Container,
) -> None:
    alpha = await _account(
        container,
        **{"a-world": {"priority": 200}, "b-mobile": {"prefixes": ["+7"], "priority": 10}},
    )
    resolver, _ = await _resolver(container)
    # +7…: b-mobile matches, a-world has the worse priority
    assert await _forwarded(resolver) == [
        [(f"sip:{MOBILE_RU}", "b-mobile"), (f"sip:{MOBILE_UA}", "c-ukraine")],
        [(f"sip:{SHOP}", "b-mobile")],
    ]
    # The number the customer called is a-world's: its carrier takes the forwards the
    # Diversion names it in, so every callee it may dial goes there, as before.
    trunks = {t.name: t for t in (await container.directory.list_trunks(alpha.principal)).items}
    await container.directory.update_number(
        alpha.principal, alpha.number_id, NumberPatch(trunk_id=trunks["a-world"].id)
    )
    assert await _forwarded(resolver) == [
        [(f"sip:{MOBILE_RU}", "a-world"), (f"sip:{MOBILE_UA}", "a-world")],
        [(f"sip:{SHOP}", "a-world")],
    ]
    # ... but not what its prefixes do not allow: c-ukraine dials Ukraine only.
    await container.directory.update_number(
        alpha.principal, alpha.number_id, NumberPatch(trunk_id=trunks["c-ukraine"].id)
    )
    assert await _forwarded(resolver) == [
        [(f"sip:{MOBILE_RU}", "b-mobile"), (f"sip:{MOBILE_UA}", "c-ukraine")],
        [(f"sip:{SHOP}", "b-mobile")],
    ]


async def test_a_callee_no_trunk_may_dial_is_not_rung(container: Container) -> None:
    """Every trunk has prefixes and none is Ukraine's: the Ukrainian mobile is left out (it
    went out on the first trunk by name before); the shop's step still rings."""
    alpha = await _account(container, **{"a-world": {"prefixes": ["+7495"]}})
    await container.directory.update_trunk(
        alpha.principal,
        next(
            t.id
            for t in (await container.directory.list_trunks(alpha.principal)).items
            if t.name == "c-ukraine"
        ),
        TrunkPatch(active=False),
    )
    resolver, _ = await _resolver(container)
    assert await _forwarded(resolver) == [
        [(f"sip:{MOBILE_RU}", "b-mobile")],
        [(f"sip:{SHOP}", "a-world")],
    ]


async def test_queue_offers_and_colleagues_calls_rank_the_trunks_too(
    container: Container,
) -> None:
    """A queue's offer to 101 (its mobile must press 1) and 102 calling 101: each mobile on
    its country's trunk; a colleague's call shows that trunk's own number."""
    alpha = await _account(
        container,
        **{"b-mobile": {"caller_id": "+74951234567"}, "c-ukraine": {"caller_id": "+74951234568"}},
    )
    resolver, _ = await _resolver(container)
    plan = await resolver(inbound())
    assert isinstance(plan, Plan) and isinstance(plan.route, SchemeRoute)
    offered = plan.route.setup.agent_targets(str(alpha.employee_id))
    assert [(via(t), t.accept_prompt is not None) for t in offered] == [
        ("b-mobile", True),
        ("c-ukraine", True),
    ]
    await container.directory.create_employee(
        alpha.principal, EmployeeIn(name="Boris", extension="102", sip_password="pass-102-long")
    )
    plan = await resolver(from_phone(alpha, "101", user="102"))
    assert isinstance(plan, Plan) and plan.direction is Direction.internal
    assert [(via(t), t.from_user) for t in plan.waves[0].targets] == [
        ("b-mobile", "+74951234567"),
        ("c-ukraine", "+74951234568"),
    ]


async def test_the_snapshot_ranks_as_outbound_calls_do(container: Container) -> None:
    """``trunk_for`` agrees with ``rank_trunks`` (the employees' outbound calls) for every
    callee, the hosting number aside; the order it breaks ties with is read once per load,
    and a trunk's new priority is the next call's."""
    alpha = await _account(
        container, **{"a-world": {"priority": 300}, "b-mobile": {"priority": 50}}
    )
    resolver, _ = await _resolver(container)
    snap = await resolver.snapshot.account(alpha.account_id)
    assert snap is not None
    assert [t.name for t in snap.trunks] == ["b-mobile", "c-ukraine", "a-world"]
    options = [
        TrunkOption(id=t.id, name=t.name, priority=t.priority, prefixes=t.prefixes)
        for t in snap.trunks
    ]
    for callee in (MOBILE_RU, MOBILE_UA, SHOP, "+4930123456"):
        chosen = snap.trunk_for(None, callee)
        assert chosen is not None and chosen.id == rank_trunks(callee, options)[0].id, callee
    trunks = {t.name: t for t in (await container.directory.list_trunks(alpha.principal)).items}
    await container.directory.update_trunk(
        alpha.principal, trunks["c-ukraine"].id, TrunkPatch(priority=1, prefixes=[])
    )
    snap = await resolver.snapshot.account(alpha.account_id)
    assert snap is not None
    assert [t.name for t in snap.trunks] == ["c-ukraine", "b-mobile", "a-world"]
    chosen = snap.trunk_for(None, SHOP)
    assert chosen is not None and chosen.name == "c-ukraine"  # catch-all now, priority 1


async def test_00_and_the_accounts_own_number_reaches_its_scheme(container: Container) -> None:
    """RU's international prefix is 8~10, but the dial plan reads 00 as one where the
    account's plan finds no number: 00 7 495… is the account's own line, reached here, not
    out through a carrier and back in (nor counted by the toll-fraud guard). The RU plan's
    own forms still are; another account's number, dialled so, goes out."""
    alpha = await _account(container)
    resolver, outbound = await _resolver(container)
    own = NUMBER.removeprefix("+")
    for n, dialed in enumerate((f"00{own}", f"810{own}", f"8{own[1:]}", f"00 {own[:4]} {own[4:]}")):
        plan = await resolver(from_phone(alpha, dialed, f"own-{n}"))
        assert isinstance(plan, Plan), dialed
        assert plan.direction is Direction.internal and plan.route is not None, dialed
        assert plan.number_label == "Sales", dialed
    assert outbound.guard.active(alpha.account_id) == 0
    plan = await resolver(from_phone(alpha, "0074957654321", "out"))
    assert isinstance(plan, Plan) and plan.direction is Direction.outbound
    assert plan.dialed == SHOP
