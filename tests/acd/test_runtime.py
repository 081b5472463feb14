"""AcdRuntime without calls: sessions driven the way calls.steps drives them, a fake clock.

Checks what the call sees (signals), what is stored (the recorder's batches) and what goes on
the bus, for offers, answers, wrap-up, no-answers (away and the supervisor's alert),
unreachable agents, abandonment, priorities, supervisor statuses, announcements and queue
callbacks (their place, retries after a delay, the live feed).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from zvonar.acd import runtime as runtime_module
from zvonar.acd.agents import Status, StatusInterval
from zvonar.acd.definitions import QueueDef, QueueMember
from zvonar.acd.direct import DirectCalls
from zvonar.acd.events import AgentAlerted, AgentStatusChanged, QueueCallerChanged
from zvonar.acd.facts import FactKind, QueueFact
from zvonar.acd.queue import Strategy
from zvonar.acd.queue_callbacks import MAX_CALLBACK_TRIES, CallbackOutcome
from zvonar.acd.runtime import AcdRuntime
from zvonar.calls.events import (
    CallAnswered,
    CallEnded,
    Disposition,
    HangupSide,
    Target,
    TargetKind,
)
from zvonar.calls.plan import (
    QueueAnnounce,
    QueueCallback,
    QueueOffer,
    QueueOverflow,
    QueueSignal,
    RingTarget,
)
from zvonar.calls.talking import Talking
from zvonar.core.bus import RecordingBus
from zvonar.core.errors import NotFound
from zvonar.media.prompts import DEFAULT_DIR
from zvonar.sip.ua import Flow

ACCOUNT = uuid.uuid4()
STAFF = {"101": str(uuid.uuid4()), "102": str(uuid.uuid4()), "103": str(uuid.uuid4())}
EXT = {v: k for k, v in STAFF.items()}


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


class Rig:
    def __init__(self, *, retry_delay: float = 30.0, **queue: Any) -> None:
        members = tuple(QueueMember(e) for e in queue.pop("members", ("101", "102")))
        self.defs = {"q": QueueDef("q", members=members, **queue)}
        self.clock = Clock()
        self.bus = RecordingBus()
        self.stored: list[object] = []
        self.registered = set(STAFF.values())
        self.dnd: frozenset[str] = frozenset()  # employees in do not disturb (load)
        self.dialled: list[tuple[str, tuple[str, ...], str]] = []
        self.callback_outcome = CallbackOutcome.talked
        self.talk: asyncio.Event | None = None  # set: a talked callback's call is over
        self.rt = AcdRuntime(
            self.load,
            self.bus,
            record=self.record,
            dial_callback=self.dial,
            clock=self.clock,
            callback_retry_delay=retry_delay,
        )
        self.signals: dict[str, list[QueueSignal]] = {}
        self.sessions: dict[str, Any] = {}

    async def load(
        self, account_id: uuid.UUID
    ) -> tuple[Mapping[str, QueueDef], dict[str, str], frozenset[str]]:
        return self.defs, STAFF, self.dnd

    async def record(self, account_id: uuid.UUID, events: list[object]) -> int:
        self.stored.extend(events)
        return len(events)

    async def dial(
        self,
        account_id: uuid.UUID,
        call_id: str,
        targets: tuple[RingTarget, ...],
        t: float,
        n: str,
        *,
        connected: Callable[[str | None], None],
    ) -> CallbackOutcome:
        """A callback as the PBX places it: with ``talk``, the agent and the customer are
        connected first and the call ends when the test sets it."""
        self.dialled.append((call_id, tuple(x.label or "" for x in targets), n))
        if self.callback_outcome is CallbackOutcome.talked and self.talk is not None:
            agent = targets[0].target
            connected(str(agent.target_id) if agent and agent.target_id else None)
            await self.talk.wait()
        return self.callback_outcome

    def targets(self, agent_id: str) -> tuple[RingTarget, ...]:
        if agent_id not in self.registered:
            return ()
        target = Target(TargetKind.employee, EXT[agent_id], uuid.UUID(agent_id))
        flow = Flow("UDP", "127.0.0.1", 5060)
        return (RingTarget(f"sip:{EXT[agent_id]}@127.0.0.1", flow, target, EXT[agent_id]),)

    async def join(
        self, call_id: str, *, tags: frozenset[str] = frozenset(), prompts_dir: Path | None = None
    ) -> bool:
        opened = await self.rt.open(
            ACCOUNT,
            "q",
            call_id,
            caller_tags=tags,
            language="en",
            prompts_dir=prompts_dir,
            targets=self.targets,
            caller=f"+7916{call_id[-1]}000000",
        )
        assert opened is not None
        session, music = opened
        assert music is not None  # the built-in hold music
        self.sessions[call_id] = session
        inbox = self.signals.setdefault(call_id, [])
        return await session.enter(inbox.append)

    def offers(self, call_id: str) -> list[QueueOffer]:
        return [s for s in self.signals.get(call_id, []) if isinstance(s, QueueOffer)]

    def rung(self, call_id: str) -> list[list[str]]:
        return [[t.label or "" for t in o.targets] for o in self.offers(call_id)]

    def answer(self, call_id: str) -> None:
        offer = self.offers(call_id)[-1]
        self.sessions[call_id].answered(offer.offer, offer.targets[0].target)

    async def facts(self) -> list[QueueFact]:
        await self.rt.outbox.flush()
        return [e for e in self.stored if isinstance(e, QueueFact)]

    def status(self, ext: str) -> Status:
        return self.rt.accounts[ACCOUNT].dispatcher.agents[STAFF[ext]].status

    def tick(self, seconds: float) -> None:
        """Let ``seconds`` pass and fire the account's timer as the loop would."""
        self.clock.t += seconds
        self.rt._tick(self.rt.accounts[ACCOUNT])

    def announced(self, call_id: str) -> list[list[str]]:
        """Each announcement the caller was told to hear, as prompt file names."""
        return [
            [p.name for p in s.prompts]
            for s in self.signals.get(call_id, [])
            if isinstance(s, QueueAnnounce)
        ]

    def whats(self, call_id: str) -> list[str]:
        return [e.what for e in self.bus.of_type(QueueCallerChanged) if e.call_id == call_id]


