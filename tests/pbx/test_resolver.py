"""The resolver over a real database: numbers, schemes, registrations → Plan / Reject."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.routes import unroll
from zvonar.accounts.models import Account
from zvonar.calls.events import Direction, Disposition, Target, TargetKind
from zvonar.calls.park import Unpark
from zvonar.calls.plan import CallerAuth, InboundCall, Plan, Reject
from zvonar.calls.pull import Pull
from zvonar.contacts.schemas import ContactIn
from zvonar.container import Container
from zvonar.core.bus import RecordingBus
from zvonar.directory.events import EmployeeDndChanged
from zvonar.directory.models import TrunkAuth
from zvonar.directory.schemas import EmployeeIn, EmployeePatch, TrunkIn
from zvonar.journal.models import CallRecord
from zvonar.media.prompts import prompt_path
from zvonar.pbx import resolver as resolver_module
from zvonar.pbx.credentials import DirectoryCredentialStore
from zvonar.pbx.resolver import PbxResolver, caller_display
from zvonar.pbx.route import SchemeRoute
from zvonar.sip.location import Binding
from zvonar.sip.ua import Flow

from .conftest import Seeded, seed_account

PHONE = Binding(
    aor="sip:101@alpha.zvonar",
    contact="sip:101@127.0.0.1:5099",
    expires_at=1e9,
    source=("127.0.0.1", 5099),
)


def call(
    dialed: str, *, from_uri: str = "sip:+79161234567@10.1.1.1", src: int = 5070
) -> InboundCall:
    return InboundCall(
        call_id="c1",
        dialed=dialed,
        caller=from_uri.split(":", 1)[1].split("@", 1)[0],
        caller_display=None,
        from_uri=from_uri,
        to_uri=f"sip:{dialed}@127.0.0.1",
        source=Flow("UDP", "127.0.0.1", src),
        started_at=datetime(2024, 3, 4, 10, 0, tzinfo=UTC),
    )


async def _resolver(container: Container, bindings: list[Binding]) -> PbxResolver:
    creds = DirectoryCredentialStore(container.db)
    await creds.load()
    table = {b.aor: [b] for b in bindings}
    return PbxResolver(
        container.db, creds, lambda aor: table.get(aor, []), container.contacts.index
    )


async def test_number_rings_the_registered_employee(container: Container) -> None:
    alpha = await seed_account(container, ring_seconds=10)
    resolver = await _resolver(container, [PHONE])
    for dialed in ("+74951234567", "74951234567", "84951234567"):  # E.164, bare, national
        plan = await resolver(call(dialed))
        assert isinstance(plan, Plan), dialed
        assert plan.account_id == alpha.account_id and plan.number_label == "Sales"
        assert plan.record is True and plan.direction is Direction.inbound
        walked = await unroll(plan)
        ((target,),) = [w.targets for w in walked.waves]
        assert target.uri == PHONE.contact and target.flow == Flow("UDP", "127.0.0.1", 5099)
        assert target.target.kind is TargetKind.employee
        assert target.target.target_id == alpha.employee_id
        assert walked.waves[0].timeout == 10
        assert walked.final.account_id == alpha.account_id


async def test_unregistered_employee_gives_an_empty_plan(container: Container) -> None:
    await seed_account(container)
    plan = await (await _resolver(container, []))(call("+74951234567"))
    assert isinstance(plan, Plan) and (await unroll(plan)).waves == ()


async def test_a_carrier_sending_to_our_registered_contact_names_the_number_in_to(
    container: Container,
) -> None:
    # Registered at a carrier as "acct-4411", we get its calls to sip:acct-4411@<us>.
    alpha = await seed_account(container, ring_seconds=10)
    resolver = await _resolver(container, [PHONE])
    for to in (
        "sip:+74951234567@sip.carrier.example",
        "sip:%2B74951234567@sip.carrier.example",  # escaped: the same number (§19.1.4)
        "sip:74951234567@carrier",
        "tel:+74951234567",
    ):
        inbound = replace(call("acct-4411"), to_uri=to)
        plan = await resolver(inbound)
        assert isinstance(plan, Plan), to
        assert plan.account_id == alpha.account_id and plan.dialed == "+74951234567"
        ((target,),) = [w.targets for w in (await unroll(plan)).waves]
        assert target.target.target_id == alpha.employee_id
    # A Request-URI that names the number wins; the journal keeps what it said.
    direct = replace(call("74951234567"), to_uri="sip:+74957654321@elsewhere")
    plan = await resolver(direct)
    assert isinstance(plan, Plan) and plan.dialed is None
    for to in ("sip:acct-4411@sip.carrier.example", "sip:+74957654321@x", "garbage", ""):
        outcome = await resolver(replace(call("acct-4411"), to_uri=to))
        assert outcome == Reject(404, "Not Found"), to


async def test_unknown_number_is_404_without_account(container: Container) -> None:
    await seed_account(container)
    resolver = await _resolver(container, [PHONE])
    for dialed in ("+74957654321", "", "hello"):
        outcome = await resolver(call(dialed))
        assert outcome == Reject(404, "Not Found"), dialed


async def test_internal_call_from_a_registered_phone_rings_the_extension(
    container: Container,
) -> None:
    alpha = await seed_account(container)
    caller = Binding(aor="sip:102@alpha.zvonar", contact="sip:102@127.0.0.1:5070",
                     expires_at=1e9, source=("127.0.0.1", 5070))  # fmt: skip
    resolver = await _resolver(container, [PHONE, caller])
    plan = await resolver(call("101", from_uri="sip:102@alpha.zvonar"))
    assert isinstance(plan, Plan) and plan.direction is Direction.internal
    assert plan.account_id == alpha.account_id
    assert [t.uri for t in plan.waves[0].targets] == [PHONE.contact]
    assert plan.record is True  # the account records every call, colleagues' too
    assert (plan.park_seconds, plan.park_ring_back_seconds) == (120, 30)  # the defaults
    # The same From from an address with no registration is not trusted as internal.
    spoofed = await resolver(call("101", from_uri="sip:102@alpha.zvonar", src=6000))
    assert spoofed == Reject(404, "Not Found")


def test_the_caller_display_names_the_line_and_the_caller() -> None:
    assert caller_display("Resorts", "Bolts Ltd", "+79161110001") == "Resorts: Bolts Ltd"
    assert caller_display("Resorts", None, "+79161110001") == "Resorts: +79161110001"
    assert caller_display("Resorts", "  ", "+79161110001") == "Resorts: +79161110001"
    assert caller_display(None, "Bolts Ltd", "+79161110001") == "Bolts Ltd"
    assert caller_display(None, None, "+79161110001") is None  # the carrier's From as it came
    assert len(caller_display("Курорты", "x" * 100, "") or "") == 48


async def _with_mobile(container: Container, patch: EmployeePatch) -> Seeded:
    """The seeded account with a carrier trunk, and 101's mobile +79161112233 (``patch``
    says whether it rings and confirms)."""
    alpha = await seed_account(container, ring_seconds=10)
    await container.directory.create_trunk(
        alpha.principal,
        TrunkIn(name="carrier", host="127.0.0.1", port=5090, auth_mode=TrunkAuth.ip,
                allowed_sources=["127.0.0.2/32"]),
    )  # fmt: skip
    mobile = patch.model_copy(update={"mobile_numbers": ["+79161112233"]})
    await container.directory.update_employee(alpha.principal, alpha.employee_id, mobile)
    return alpha


async def test_an_employee_with_no_device_is_rung_on_their_mobile(container: Container) -> None:
    """ring_mobile: the mobile goes out through the number's trunk, in the devices' wave,
    and an employee with no registered device is still reachable there."""
    alpha = await _with_mobile(container, EmployeePatch(ring_mobile=True))
    for bindings, expected in (
        ([PHONE], [PHONE.contact, "sip:+79161112233@127.0.0.1:5090"]),
        ([], ["sip:+79161112233@127.0.0.1:5090"]),  # no device: the mobile only
    ):
        resolver = await _resolver(container, bindings)
        plan = await resolver(call("+74951234567"))
        ((*targets,),) = [w.targets for w in (await unroll(plan)).waves]
        assert [t.uri for t in targets] == expected
        mobile = targets[-1].target
        assert mobile.kind is TargetKind.mobile and mobile.target_id == alpha.employee_id
        assert targets[-1].accept_prompt is None  # neither the step nor 101 asked to confirm
        # A queue's offer to the same agent: the mobile must press 1, the desk phone not.
        assert isinstance(plan, Plan) and isinstance(plan.route, SchemeRoute)
        offered = plan.route.setup.agent_targets(str(alpha.employee_id))
        assert [t.uri for t in offered] == expected
        assert [t.accept_prompt is not None for t in offered] == [
            t.target.kind is TargetKind.mobile for t in offered
        ]


async def test_a_manager_target_rings_the_callers_own_employee(container: Container) -> None:
    """``{manager: contact}``: the contact's manager in the directory; ``{manager: last}``:
    who answered this caller last (the journal, 30 days); nobody → the next step."""
    alpha = await seed_account(container)
    p = alpha.principal
    boris = await container.directory.create_employee(
        p, EmployeeIn(name="Boris", extension="102", sip_password="pass-102-long")
    )
    vera = await container.directory.create_employee(
        p, EmployeeIn(name="Vera", extension="103", sip_password="pass-103-long")
    )
    await container.contacts.create_contact(
        p,
        ContactIn(name="Bolts Ltd", numbers=["+79161234567"], manager_id=boris.view.employee.id),
    )
    scheme = await container.routing.create_scheme(
        p,
        "Own manager first",
        {
            "branches": {
                "working": [
                    {"type": "ring", "targets": [{"manager": "contact"}], "timeout": 10},
                    {"type": "ring", "targets": [{"manager": "last"}], "timeout": 10},
                    {"type": "ring", "targets": [{"employee": "101"}], "timeout": 10},
                ]
            }
        },
    )
    await container.routing.assign(p, alpha.number_id, scheme.id)
    async with container.db.unit_of_work() as uow:  # the journal: Vera took their last call
        for caller, by, day in (
            ("+79160000009", vera.view.employee.id, 3),  # within 30 days of the call
            ("+79160000009", boris.view.employee.id, 1),  # older: not the last
            ("+79160000008", vera.view.employee.id, 1),  # long ago: forgotten
        ):
            at = datetime(2024, 3, day, 9, 0, tzinfo=UTC) - (
                timedelta(days=40) if caller.endswith("8") else timedelta()
            )
            uow.session.add(
                CallRecord(
                    account_id=alpha.account_id,
                    call_id=f"old-{caller}-{day}",
                    direction=Direction.inbound,
                    caller=caller,
                    dialed="+74951234567",
                    started_at=at,
                    last_activity_at=at,
                    answered_by=by,
                )
            )
        # +79160000007: Vera answered them, then Boris called them and they answered; a
        # later call of Vera's they did not answer does not count.
        # +79160000006: Boris answered them; Vera took the callback they asked for later.
        for by, day, direction, disposition in (
            (vera.view.employee.id, 2, Direction.inbound, Disposition.answered),
            (boris.view.employee.id, 3, Direction.outbound, Disposition.answered),
            (vera.view.employee.id, 4, Direction.outbound, Disposition.missed),
        ):
            at = datetime(2024, 3, day, 9, 0, tzinfo=UTC)
            inbound = direction is Direction.inbound
            uow.session.add(
                CallRecord(
                    account_id=alpha.account_id,
                    call_id=f"seven-{day}",
                    direction=direction,
                    caller="+79160000007" if inbound else "102",
                    dialed="+74951234567" if inbound else "+79160000007",
                    started_at=at,
                    last_activity_at=at,
                    answered_by=by if inbound else None,
                    placed_by=None if inbound else by,
                    disposition=disposition,
                )
            )
        for by, day, direction in (
            (boris.view.employee.id, 2, Direction.inbound),
            (vera.view.employee.id, 3, Direction.callback),
        ):
            at = datetime(2024, 3, day, 9, 0, tzinfo=UTC)
            uow.session.add(
                CallRecord(
                    account_id=alpha.account_id,
                    call_id=f"six-{day}",
                    direction=direction,
                    caller="+79160000006",
                    dialed="+74951234567",
                    started_at=at,
                    last_activity_at=at,
                    answered_by=by,
                    disposition=Disposition.answered,
                )
            )
    phones = [
        PHONE,
        replace(PHONE, aor="sip:102@alpha.zvonar", contact="sip:102@127.0.0.1:5102"),
        replace(PHONE, aor="sip:103@alpha.zvonar", contact="sip:103@127.0.0.1:5103"),
    ]
    resolver = await _resolver(container, phones)

    async def rung(caller: str) -> list[str]:
        plan = await resolver(call("+74951234567", from_uri=f"sip:{caller}@10.1.1.1"))
        assert isinstance(plan, Plan)
        return [t.uri for w in (await unroll(plan)).waves for t in w.targets]

    # the contact's manager, nobody answered them before, then the step after
    assert await rung("+79161234567") == ["sip:102@127.0.0.1:5102", "sip:101@127.0.0.1:5099"]
    # no contact; Vera answered them last
    assert await rung("+79160000009") == ["sip:103@127.0.0.1:5103", "sip:101@127.0.0.1:5099"]
    # the employee who called them back last, not the one who answered them before
    assert await rung("+79160000007") == ["sip:102@127.0.0.1:5102", "sip:101@127.0.0.1:5099"]
    # the agent who called them back (a callback request) after Boris had answered them
    assert await rung("+79160000006") == ["sip:103@127.0.0.1:5103", "sip:101@127.0.0.1:5099"]
    # a stranger, and a caller last answered 40 days ago: the common step only
    assert await rung("+79160000001") == ["sip:101@127.0.0.1:5099"]
    assert await rung("+79160000008") == ["sip:101@127.0.0.1:5099"]
    # a manager who left (deactivated) is nobody's manager
    await container.directory.update_employee(
        p, boris.view.employee.id, EmployeePatch(active=False)
    )
    assert await rung("+79161234567") == ["sip:101@127.0.0.1:5099"]


async def test_a_stuck_journal_costs_the_last_manager_not_the_call(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    alpha = await seed_account(container)
    scheme = await container.routing.create_scheme(
        alpha.principal,
        "Last first",
        {
            "branches": {
                "working": [
                    {"type": "ring", "targets": [{"manager": "last"}], "timeout": 10},
                    {"type": "ring", "targets": [{"employee": "101"}], "timeout": 10},
                ]
            }
        },
    )
    await container.routing.assign(alpha.principal, alpha.number_id, scheme.id)
    resolver = await _resolver(container, [PHONE])

    async def stuck(*_args: object) -> None:
        await asyncio.sleep(60)

    monkeypatch.setattr(resolver.snapshot, "last_talked_with", stuck)
    monkeypatch.setattr(resolver_module, "LAST_MANAGER_TIMEOUT", 0.05)
    plan = await asyncio.wait_for(resolver(call("+74951234567")), 2)
    assert isinstance(plan, Plan)
    assert [t.uri for w in (await unroll(plan)).waves for t in w.targets] == [PHONE.contact]


async def test_an_employee_who_confirms_their_mobile_is_asked_everywhere(
    container: Container,
) -> None:
    """``mobile_confirm``: 101's mobile must press 1 whoever rings it — a scheme step without
    ``confirm``, a colleague dialling 101; their desk phone's answer still counts."""
    await _with_mobile(container, EmployeePatch(ring_mobile=True, mobile_confirm=True))
    colleague = Binding(aor="sip:102@alpha.zvonar", contact="sip:102@127.0.0.1:5070",
                        expires_at=1e9, source=("127.0.0.1", 5070))  # fmt: skip
    resolver = await _resolver(container, [PHONE, colleague])
    asked = prompt_path("accept_call", "ru")  # the account speaks Russian
    plan = await resolver(call("+74951234567"))
    assert isinstance(plan, Plan)
    ((desk, mobile),) = [w.targets for w in (await unroll(plan)).waves]
    assert (desk.accept_prompt, mobile.accept_prompt) == (None, asked)
    internal = await resolver(call("101", from_uri="sip:102@alpha.zvonar"))
    assert isinstance(internal, Plan) and internal.direction is Direction.internal
    assert [t.accept_prompt for t in internal.waves[0].targets] == [None, asked]


