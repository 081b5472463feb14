"""Calls from authenticated extensions over a real database: dial plan, toll-fraud guard,
caller ID by the callee's region, trunk target; and the INVITE gate's trunk sources."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from zvonar.calls.events import CallEnded, Direction, Disposition, HangupSide, TargetKind
from zvonar.calls.plan import CallerAuth, InboundCall, Pickup, Plan, Reject
from zvonar.configfile import apply_config
from zvonar.contacts.schemas import ContactIn
from zvonar.container import Container
from zvonar.core.bus import RecordingBus
from zvonar.directory.models import TrunkAuth
from zvonar.directory.schemas import EmployeeIn, NumberIn, NumberPatch, TrunkIn, TrunkPatch
from zvonar.journal.models import CallRecord
from zvonar.outbound.tollfraud import TollFraudGuard
from zvonar.pbx.credentials import DirectoryCredentialStore
from zvonar.pbx.invite_auth import TrunkSources
from zvonar.pbx.outbound_resolver import OutboundCalls
from zvonar.pbx.resolver import PbxResolver
from zvonar.sip.location import Binding
from zvonar.sip.ua import Flow

from .conftest import Seeded, seed_account

NSK_NUMBER = "+73832000000"  # a Novosibirsk number of the account
PHONE_102 = Binding(
    aor="sip:102@alpha.zvonar",
    contact="sip:102@127.0.0.1:5098",
    expires_at=1e9,
    source=("127.0.0.1", 5098),
)


def dial(seeded: Seeded, dialed: str, call_id: str = "c1") -> InboundCall:
    return InboundCall(
        call_id=call_id,
        dialed=dialed,
        caller="101",
        caller_display=None,
        from_uri="sip:101@alpha.zvonar",
        to_uri=f"sip:{dialed}@alpha.zvonar",
        source=Flow("UDP", "127.0.0.1", 5099),
        started_at=datetime(2024, 3, 4, 10, 0, tzinfo=UTC),
        auth=CallerAuth(account_id=seeded.account_id, user="101", realm=seeded.realm),
    )


def refused(outcome: Plan | Reject | Pickup) -> Reject:
    """How a phone's call the PBX will not place ends: a Plan that rings nobody, so that the
    journal's row names the callee in E.164 and their contact (OutboundCalls._refused)."""
    assert isinstance(outcome, Plan) and not outcome.waves, outcome
    assert outcome.direction is Direction.outbound and outcome.route is None
    return outcome.final


async def _setup(
    container: Container, guard: TollFraudGuard | None = None
) -> tuple[Seeded, PbxResolver, OutboundCalls]:
    alpha = await seed_account(container)
    await container.directory.create_trunk(
        alpha.principal,
        TrunkIn(
            name="carrier",
            host="127.0.0.1",
            port=5090,
            auth_mode=TrunkAuth.ip,
            allowed_sources=["127.0.0.2/32"],
            caller_id="+74951234567",
        ),
    )
    await container.directory.add_number(alpha.principal, NumberIn(number=NSK_NUMBER))
    creds = DirectoryCredentialStore(container.db)
    await creds.load()
    outbound = OutboundCalls(container.db, creds, container.contacts.index, guard)
    table = {PHONE_102.aor: [PHONE_102]}
    resolver = PbxResolver(
        container.db,
        creds,
        lambda aor: table.get(aor, []),
        container.contacts.index,
        extension_calls=outbound,
    )
    return alpha, resolver, outbound


async def test_external_number_goes_out_with_the_callee_region_caller_id(
    container: Container,
) -> None:
    alpha, resolver, outbound = await _setup(container)
    plan = await resolver(dial(alpha, "8 (383) 123-45-67"))
    assert isinstance(plan, Plan)
    assert plan.direction is Direction.outbound and plan.account_id == alpha.account_id
    ((target,),) = [w.targets for w in plan.waves]
    assert target.uri == "sip:+73831234567@127.0.0.1:5090"
    assert target.flow == Flow("UDP", "127.0.0.1", 5090)
    assert target.from_user == NSK_NUMBER  # Novosibirsk callee → our Novosibirsk number
    assert target.target.kind is TargetKind.external
    assert outbound.guard.active(alpha.account_id) == 1
    # Moscow callee: the Moscow number (same region), not the trunk default by accident
    plan = await resolver(dial(alpha, "+74957654321", "c2"))
    assert isinstance(plan, Plan)
    assert plan.waves[0].targets[0].from_user == "+74951234567"