async def settle() -> None:
    """Let spawned callback tasks run to their next wait."""
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_caller_is_offered_to_the_first_free_agent_and_answered() -> None:
    rig = Rig(strategy=Strategy.in_turn)
    assert await rig.join("c1")
    assert rig.rung("c1") == [["101"]]
    assert rig.offers("c1")[0].timeout == 15.0
    assert rig.status("101") is Status.ringing
    rig.clock.t += 4
    rig.answer("c1")
    assert rig.status("101") is Status.on_call
    facts = await rig.facts()
    assert [f.kind for f in facts] == [FactKind.entered, FactKind.answered]
    assert facts[1].wait == pytest.approx(4) and facts[1].agent_id == STAFF["101"]
    whats = [e.what for e in rig.bus.of_type(QueueCallerChanged)]
    assert whats == ["joined", "offered", "answered"]


async def test_wrap_up_keeps_the_agent_from_offers_until_it_elapses() -> None:
    rig = Rig(strategy=Strategy.in_turn, wrapup_seconds=5)
    await rig.join("c1")
    rig.answer("c1")
    rig.sessions["c1"].call_ended()
    assert rig.status("101") is Status.wrap_up
    await rig.join("c2")
    assert rig.rung("c2") == [["102"]]  # 101 is in wrap-up
    rig.answer("c2")
    await rig.join("c3")
    assert rig.rung("c3") == []  # both busy
    rig.clock.t += 5.1
    rig.rt._tick(rig.rt.accounts[ACCOUNT])
    assert rig.status("101") is not Status.wrap_up
    assert rig.rung("c3") == [["101"]]


async def test_an_offer_that_rings_out_goes_to_the_next_agent() -> None:
    rig = Rig(strategy=Strategy.in_turn)
    await rig.join("c1")
    rig.sessions["c1"].not_answered(rig.offers("c1")[0].offer)
    assert rig.rung("c1") == [["101"], ["102"]]


async def test_all_at_once_offers_every_free_agent() -> None:
    rig = Rig(strategy=Strategy.all_at_once, members=("101", "102", "103"))
    await rig.join("c1")
    assert sorted(rig.rung("c1")[0]) == ["101", "102", "103"]
    offer = rig.offers("c1")[0]
    rig.sessions["c1"].answered(offer.offer, offer.targets[1].target)
    statuses = {e: rig.status(e) for e in ("101", "102", "103")}
    picked = offer.targets[1].label or ""
    assert statuses.pop(picked) is Status.on_call
    assert set(statuses.values()) == {Status.online}  # the others are free again