async def test_an_employee_in_do_not_disturb_is_rung_by_no_routing(container: Container) -> None:
    """DND: the scheme's step passes them over (their mobile too), a colleague's call gets
    480 Do Not Disturb at once; a queue's offer is left to the agent's status (the ACD's)."""
    alpha = await _with_mobile(container, EmployeePatch(ring_mobile=True, dnd=True))
    colleague = Binding(aor="sip:102@alpha.zvonar", contact="sip:102@127.0.0.1:5070",
                        expires_at=1e9, source=("127.0.0.1", 5070))  # fmt: skip
    resolver = await _resolver(container, [PHONE, colleague])
    plan = await resolver(call("+74951234567"))
    assert isinstance(plan, Plan) and (await unroll(plan)).waves == ()
    assert isinstance(plan.route, SchemeRoute)
    offered = plan.route.setup.agent_targets(str(alpha.employee_id))
    assert [t.uri for t in offered] == [PHONE.contact, "sip:+79161112233@127.0.0.1:5090"]
    internal = await resolver(call("101", from_uri="sip:102@alpha.zvonar"))
    assert isinstance(internal, Plan) and internal.waves == ()
    assert internal.final == Reject(480, "Do Not Disturb", account_id=alpha.account_id)
    # Off again: rung as before, by a fresh read of the directory (the snapshot follows).
    await container.directory.set_dnd(alpha.account_id, False, employee_id=alpha.employee_id)
    await asyncio.sleep(0)
    plan = await resolver(call("+74951234567"))
    ((*targets,),) = [w.targets for w in (await unroll(plan)).waves]
    assert [t.uri for t in targets] == [PHONE.contact, "sip:+79161112233@127.0.0.1:5090"]