async def test_every_reachable_trunk_is_a_wave_best_first(container: Container) -> None:
    """A second carrier: the call fails over to it when the first fails (Plan.fail_over);
    the Novosibirsk number the first trunk hosts goes out there, the second trunk shows its
    own number (carriers present only the numbers they host)."""
    alpha, resolver, _ = await _setup(container)
    (first,) = (await container.directory.list_trunks(alpha.principal)).items
    numbers = (await container.directory.list_numbers(alpha.principal)).items
    number = next(n for n in numbers if n.e164 == NSK_NUMBER)
    await container.directory.update_number(
        alpha.principal, number.id, NumberPatch(trunk_id=first.id)
    )
    await container.directory.create_trunk(
        alpha.principal,
        TrunkIn(
            name="spare",
            host="127.0.0.1",
            port=5092,
            auth_mode=TrunkAuth.ip,
            allowed_sources=["127.0.0.3/32"],
            caller_id="+78001234567",
        ),
    )
    plan = await resolver(dial(alpha, "8 (383) 123-45-67"))
    assert isinstance(plan, Plan)
    targets = [(w.targets[0].uri, w.targets[0].from_user) for w in plan.waves]
    assert targets == [
        ("sip:+73831234567@127.0.0.1:5090", NSK_NUMBER),
        ("sip:+73831234567@127.0.0.1:5092", "+78001234567"),
    ]
    assert plan.fail_over is not None and {408, 503} <= plan.fail_over
    assert 486 not in plan.fail_over and 404 not in plan.fail_over


async def test_international_is_refused_with_the_reason(container: Container) -> None:
    alpha, resolver, outbound = await _setup(container)
    reject = refused(await resolver(dial(alpha, "+442071234567")))
    assert reject.status == 403 and reject.reason == "Forbidden (international_not_allowed)"
    assert outbound.guard.active(alpha.account_id) == 0


async def _account(container: Container, seeded: Seeded, **settings: object) -> None:
    """Change account settings as ``zvonar config apply`` does (the resolver is not rebuilt)."""
    doc = {"version": 1, "account": settings}
    assert await apply_config(container, seeded.account_id, doc, dry_run=False)


async def test_national_is_the_accounts_country(container: Container) -> None:
    """A Ukrainian account: 044… is a Kyiv number and goes out; a Moscow number is abroad
    for it, refused until the account allows international calls."""
    alpha, resolver, outbound = await _setup(container)
    await _account(container, alpha, country="UA")
    plan = await resolver(dial(alpha, "044 123 4567"))
    assert isinstance(plan, Plan)
    assert plan.waves[0].targets[0].uri == "sip:+380441234567@127.0.0.1:5090"
    reject = refused(await resolver(dial(alpha, "+74957654321", "c2")))
    assert reject.status == 403 and reject.reason == "Forbidden (international_not_allowed)"
    assert outbound.guard.active(alpha.account_id) == 1
    await _account(container, alpha, international_calls=True)
    plan = await resolver(dial(alpha, "+74957654321", "c3"))
    assert isinstance(plan, Plan)
    assert plan.waves[0].targets[0].uri == "sip:+74957654321@127.0.0.1:5090"


async def test_the_accounts_caps_apply(container: Container) -> None:
    alpha, resolver, outbound = await _setup(container)
    await _account(container, alpha, outbound_max_concurrent=1, outbound_max_per_hour=2)
    assert isinstance(await resolver(dial(alpha, "+73831234567", "c1")), Plan)
    busy = refused(await resolver(dial(alpha, "+73831234568", "c2")))
    assert busy.status == 403 and busy.reason == "Forbidden (too_many_concurrent)"
    outbound.guard.release(alpha.account_id, "c1")
    assert isinstance(await resolver(dial(alpha, "+73831234568", "c2")), Plan)
    outbound.guard.release(alpha.account_id, "c2")
    hourly = refused(await resolver(dial(alpha, "+73831234569", "c3")))
    assert hourly.status == 403 and hourly.reason == "Forbidden (hourly_limit)"
    await _account(container, alpha, outbound_max_per_hour=3)  # no restart: the next call
    assert isinstance(await resolver(dial(alpha, "+73831234569", "c3")), Plan)