async def test_a_vip_waits_ahead_of_earlier_callers() -> None:
    rig = Rig(strategy=Strategy.in_turn, members=("101",))
    await rig.join("c1")
    rig.answer("c1")
    await rig.join("c2")
    await rig.join("c3", tags=frozenset({"vip"}))
    rig.sessions["c1"].call_ended()  # wrap-up 10 s by default
    rig.clock.t += 11
    rig.rt._tick(rig.rt.accounts[ACCOUNT])
    assert rig.rung("c3") == [["101"]] and rig.rung("c2") == []


async def test_a_caller_who_hangs_up_is_abandoned_with_their_wait() -> None:
    rig = Rig(members=("101",))
    rig.registered.clear()  # nobody can be rung
    assert await rig.join("c1")
    assert rig.rung("c1") == []
    rig.clock.t += 7.5
    rig.sessions["c1"].left()
    rig.sessions["c1"].left()  # the call's teardown may say it twice
    facts = await rig.facts()
    assert [f.kind for f in facts] == [FactKind.entered, FactKind.abandoned]
    assert facts[1].wait == pytest.approx(7.5)


async def test_leaving_while_offered_frees_the_agent() -> None:
    rig = Rig(strategy=Strategy.in_turn, members=("101",))
    await rig.join("c1")
    assert rig.status("101") is Status.ringing
    rig.sessions["c1"].left()
    assert rig.status("101") is Status.online
    assert [f.kind for f in await rig.facts()][-1] is FactKind.abandoned


async def test_dnd_agents_are_not_offered_and_unknown_agents_are_not_found() -> None:
    rig = Rig(strategy=Strategy.in_turn)
    await rig.rt.set_status(ACCOUNT, STAFF["101"], Status.dnd, "lunch")
    await rig.join("c1")
    assert rig.rung("c1") == [["102"]]
    await rig.rt.outbox.flush()
    changes = rig.bus.of_type(AgentStatusChanged)
    assert any(c.new == "dnd" and c.reason == "lunch" for c in changes)
    with pytest.raises(NotFound):
        await rig.rt.set_status(ACCOUNT, str(uuid.uuid4()), Status.dnd, None)


async def test_an_employee_in_do_not_disturb_starts_as_a_dnd_agent() -> None:
    # DND is kept on the employee (*78, an admin): a queue loaded later (a restart, a first
    # caller) makes them a DND agent, not an online one.
    rig = Rig(strategy=Strategy.in_turn)
    rig.dnd = frozenset({STAFF["101"]})
    await rig.join("c1")
    assert rig.status("101") is Status.dnd
    assert rig.rung("c1") == [["102"]]


async def test_do_not_disturb_turned_on_and_off_from_the_phone_steers_the_queue() -> None:
    rig = Rig(strategy=Strategy.in_turn)
    await rig.join("c1")
    assert rig.rung("c1") == [["101"]]
    rig.answer("c1")
    rig.rt.employee_dnd(ACCOUNT, STAFF["102"], True)  # *78 on 102's phone
    assert rig.status("102") is Status.dnd
    await rig.join("c2")
    assert rig.rung("c2") == []  # 101 talks, 102 does not want calls: c2 waits
    rig.rt.employee_dnd(ACCOUNT, STAFF["102"], False)  # *79: back, and offered the waiting c2
    assert rig.status("102") is Status.ringing
    assert rig.rung("c2") == [["102"]]
    # An account the ACD has not loaded yet: nothing to do, it loads the flag later.
    rig.rt.employee_dnd(uuid.uuid4(), STAFF["101"], True)


async def test_do_not_disturb_chosen_as_the_agent_status_is_not_fed_twice() -> None:
    rig = Rig(strategy=Strategy.in_turn)
    await rig.join("c1")
    await rig.rt.set_status(ACCOUNT, STAFF["102"], Status.dnd, "focus")
    await rig.rt.outbox.flush()
    before = len(rig.bus.of_type(AgentStatusChanged))
    rig.rt.employee_dnd(ACCOUNT, STAFF["102"], True)  # the employee's flag follows the status
    await rig.rt.outbox.flush()
    assert len(rig.bus.of_type(AgentStatusChanged)) == before
    assert rig.rt.accounts[ACCOUNT].dispatcher.agents[STAFF["102"]].presence_reason == "focus"