def _phone_dials(code: str, user: str | None, account: uuid.UUID | None) -> InboundCall:
    auth = CallerAuth(account_id=account, user=user, realm="alpha.zvonar") if user else None
    return replace(call(code, from_uri=f"sip:{user or 'x'}@alpha.zvonar"), auth=auth)


async def test_star_78_and_79_turn_do_not_disturb_on_and_off_from_the_phone(
    container: Container,
) -> None:
    alpha = await seed_account(container)
    resolver = await _resolver(container, [PHONE])
    recorded = RecordingBus()
    container.db.bus.subscribe(EmployeeDndChanged, recorded.publish)

    async def dnd() -> bool:
        view = await container.directory.get_employee(alpha.principal, alpha.employee_id)
        return view.employee.dnd

    on = await resolver(_phone_dials("*78", "101", alpha.account_id))
    # Answered with the confirmation in the account's language, then hung up; no journal.
    assert on == Reject(480, "Do Not Disturb On", prompt=prompt_path("dnd_on", "ru"))
    assert await dnd() is True
    off = await resolver(_phone_dials("*79", "101", alpha.account_id))
    assert off == Reject(480, "Do Not Disturb Off", prompt=prompt_path("dnd_off", "ru"))
    assert await dnd() is False
    again = await resolver(_phone_dials("*79", "101", alpha.account_id))  # already off
    assert isinstance(again, Reject) and again.prompt == prompt_path("dnd_off", "ru")
    assert [e.dnd for e in recorded.of_type(EmployeeDndChanged)] == [True, False]
    for expected in (True, False):  # *76: one key, each press the other way
        toggled = await resolver(_phone_dials("*76", "101", alpha.account_id))
        said = prompt_path("dnd_on" if expected else "dnd_off", "ru")
        assert isinstance(toggled, Reject) and toggled.prompt == said
        assert await dnd() is expected
    # Only our phones, each for its own employee: a trunk or a stranger, an unknown user.
    for refused in (
        _phone_dials("*78", None, None),
        _phone_dials("*78", "999", alpha.account_id),
        replace(_phone_dials("*78", "101", alpha.account_id), auth=CallerAuth()),
    ):
        assert await resolver(refused) == Reject(403, "Forbidden")
    assert await dnd() is False