async def test_guard_slot_is_released_when_the_call_ends(container: Container) -> None:
    alpha, resolver, outbound = await _setup(container)
    bus = RecordingBus()
    outbound.attach(bus)
    assert isinstance(await resolver(dial(alpha, "+73831234567", "c9")), Plan)
    assert outbound.guard.active(alpha.account_id) == 1
    await bus.publish(
        CallEnded(
            account_id=alpha.account_id,
            call_id="c9",
            disposition=Disposition.answered,
            ended_at=datetime(2024, 3, 4, 10, 5, tzinfo=UTC),
            hangup=HangupSide.caller,
        )
    )
    assert outbound.guard.active(alpha.account_id) == 0


async def test_extension_and_bad_strings(container: Container) -> None:
    alpha, resolver, _ = await _setup(container)
    await container.directory.create_employee(
        alpha.principal,
        EmployeeIn(name="Boris", extension="102", sip_password="another-pass-102"),
    )
    plan = await resolver(dial(alpha, "102"))
    assert isinstance(plan, Plan) and plan.direction is Direction.internal
    assert plan.waves[0].targets[0].uri == PHONE_102.contact
    bad = await resolver(dial(alpha, "12ab"))
    assert isinstance(bad, Reject) and bad.status == 484


async def test_unauthenticated_caller_reaches_numbers_only(container: Container) -> None:
    alpha, resolver, _ = await _setup(container)
    anon = InboundCall(**{**dial(alpha, "+73831234567").__dict__, "auth": CallerAuth()})
    result = await resolver(anon)
    assert isinstance(result, Reject) and result.status == 404  # not a number of ours


async def test_trunk_sources_come_from_ip_trunks(container: Container) -> None:
    await _setup(container)
    sources = TrunkSources(container.db)
    await sources.load()
    assert sources.trunk_caller("127.0.0.2")
    assert not sources.trunk_caller("127.0.0.1") and not sources.trunk_caller("not-an-ip")


async def test_an_employee_dialling_the_accounts_own_line_reaches_its_scheme(
    container: Container,
) -> None:
    """Not out through the carrier and back: the number's scheme runs at once (the seeded
    "ring 101"), the call is internal, and the toll-fraud guard is not asked."""
    alpha, resolver, outbound = await _setup(container)
    for dialed in ("+74951234567", "8 (495) 123-45-67"):
        plan = await resolver(dial(alpha, dialed, f"own-{dialed[-2:]}"))
        assert isinstance(plan, Plan), dialed
        assert plan.direction is Direction.internal and plan.route is not None
        assert plan.number_label == "Sales"
    assert outbound.guard.active(alpha.account_id) == 0


async def test_a_colleagues_mobile_is_rung_with_the_trunks_number(container: Container) -> None:
    """101 dials 102, who chose ring_mobile: 102's mobile rings through the trunk showing the
    trunk's own number (an extension in From means nothing to a carrier)."""
    alpha, resolver, _ = await _setup(container)
    await container.directory.create_employee(
        alpha.principal,
        EmployeeIn(
            name="Boris",
            extension="102",
            sip_password="another-pass-102",
            mobile_numbers=["+79161112233"],
            ring_mobile=True,
        ),
    )
    plan = await resolver(dial(alpha, "102"))
    assert isinstance(plan, Plan) and plan.direction is Direction.internal
    targets = [(t.uri, t.from_user, t.diversion) for t in plan.waves[0].targets]
    assert targets == [
        (PHONE_102.contact, None, None),  # the desk phone: the colleague's own From
        ("sip:+79161112233@127.0.0.1:5090", "+74951234567", None),
    ]