async def test_max_wait_overflows_the_caller() -> None:
    rig = Rig(members=("101",), max_wait=30)
    rig.registered.clear()
    await rig.join("c1")
    rig.clock.t += 31
    rig.rt._tick(rig.rt.accounts[ACCOUNT])
    assert isinstance(rig.signals["c1"][-1], QueueOverflow)
    assert [f.kind for f in await rig.facts()][-1] is FactKind.overflowed


async def test_a_callback_keeps_the_place_and_dials_agent_then_customer() -> None:
    rig = Rig(strategy=Strategy.in_turn, members=("101",), callback_digit="5")
    await rig.join("c1")
    rig.answer("c1")
    await rig.join("c2")
    rig.sessions["c2"].digit("5")
    assert isinstance(rig.signals["c2"][-1], QueueCallback)
    rig.sessions["c2"].left()  # the caller hangs up after the confirmation: still queued
    await rig.join("c3")
    rig.sessions["c1"].call_ended()
    rig.clock.t += 11
    rig.rt._tick(rig.rt.accounts[ACCOUNT])
    for _ in range(10):
        await asyncio.sleep(0)
    assert rig.dialled == [("c2", ("101",), "+79162000000")]
    assert rig.rung("c3") == []  # 101 took the callback (then wrap-up)
    kinds = [(f.call_id, f.kind) for f in await rig.facts()]
    assert ("c2", FactKind.callback_requested) in kinds
    assert ("c2", FactKind.answered) in kinds and ("c3", FactKind.answered) not in kinds
    assert rig.status("101") is Status.wrap_up


async def _callback_waiting(rig: Rig) -> None:
    """101 talks to c1; c2 asks for a callback; c3 joins; 101 hangs up and wraps up."""
    await rig.join("c1")
    rig.answer("c1")
    await rig.join("c2")
    rig.sessions["c2"].digit("5")
    rig.sessions["c2"].left()
    await rig.join("c3")
    rig.sessions["c1"].call_ended()
    rig.clock.t += 11
    rig.rt._tick(rig.rt.accounts[ACCOUNT])
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_callback_the_customer_misses_is_retried_after_the_delay_then_dropped() -> None:
    rig = Rig(strategy=Strategy.in_turn, members=("101",), callback_digit="5", wrapup_seconds=0)
    rig.callback_outcome = CallbackOutcome.customer_missed
    await rig.join("c1")
    rig.answer("c1")
    await rig.join("c2")
    rig.sessions["c2"].digit("5")
    rig.sessions["c2"].left()
    rig.sessions["c1"].call_ended()  # 101 is free: c2's turn, the first try
    await settle()
    acct = rig.rt.accounts[ACCOUNT]
    retry_at = rig.clock.t + 30
    assert [d[0] for d in rig.dialled] == ["c2"]
    # Not the agent's fault: 101 is free, not away; c2 waits out the delay in its place.
    assert rig.status("101") is Status.online
    assert acct.dispatcher.held_until("c2") == retry_at
    assert acct.dispatcher.next_deadline() == retry_at  # the runtime's timer is armed for it
    assert acct.timer is not None
    (view,) = await rig.rt.view(ACCOUNT)
    assert [(w["call_id"], w["callback"]) for w in view.waiting] == [("c2", True)]
    rig.tick(29.9)
    await settle()
    assert len(rig.dialled) == 1  # not before the delay
    rig.tick(0.1)
    await settle()
    assert len(rig.dialled) == 2
    rig.tick(30)
    await settle()
    assert [d[0] for d in rig.dialled] == ["c2"] * MAX_CALLBACK_TRIES
    rig.tick(300)
    await settle()
    assert len(rig.dialled) == MAX_CALLBACK_TRIES  # given up
    facts = [f for f in await rig.facts() if f.call_id == "c2"]
    assert [f.kind for f in facts] == [
        FactKind.entered,
        FactKind.callback_requested,
        FactKind.abandoned,
    ]
    assert facts[-1].wait == pytest.approx(60)  # counted from when they joined
    assert rig.whats("c2") == [
        *("joined", "callback", "offered", "callback_retry", "offered", "callback_retry"),
        *("offered", "abandoned"),
    ]
    assert (await rig.rt.view(ACCOUNT))[0].waiting == ()