async def test_star_9_is_an_intercom_call_to_the_colleagues_phones(
    container: Container,
) -> None:
    """*9<ext> from a phone: the colleague's phones only (no mobile), each asked to answer
    at once; an internal call otherwise. Do not disturb holds for it too."""
    alpha = await _with_mobile(container, EmployeePatch(ring_mobile=True))
    resolver = await _resolver(container, [PHONE])
    resolver.extension_calls = _NoOutsideCalls()
    plan = await resolver(_phone_dials("*9101", "101", alpha.account_id))
    assert isinstance(plan, Plan) and plan.direction is Direction.internal
    ((phone,),) = [w.targets for w in plan.waves]  # the mobile is not rung
    assert phone.uri == PHONE.contact and phone.auto_answer is True
    nobody = await resolver(_phone_dials("*9999", "101", alpha.account_id))
    assert isinstance(nobody, Reject) and nobody.status == 404
    bare = await resolver(_phone_dials("*9", "101", alpha.account_id))  # no intercom: dialled
    assert bare == Reject(484, "Address Incomplete")
    await container.directory.set_dnd(alpha.account_id, True, employee_id=alpha.employee_id)
    await asyncio.sleep(0)
    refused = await resolver(_phone_dials("*9101", "101", alpha.account_id))
    assert isinstance(refused, Plan) and refused.waves == ()
    assert refused.final.reason == "Do Not Disturb"