async def test_the_journal_learns_the_customer_an_employee_called(container: Container) -> None:
    alpha, resolver, _ = await _setup(container)
    made = await container.contacts.create_contact(
        alpha.principal, ContactIn(name="Bolts Ltd", numbers=["+73831234567"])
    )
    plan = await resolver(dial(alpha, "8 (383) 123-45-67"))
    assert isinstance(plan, Plan) and plan.contact_id == made.contact.id
    # whom in E.164 whatever was dialled, and who dialled: a customer who calls back
    # reaches them ({manager: last})
    assert plan.dialed == "+73831234567" and plan.placed_by == alpha.employee_id


async def test_00_dials_abroad_from_every_country(container: Container) -> None:
    """00 before a number is international in an RU and a KZ account too (their plans say
    8~10): the call goes out, or the toll-fraud guard refuses it as international — never
    484 Address Incomplete."""
    alpha, resolver, _ = await _setup(container)
    plan = await resolver(dial(alpha, "0079161112233", "c1"))
    assert isinstance(plan, Plan) and plan.dialed == "+79161112233"
    assert plan.waves[0].targets[0].uri == "sip:+79161112233@127.0.0.1:5090"
    kyiv = refused(await resolver(dial(alpha, "00380441234567", "c2")))
    assert kyiv.status == 403 and kyiv.reason == "Forbidden (international_not_allowed)"
    await _account(container, alpha, country="KZ")
    moscow = refused(await resolver(dial(alpha, "0074957654321", "c3")))  # abroad for KZ
    assert moscow.reason == "Forbidden (international_not_allowed)"
    await _account(container, alpha, international_calls=True)
    plan = await resolver(dial(alpha, "0074957654321", "c4"))
    assert isinstance(plan, Plan) and plan.dialed == "+74957654321"


HOTLINE = "+78001234567"  # toll-free: calls in only


async def _called_us(
    container: Container, seeded: Seeded, caller: str, ours: str, day: int
) -> None:
    """The journal: ``caller`` called our number ``ours`` on March ``day``."""
    at = datetime(2024, 3, day, 9, 0, tzinfo=UTC)
    async with container.db.unit_of_work() as uow:
        uow.session.add(
            CallRecord(
                account_id=seeded.account_id,
                call_id=f"in-{caller}-{day}",
                direction=Direction.inbound,
                caller=caller,
                dialed=ours,
                started_at=at,
                last_activity_at=at,
            )
        )


async def test_a_toll_free_number_they_called_is_never_the_caller_id(
    container: Container,
) -> None:
    """+79161112233 called our Novosibirsk line, then our 8-800 hotline. 101 calls them
    back: the carrier would refuse (and the client could not call back) the hotline as the
    caller, so "the number they called last" is the city line they called before it."""
    alpha, resolver, _ = await _setup(container)
    await container.directory.add_number(alpha.principal, NumberIn(number=HOTLINE))
    await _called_us(container, alpha, "+79161112233", HOTLINE, 2)
    plan = await resolver(dial(alpha, "89161112233", "c1"))
    assert isinstance(plan, Plan)
    assert plan.waves[0].targets[0].from_user == "+74951234567"  # the trunk's, not HOTLINE
    await _called_us(container, alpha, "+79161112233", NSK_NUMBER, 1)
    plan = await resolver(dial(alpha, "89161112233", "c2"))
    assert isinstance(plan, Plan)
    assert plan.waves[0].targets[0].from_user == NSK_NUMBER


async def test_a_refused_call_is_journalled_under_the_callee_and_their_contact(
    container: Container,
) -> None:
    """101 dials 8 495 765-43-21 past the hourly cap, and 8 10 44… abroad: the journal's
    rows name +74957654321 and +442079460018 (the number filter finds them, as it finds the
    calls put through) and the customer's contact; the caller still gets the 403."""
    alpha, resolver, outbound = await _setup(container)
    made = await container.contacts.create_contact(
        alpha.principal, ContactIn(name="Bolts Ltd", numbers=["+74957654321"])
    )
    await _account(container, alpha, outbound_max_per_hour=1)
    assert isinstance(await resolver(dial(alpha, "+73831234567", "c1")), Plan)
    outcome = await resolver(dial(alpha, "84957654321", "c2"))
    assert refused(outcome).reason == "Forbidden (hourly_limit)"
    assert isinstance(outcome, Plan)
    assert (outcome.dialed, outcome.contact_id) == ("+74957654321", made.contact.id)
    assert outcome.placed_by == alpha.employee_id and outcome.fail_over is None
    abroad = await resolver(dial(alpha, "81044 20 7946 0018", "c3"))
    assert refused(abroad).reason == "Forbidden (international_not_allowed)"
    assert isinstance(abroad, Plan)
    assert (abroad.dialed, abroad.contact_id) == ("+442079460018", None)
    assert outbound.guard.active(alpha.account_id) == 1  # only c1 holds a slot