async def test_other_callers_are_served_while_a_callback_waits_to_retry() -> None:
    rig = Rig(strategy=Strategy.in_turn, members=("101",), callback_digit="5")
    rig.callback_outcome = CallbackOutcome.customer_missed
    await _callback_waiting(rig)
    assert [d[0] for d in rig.dialled] == ["c2"]
    # c3, next in line, is offered to 101 while c2's customer is given time.
    assert rig.rung("c3") == [["101"]]
    rig.answer("c3")
    rig.sessions["c3"].call_ended()
    rig.tick(30)  # wrap-up (10 s) and the retry delay are over: c2 again, first in line
    await settle()
    assert [d[0] for d in rig.dialled] == ["c2", "c2"]


async def test_a_callback_is_answered_when_agent_and_customer_connect() -> None:
    """The queue's answer (its wait, the agent on call) is when they start talking, not when
    the callback is over."""
    rig = Rig(strategy=Strategy.in_turn, members=("101",), callback_digit="5")
    rig.talk = asyncio.Event()
    await rig.join("c1")
    rig.answer("c1")
    rig.clock.t += 5
    await rig.join("c2")
    rig.sessions["c2"].digit("5")
    rig.sessions["c2"].left()
    rig.sessions["c1"].call_ended()
    rig.tick(11)  # 101's wrap-up is over: c2's callback is placed and connects
    await settle()
    assert rig.status("101") is Status.on_call
    answered = [f for f in await rig.facts() if f.kind is FactKind.answered]
    assert [(f.call_id, f.agent_id) for f in answered] == [
        ("c1", STAFF["101"]),
        ("c2", STAFF["101"]),
    ]
    assert answered[1].wait == pytest.approx(11)
    rig.clock.t += 120  # they talk for two minutes
    rig.talk.set()
    await settle()
    assert rig.status("101") is Status.wrap_up
    assert [f.kind for f in await rig.facts() if f.call_id == "c2"].count(FactKind.answered) == 1
    assert rig.whats("c2") == ["joined", "callback", "offered", "answered"]


async def test_a_callback_request_shows_in_the_live_feed_and_view() -> None:
    rig = Rig(members=("101",), callback_digit="7")
    rig.registered.clear()  # nobody to ring: c1 waits
    await rig.join("c1")
    rig.sessions["c1"].digit("7")
    assert isinstance(rig.signals["c1"][-1], QueueCallback)
    rig.sessions["c1"].left()  # the caller hangs up after the confirmation
    await rig.rt.outbox.flush()
    assert rig.whats("c1") == ["joined", "callback"]
    (view,) = await rig.rt.view(ACCOUNT)
    assert [(w["call_id"], w["callback"], w["position"]) for w in view.waiting] == [("c1", True, 1)]


@pytest.mark.parametrize(
    ("digit", "said"),
    [
        ("5", ["queue_callback_offer.wav"]),
        ("1", ["queue_callback_press.wav", "n1.wav"]),
        ("0", ["queue_callback_press.wav", "n0.wav"]),
        ("9", ["queue_callback_press.wav", "n9.wav"]),
        ("*", ["queue_callback_press.wav", "key_star.wav"]),
        ("#", ["queue_callback_press.wav", "key_hash.wav"]),
    ],
)
async def test_the_callback_offer_names_the_queues_digit(digit: str, said: list[str]) -> None:
    """On entry (nobody free) and with every periodic announcement, whatever the digit."""
    rig = Rig(
        members=("101",),
        callback_digit=digit,
        announce_prompt="queue_announce",
        announce_interval=20,
    )
    rig.registered.clear()
    await rig.join("c1")
    assert rig.announced("c1") == [["queue_announce.wav", *said]]
    rig.tick(20)
    assert rig.announced("c1") == [["queue_announce.wav", *said]] * 2
    for name in said:
        assert (DEFAULT_DIR / "en" / name).is_file()


async def test_the_callback_offer_alone_and_an_accounts_own_recording(tmp_path: Path) -> None:
    rig = Rig(members=("101",), callback_digit="3")  # no announce prompt, no interval
    rig.registered.clear()
    await rig.join("c1")
    assert rig.announced("c1") == [["queue_callback_press.wav", "n3.wav"]]
    own = tmp_path / "en" / "queue_callback_offer.wav"
    own.parent.mkdir()
    own.write_bytes((DEFAULT_DIR / "en" / "queue_callback_offer.wav").read_bytes())
    await rig.join("c2", prompts_dir=tmp_path)
    (said,) = [s.prompts for s in rig.signals["c2"] if isinstance(s, QueueAnnounce)]
    assert said == (own,)  # their sentence names their digit