class _NoOutsideCalls:
    """The gate's path for other numbers: never reached by these tests."""

    async def __call__(self, call: InboundCall, internal: object) -> Reject:
        return Reject(484, "Address Incomplete")


async def test_star_11_and_replaces_on_ones_own_answered_leg_pull_the_call(
    container: Container,
) -> None:
    """*11, or an INVITE whose Replaces names the phone's own employee's answered leg (a BLF
    key on their own line): a pull for that employee. Naming a colleague's: 403."""
    alpha = await seed_account(container)
    await container.directory.create_employee(
        alpha.principal, EmployeeIn(name="Boris", extension="102", sip_password="boris-pass-1")
    )
    resolver = await _resolver(container, [PHONE])
    anna = Target(TargetKind.employee, "Anna", alpha.employee_id)
    mine = Pull(alpha.account_id, alpha.employee_id, anna)
    assert await resolver(_phone_dials("*11", "101", alpha.account_id)) == mine
    by_key = replace(_phone_dials("101", "101", alpha.account_id), picks=alpha.employee_id)
    assert await resolver(replace(by_key, pulls="c9")) == replace(mine, call_id="c9")
    colleague = replace(_phone_dials("101", "102", alpha.account_id), picks=alpha.employee_id)
    assert await resolver(replace(colleague, pulls="c9")) == Reject(403, "Forbidden")