async def test_a_transfers_refused_target_is_the_refusal_itself(container: Container) -> None:
    """A transfer (the B2BUA's own query: no phone user) to a number abroad is no call of
    its own: the resolver answers the 403, which the transfer reports."""
    alpha, resolver, _ = await _setup(container)
    query = InboundCall(
        **{**dial(alpha, "+442071234567").__dict__, "auth": CallerAuth(account_id=alpha.account_id)}
    )
    reject = await resolver(query)
    assert isinstance(reject, Reject)
    assert reject.status == 403 and reject.reason == "Forbidden (international_not_allowed)"


async def test_no_trunk_is_journalled_under_the_callee(container: Container) -> None:
    alpha, resolver, outbound = await _setup(container)
    (trunk,) = (await container.directory.list_trunks(alpha.principal)).items
    await container.directory.update_trunk(alpha.principal, trunk.id, TrunkPatch(active=False))
    outcome = await resolver(dial(alpha, "8 (383) 123-45-67"))
    assert refused(outcome).status == 503
    assert isinstance(outcome, Plan) and outcome.dialed == "+73831234567"
    assert outbound.guard.active(alpha.account_id) == 0


async def _ip_trunk(container: Container, seeded: Seeded, name: str, port: int, **kw: Any) -> None:
    await container.directory.create_trunk(
        seeded.principal,
        TrunkIn(
            name=name,
            host="127.0.0.1",
            port=port,
            auth_mode=TrunkAuth.ip,
            allowed_sources=[f"127.0.0.{port - 5080}/32"],
            **kw,
        ),
    )


def _ports(plan: Plan | Reject | Pickup) -> list[int]:
    """The trunks a call rings, in order, by their ports."""
    assert isinstance(plan, Plan), plan
    return [w.targets[0].flow.port for w in plan.waves]


async def test_trunks_route_by_prefix_then_priority(container: Container) -> None:
    """Stored prefixes and priorities rank the trunks (outbound/trunks.py); before, the
    resolver passed neither and the call went by trunk name. "carrier" (5090, any number,
    priority 100) is the seeded one."""
    alpha, resolver, _ = await _setup(container)
    await _account(container, alpha, international_calls=True)
    await _ip_trunk(container, alpha, "b-ukraine", 5091, prefixes=["+380"])
    await _ip_trunk(container, alpha, "c-russia", 5092, prefixes=["+7", "+7383"], priority=200)
    # The longest matching prefix first, whatever the priority; a trunk whose prefixes do not
    # match cannot dial the number at all.
    assert _ports(await resolver(dial(alpha, "8 383 123-45-67", "c1"))) == [5092, 5090]
    assert _ports(await resolver(dial(alpha, "00380441234567", "c2"))) == [5091, 5090]
    assert _ports(await resolver(dial(alpha, "00442079460018", "c3"))) == [5090]
    # Among the trunks that dial any number, the lowest priority; then the name.
    await _ip_trunk(container, alpha, "a-backup", 5093, priority=300)
    await _ip_trunk(container, alpha, "z-main", 5094, priority=10)
    assert _ports(await resolver(dial(alpha, "00442079460018", "c4"))) == [5094, 5090, 5093]
    (c_russia,) = [
        t
        for t in (await container.directory.list_trunks(alpha.principal)).items
        if t.name == "c-russia"
    ]
    await container.directory.update_trunk(
        alpha.principal, c_russia.id, TrunkPatch(prefixes=[])
    )  # now a catch-all of priority 200: after z-main and carrier
    assert _ports(await resolver(dial(alpha, "8 383 123-45-67", "c5"))) == [5094, 5090, 5092]