async def test_no_announcement_when_an_agent_takes_the_caller_at_once() -> None:
    rig = Rig(members=("101",), callback_digit="5", announce_prompt="queue_announce")
    await rig.join("c1")
    assert rig.announced("c1") == [] and rig.rung("c1") == [["101"]]


async def test_a_callback_no_agent_answers_keeps_its_place() -> None:
    rig = Rig(strategy=Strategy.in_turn, members=("101", "102"), callback_digit="5")
    rig.callback_outcome = CallbackOutcome.agent_missed
    rig.registered.discard(STAFF["102"])
    await _callback_waiting(rig)
    # 101 let it ring out (an ordinary no-answer) and is the only one: tried again until
    # the away rule (3 no-answers) takes them out; c3 never jumped ahead.
    assert {d[0] for d in rig.dialled} == {"c2"}
    assert rig.status("101") is Status.away
    assert rig.rung("c3") == []


async def test_a_callback_nobody_can_place_is_dropped() -> None:
    rig = Rig(strategy=Strategy.in_turn, members=("101",), callback_digit="5")
    rig.rt.dial_callback = None
    await _callback_waiting(rig)
    assert rig.rung("c3") == [["101"]]
    kinds = [(f.call_id, f.kind) for f in await rig.facts()]
    assert ("c2", FactKind.abandoned) in kinds


async def test_an_unknown_queue_opens_nothing() -> None:
    rig = Rig()
    opened = await rig.rt.open(
        ACCOUNT,
        "nope",
        "c1",
        caller_tags=frozenset(),
        language="en",
        prompts_dir=None,
        targets=rig.targets,
    )
    assert opened is None


async def test_an_agent_who_misses_offers_in_a_row_is_set_away_and_supervisors_told() -> None:
    rig = Rig(strategy=Strategy.in_turn, members=("101", "102"), max_no_answer=2)
    rig.registered.discard(STAFF["102"])
    t0 = rig.clock.t
    await rig.join("c1")
    for n in range(2):
        assert rig.rung("c1")[n] == ["101"]
        rig.clock.t += 15
        rig.sessions["c1"].not_answered(rig.offers("c1")[n].offer)
    assert rig.status("101") is Status.away
    assert len(rig.rung("c1")) == 2  # nobody else to offer to
    await rig.rt.outbox.flush()
    (alert,) = rig.bus.of_type(AgentAlerted)
    assert (alert.agent_id, alert.reason, alert.no_answers) == (STAFF["101"], "no_answer", 2)
    assert alert.account_id == ACCOUNT
    changes = [
        (e.old, e.new, e.reason)
        for e in rig.bus.of_type(AgentStatusChanged)
        if e.agent_id == STAFF["101"]
    ]
    assert changes[-1] == ("ringing", "away", "no_answer")
    # Every change that lasted is a stored interval (the instants online between offers
    # carry no time); "away" is the open one.
    spans = [
        (i.status.value, i.start - t0, i.end - t0)
        for i in rig.stored
        if isinstance(i, StatusInterval) and i.agent_id == STAFF["101"]
    ]
    assert spans == [("ringing", 0.0, 15.0), ("ringing", 15.0, 30.0)]


async def test_an_agent_without_a_registered_phone_is_unreachable_until_it_returns() -> None:
    rig = Rig(strategy=Strategy.in_turn, members=("101",))
    rig.registered.clear()
    await rig.join("c1")
    assert rig.status("101") is Status.unreachable and rig.rung("c1") == []
    rig.clock.t += 40
    rig.registered.add(STAFF["101"])
    await rig.join("c2")  # joining checks the members' phones again
    assert rig.status("101") is Status.ringing and rig.rung("c1") == [["101"]]
    await rig.rt.outbox.flush()
    news = [e.new for e in rig.bus.of_type(AgentStatusChanged) if e.agent_id == STAFF["101"]]
    assert news[-3:] == ["unreachable", "online", "ringing"]
    (unreachable,) = [
        i for i in rig.stored if isinstance(i, StatusInterval) and i.status is Status.unreachable
    ]
    assert unreachable.end - unreachable.start == pytest.approx(40)