async def test_a_park_slot_dialled_from_a_phone_takes_the_call_parked_there(
    container: Container,
) -> None:
    """*51 … *59 from a phone: the parked call comes to that phone's employee. Not from a
    trunk or a transfer (no digest user): 403. *50 and *510 are no slots."""
    alpha = await seed_account(container)
    resolver = await _resolver(container, [PHONE])
    anna = Target(TargetKind.employee, "Anna", alpha.employee_id)
    taken = await resolver(_phone_dials("*53", "101", alpha.account_id))
    assert taken == Unpark(alpha.account_id, alpha.employee_id, anna, slot=3)
    anonymous = replace(
        _phone_dials("*53", "101", alpha.account_id), auth=CallerAuth(alpha.account_id)
    )
    assert await resolver(anonymous) == Reject(403, "Forbidden")
    for dialed in ("*50", "*510"):
        assert not isinstance(await resolver(_phone_dials(dialed, "101", alpha.account_id)), Unpark)


async def test_a_plan_carries_the_accounts_park_times(container: Container) -> None:
    """The account's park settings reach the call's plan (calls/park.py reads them there)."""
    alpha = await seed_account(container)
    async with container.db.unit_of_work() as uow:
        account = await uow.session.get(Account, alpha.account_id)
        assert account is not None
        account.park_seconds, account.park_ring_back_seconds = 45, 15
    resolver = await _resolver(container, [PHONE])
    plan = await resolver(call("+74951234567"))
    assert isinstance(plan, Plan)
    assert (plan.park_seconds, plan.park_ring_back_seconds) == (45, 15)


@dataclass
class _Refused:
    """The extension-call path as the dial plan and the toll-fraud guard leave it: an
    international number refused, a short number handed to the internal path."""

    account_id: uuid.UUID

    async def __call__(
        self,
        call: InboundCall,
        internal: Callable[[InboundCall, uuid.UUID, str], Awaitable[Plan | Reject]],
    ) -> Plan | Reject:
        if call.dialed.startswith("+"):
            return Reject(403, "Forbidden (international_not_allowed)", account_id=self.account_id)
        return await internal(call, self.account_id, "alpha.zvonar")


async def test_an_employees_call_names_who_placed_it_even_when_refused(
    container: Container,
) -> None:
    """The journal's direction and placed_by of a call from 101's phone: a refused
    international number is 101's outbound call, an unknown short number their internal
    one, and a colleague rung is their internal call; never an inbound call of nobody's."""
    alpha = await seed_account(container)
    boris = await container.directory.create_employee(
        alpha.principal, EmployeeIn(name="Boris", extension="102", sip_password="boris-pass-1")
    )
    resolver = await _resolver(container, [PHONE])
    resolver.extension_calls = _Refused(alpha.account_id)
    abroad = await resolver(_phone_dials("+442079460000", "102", alpha.account_id))
    assert isinstance(abroad, Reject) and abroad.status == 403
    assert (abroad.direction, abroad.placed_by) == (Direction.outbound, boris.view.employee.id)
    nobody = await resolver(_phone_dials("999", "102", alpha.account_id))
    assert isinstance(nobody, Reject) and nobody.status == 404
    assert (nobody.direction, nobody.placed_by) == (Direction.internal, boris.view.employee.id)
    colleague = await resolver(_phone_dials("101", "102", alpha.account_id))
    assert isinstance(colleague, Plan) and colleague.direction is Direction.internal
    assert colleague.placed_by == boris.view.employee.id
    # The account's own number, dialled from a phone: its scheme, as 102's internal call.
    own = await resolver(_phone_dials("+74951234567", "102", alpha.account_id))
    assert isinstance(own, Plan) and own.direction is Direction.internal
    assert own.placed_by == boris.view.employee.id
    # Without the INVITE gate, a registered phone's From names the employee just as well.
    caller = Binding(aor="sip:102@alpha.zvonar", contact="sip:102@127.0.0.1:5070",
                     expires_at=1e9, source=("127.0.0.1", 5070))  # fmt: skip
    ungated = await _resolver(container, [PHONE, caller])
    plan = await ungated(call("101", from_uri="sip:102@alpha.zvonar"))
    assert isinstance(plan, Plan) and plan.placed_by == boris.view.employee.id
    missing = await ungated(call("999", from_uri="sip:102@alpha.zvonar"))
    assert isinstance(missing, Reject) and missing.placed_by == boris.view.employee.id
    # A customer's call names nobody; nor does a transfer the B2BUA places (no digest user).
    inbound = await resolver(call("+74951234567"))
    assert isinstance(inbound, Plan) and inbound.placed_by is None
    transfer = replace(call("999"), auth=CallerAuth(account_id=alpha.account_id))
    handed = await resolver(transfer)
    assert isinstance(handed, Reject) and handed.placed_by is None