async def test_the_live_view_notices_a_phone_that_registered_and_offers_the_waiting_caller() -> (
    None
):
    rig = Rig(strategy=Strategy.in_turn, members=("101",))
    rig.registered.clear()
    await rig.join("c1")
    (view,) = await rig.rt.view(ACCOUNT)
    assert [a["status"] for a in view.agents] == ["unreachable"] and rig.rung("c1") == []
    rig.registered.add(STAFF["101"])  # their phone registers; no call comes in meanwhile
    (view,) = await rig.rt.view(ACCOUNT)
    assert [a["status"] for a in view.agents] == ["ringing"]
    assert rig.rung("c1") == [["101"]]
    rig.answer("c1")
    rig.registered.clear()  # their phone goes away during the call: the call goes on
    (view,) = await rig.rt.view(ACCOUNT)
    assert [a["status"] for a in view.agents] == ["on_call"]
    rig.sessions["c1"].call_ended()
    rig.tick(10)  # wrap-up over: no phone, so unreachable rather than online
    assert rig.status("101") is Status.unreachable


async def test_a_registration_change_offers_the_waiting_caller_without_any_other_trigger(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runtime_module, "DEVICE_CHECK_DELAY", 0.01)
    rig = Rig(strategy=Strategy.in_turn, members=("101",))
    rig.registered.clear()
    await rig.join("c1")
    assert rig.status("101") is Status.unreachable
    rig.registered.add(STAFF["101"])
    for _ in range(3):  # a burst of REGISTERs is one check
        rig.rt.devices_changed(ACCOUNT)
    rig.rt.devices_changed(uuid.uuid4())  # an account with no queued call yet: nothing to do
    assert len(rig.rt._device_checks) == 1
    await asyncio.sleep(0.05)
    assert rig.status("101") is Status.ringing and rig.rung("c1") == [["101"]]
    assert rig.rt._device_checks == {}


def _direct(call_id: str, ext: str) -> CallAnswered:
    return CallAnswered(
        account_id=ACCOUNT,
        call_id=call_id,
        leg_id=f"{call_id}.w0t0",
        at=datetime.now(UTC),
        by=uuid.UUID(STAFF[ext]),
    )


def _ended(call_id: str) -> CallEnded:
    return CallEnded(
        account_id=ACCOUNT,
        call_id=call_id,
        disposition=Disposition.answered,
        ended_at=datetime.now(UTC),
        hangup=HangupSide.caller,
    )


async def test_an_agent_on_a_direct_call_is_not_offered_queue_calls() -> None:
    """acd/direct.py: a customer who dialled 101's own number is talking to 101; the queue
    offers its next caller to 102, and to 101 again once that call is over."""
    rig = Rig(strategy=Strategy.in_turn, wrapup_seconds=0)
    direct = Talking()  # who talks, from the call events; DirectCalls follows it
    DirectCalls(rig.rt, direct)
    assert await rig.join("c1")  # the account's agents are loaded: 101 takes c1 and ends it
    rig.answer("c1")
    direct.apply(_direct("c1", "101"))  # the queue call's own answer: its session's business
    rig.sessions["c1"].call_ended()
    direct.apply(_ended("c1"))
    assert rig.status("101") is Status.online
    direct.apply(_direct("d1", "101"))
    assert rig.status("101") is Status.on_call
    assert await rig.join("c2")
    assert rig.rung("c2") == [["102"]]  # not 101, mid-conversation
    rig.answer("c2")
    assert await rig.join("c3")
    assert rig.rung("c3") == []  # both talking
    direct.apply(_ended("d1"))
    assert rig.rung("c3") == [["101"]]  # offered as soon as the direct call ended
    assert rig.status("101") is Status.ringing
    errors = [e for e in rig.bus.events if type(e).__name__ == "AgentProtocolError"]
    assert errors == []


async def test_the_answering_agent_hears_the_queues_announcement() -> None:
    """``agent_announce``: every contact of an offer carries the prompt (calls/accept.py
    plays it to whoever answers, before the caller is theirs); none without the setting."""
    rig = Rig(members=("101",), agent_announce="queue_announce")
    await rig.join("c1")
    (offer,) = rig.offers("c1")
    assert {t.announce for t in offer.targets} == {DEFAULT_DIR / "en" / "queue_announce.wav"}
    plain = Rig(members=("101",))
    await plain.join("c1")
    assert all(t.announce is None for t in plain.offers("c1")[0].targets)
