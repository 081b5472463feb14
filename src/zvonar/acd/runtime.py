"""The ACD at run time: the pure dispatcher per account, driven by live calls.

The call actor (``calls.steps``) holds a :class:`QueueSession` per waiting caller and tells it
what happens on the line (an offer rang, an agent answered, a digit, the caller left, the
call ended); the session feeds the :class:`~zvonar.acd.dispatcher.Dispatcher` and the runtime
turns the dispatcher's decisions back into signals for the calls (ring these agents, play an
announcement, overflow, the callback is taken). Timers (wrap-up, max wait, escalation,
announcements) are one loop timer per account at the dispatcher's next deadline.

History (status intervals, queue facts) and the live feed (``zvonar.acd.events`` on the
bus) go out behind the calls (acd/outbox.py); the supervisor's snapshot is acd/live_view.py.
Times are epoch seconds, as the stored history wants them.

Queue callbacks: a caller who pressed the callback digit stays in line (``QueueCallerChanged``
"callback"); on their turn the offered agents are rung first, then the customer
(``dial_callback``). A customer who cannot be reached is tried again after
``callback_retry_delay`` seconds in the same place (the agents are free meanwhile), at most
``callback_tries`` times in all; then the callback leaves the queue as abandoned.

Agents are the employees named in the account's queues. An agent starts ``online`` when one
of their phones is registered (the default for a small office where everybody takes calls)
and follows what they and their supervisor set; whether their phone is registered is checked
each time they are offered a call, a caller joins their queue, or a supervisor looks at the
live view (with the account's latest phone lookup, which each queued call brings along).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from pathlib import Path

from zvonar.acd.agents import (
    DEVICES_REGISTERED,
    DEVICES_UNREGISTERED,
    Agent,
    AgentConfig,
    AgentInput,
    AgentProtocolError,
    StatusChanged,
    SupervisorAlert,
    no_answer,
    set_dnd,
    set_online,
    supervisor_set,
)
from zvonar.acd.agents import Status as AgentStatus
from zvonar.acd.announcements import announcement
from zvonar.acd.definitions import QueueDef
from zvonar.acd.dispatcher import Dispatcher, Offer
from zvonar.acd.events import AgentAlerted, AgentStatusChanged, QueueCallerChanged
from zvonar.acd.facts import FactKind, QueueFact
from zvonar.acd.live_view import QueueView, queue_views, wall
from zvonar.acd.outbox import AcdOutbox, Recorder
from zvonar.acd.queue import Announce, Overflow
from zvonar.acd.queue_callbacks import (
    CALLBACK_RETRY_DELAY,
    MAX_CALLBACK_TRIES,
    CallbackDialer,
    CallbackOutcome,
)
from zvonar.acd.session import Account, Session
from zvonar.calls.plan import (
    QueueAnnounce,
    QueueCallback,
    QueueOffer,
    QueueOverflow,
    RingTarget,
)
from zvonar.core.bus import EventBus
from zvonar.core.errors import NotFound
from zvonar.media.engine import PromptNotFoundError
from zvonar.media.prompts import hold_music_path, prompt_path

__all__ = ["AcdRuntime", "Loader"]

log = logging.getLogger(__name__)

Loader = Callable[
    [uuid.UUID], Awaitable[tuple[Mapping[str, QueueDef], Mapping[str, str], frozenset[str]]]
]
"""An account's queue definitions, its employees' ids by extension, and those of them in do
not disturb."""


DEVICE_CHECK_DELAY = 0.25  # s after a registration change: the registrar has stored it


class AcdRuntime:
    """See the module docstring. ``open`` is ``pbx.route.QueueSessions``."""

    def __init__(
        self,
        load: Loader,
        bus: EventBus,
        *,
        record: Recorder | None = None,
        dial_callback: CallbackDialer | None = None,
        clock: Callable[[], float] = time.time,
        callback_retry_delay: float = CALLBACK_RETRY_DELAY,
        callback_tries: int = MAX_CALLBACK_TRIES,
    ) -> None:
        if callback_retry_delay < 0 or callback_tries < 1:
            raise ValueError("callback retries need a delay >= 0 and at least one try")
        self.load = load
        self.bus = bus
        self.outbox = AcdOutbox(bus, record)
        self.dial_callback = dial_callback
        self.now = clock
        self.callback_retry_delay = callback_retry_delay
        self.callback_tries = callback_tries
        self.accounts: dict[uuid.UUID, Account] = {}
        self._tasks: set[asyncio.Task[object]] = set()
        self._device_checks: dict[uuid.UUID, asyncio.TimerHandle] = {}
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        self.outbox.start()

    async def close(self) -> None:
        self._closed = True
        for acct in self.accounts.values():
            if acct.timer is not None:
                acct.timer.cancel()
        for handle in self._device_checks.values():
            handle.cancel()
        self._device_checks.clear()
        for task in list(self._tasks):
            task.cancel()
        await self.outbox.close()

    def invalidate(self, account_id: uuid.UUID) -> None:
        """Queue definitions or staff changed: reload before the next caller joins."""
        acct = self.accounts.get(account_id)
        if acct is not None:
            acct.stale = True

    def devices_changed(self, account_id: uuid.UUID) -> None:
        """A phone of the account registered or went away: re-check its agents shortly (one
        check for a burst of REGISTERs), so "unreachable" follows the phones and a waiting
        caller is offered to an agent whose phone just came back."""
        acct = self.accounts.get(account_id)
        if self._closed or acct is None or acct.targets is None:
            return  # nothing to re-check before the account's first queued call
        if account_id not in self._device_checks:
            loop = asyncio.get_running_loop()
            self._device_checks[account_id] = loop.call_later(
                DEVICE_CHECK_DELAY, self._check_devices, account_id
            )

    def _check_devices(self, account_id: uuid.UUID) -> None:
        self._device_checks.pop(account_id, None)
        acct = self.accounts.get(account_id)
        if acct is not None and not self._closed:
            self.refresh_devices(acct)

    # -- sessions (pbx.route.QueueSessions) ------------------------------------------------------

    async def open(
        self,
        account_id: uuid.UUID,
        queue: str,
        call_id: str,
        *,
        caller_tags: frozenset[str],
        language: str,
        prompts_dir: Path | None,
        targets: Callable[[str], tuple[RingTarget, ...]],
        caller: str = "",
    ) -> tuple[Session, Path | None] | None:
        acct = await self._account(account_id, targets)
        definition = acct.defs.get(queue)
        if definition is None or queue not in acct.dispatcher.queues:
            return None
        priority = 1 if caller_tags & set(definition.vip_tags) else 0
        session = Session(
            self, acct, queue, call_id, priority, caller, language, prompts_dir, targets
        )
        music = None
        if definition.hold_music is not None:
            with contextlib.suppress(PromptNotFoundError):
                music = prompt_path(definition.hold_music, language, base_dir=prompts_dir)
        return session, music or hold_music_path(base_dir=prompts_dir)

    async def _account(
        self,
        account_id: uuid.UUID,
        targets: Callable[[str], tuple[RingTarget, ...]] | None = None,
    ) -> Account:
        acct = self.accounts.get(account_id)
        if acct is None:
            acct = self.accounts[account_id] = Account(account_id, Dispatcher())
        if targets is not None:
            acct.targets = targets
        if acct.stale:
            defs, agent_ids, acct.dnd = await self.load(account_id)
            acct.stale = False
            self._apply(acct, defs, agent_ids)
        return acct

    def _apply(
        self, acct: Account, defs: Mapping[str, QueueDef], agent_ids: Mapping[str, str]
    ) -> None:
        d = acct.dispatcher
        acct.agent_ids = dict(agent_ids)
        for name, definition in defs.items():
            old = acct.defs.get(name)
            if old == definition and name in d.queues:
                continue
            if name in d.queues:
                if len(d.queues[name]):
                    continue  # callers wait: the new settings apply once the queue is empty
                d.remove_queue(name)
            for member in definition.members:
                agent_id = agent_ids.get(member.extension)
                if agent_id is not None and agent_id not in d.agents:
                    self._new_agent(acct, agent_id, definition)
            d.add_queue(definition.to_queue_config(agent_ids.get))
        for name in list(d.queues):
            if name not in defs and not len(d.queues[name]):
                d.remove_queue(name)
        acct.defs = {**acct.defs, **defs}
        for name in [n for n in acct.defs if n not in defs and n not in d.queues]:
            acct.defs.pop(name)

    def _new_agent(self, acct: Account, agent_id: str, definition: QueueDef) -> None:
        config = AgentConfig(
            wrapup_seconds=definition.wrapup_seconds, max_no_answers=definition.max_no_answer
        )
        # Registered or not as far as we can tell now (unknown before the first queued call:
        # then unreachable until a caller joins their queue or a supervisor looks).
        registered = acct.targets is not None and bool(acct.targets(agent_id))
        acct.dispatcher.add_agent(Agent(agent_id, self.now(), config, registered=registered))
        # Everybody in a queue takes calls unless they say otherwise: do not disturb, kept on
        # the employee (a restart, or DND set before they joined a queue), says otherwise.
        chosen = set_dnd() if agent_id in acct.dnd else set_online()
        acct.dispatcher.agent_input(agent_id, chosen, self.now())

    def employee_dnd(self, account_id: uuid.UUID, agent_id: str, on: bool) -> None:
        """The employee turned do not disturb on or off (``*78``/``*79`` from their phone, an
        admin, or this very agent status): as an agent they choose DND, or online after it.
        A change on a call waits for its end, as any status change does (agents.py)."""
        acct = self.accounts.get(account_id)
        if acct is None:
            return  # loaded with the flag when its first caller queues
        acct.dnd = acct.dnd | {agent_id} if on else acct.dnd - {agent_id}
        agent = acct.dispatcher.agents.get(agent_id)
        if agent is None or on == (agent.presence is AgentStatus.dnd):
            return  # in no queue, or already so (DND chosen as the agent status)
        self.feed(acct, agent_id, supervisor_set(AgentStatus.dnd if on else AgentStatus.online))
        self.pump(acct)

    def refresh_devices(self, acct: Account) -> None:
        """Check every agent's phones again (they may have registered or gone since the last
        call): "unreachable" comes and goes, and a waiting caller may now be offered."""
        lookup = acct.targets
        if lookup is None:
            return
        for agent_id in list(acct.dispatcher.agents):
            self.ensure_agent(acct, agent_id, bool(lookup(agent_id)))
        self.pump(acct)

    def ensure_agent(self, acct: Account, agent_id: str, registered: bool) -> None:
        agent = acct.dispatcher.agents.get(agent_id)
        if agent is None:
            return
        if agent.registered != registered:
            inp = DEVICES_REGISTERED if registered else DEVICES_UNREGISTERED
            self.feed(acct, agent_id, inp)

    def feed(self, acct: Account, agent_id: str, inp: AgentInput) -> None:
        try:
            acct.dispatcher.agent_input(agent_id, inp, self.now())
        except NotFound:
            log.warning("ACD: no agent %s", agent_id)

    # -- supervisor actions ----------------------------------------------------------------------

    async def set_status(
        self, account_id: uuid.UUID, agent_id: str, status: AgentStatus, reason: str | None
    ) -> AgentStatus:
        acct = await self._account(account_id)
        if agent_id not in acct.dispatcher.agents:
            raise NotFound(f"agent {agent_id} is in no queue", code="agent_not_found")
        self.feed(acct, agent_id, supervisor_set(status, reason))
        self.pump(acct)
        return acct.dispatcher.agents[agent_id].status

    async def view(self, account_id: uuid.UUID) -> list[QueueView]:
        acct = await self._account(account_id)
        self.refresh_devices(acct)
        return queue_views(acct, self.now())

    # -- the dispatcher's decisions --------------------------------------------------------------

    def pump(self, acct: Account) -> None:
        """Decide, then turn every event into signals, history and the live feed."""
        if acct.pumping:
            return  # an input fed while pumping is decided by the loop below
        acct.pumping = True
        try:
            for _ in range(1000):
                d, now = acct.dispatcher, self.now()
                d.decide(now)
                events = d.events()
                if not events:
                    break
                for event in events:
                    self._event(acct, event)
        finally:
            acct.pumping = False
        self._arm(acct)

    def _event(self, acct: Account, event: object) -> None:
        if isinstance(event, Offer):
            self._offer(acct, event)
        elif isinstance(event, Overflow):
            session = acct.sessions.pop(event.call_id, None)
            if session is not None:
                session.signal(QueueOverflow(event.reason.value))
                session.gone = True
            self.changed(acct, event.queue_id, event.call_id, "overflow")
        elif isinstance(event, Announce):
            session = acct.sessions.get(event.call_id)
            if session is not None and not session.callback:
                prompts = announcement(
                    acct.defs.get(session.queue), session, event.position, event.estimated_wait
                )
                if prompts:
                    session.signal(QueueAnnounce(prompts))
        elif isinstance(event, QueueFact):
            self.outbox.remember(acct.account_id, event)
            if event.kind is FactKind.callback_requested:
                session = acct.sessions.get(event.call_id)
                if session is not None:
                    session.signal(QueueCallback(session.prompt("callback_confirmed")))
                    session.callback = True
                # Still in line, now as a callback: the live view must say so.
                self.changed(acct, event.queue_id, event.call_id, "callback")
        elif isinstance(event, StatusChanged):
            self.outbox.publish(
                AgentStatusChanged(
                    account_id=acct.account_id,
                    agent_id=event.agent_id,
                    old=event.old.value,
                    new=event.new.value,
                    reason=event.reason,
                    at=wall(event.at),
                )
            )
        elif isinstance(event, SupervisorAlert):
            self.outbox.publish(
                AgentAlerted(
                    account_id=acct.account_id,
                    agent_id=event.agent_id,
                    reason=event.reason,
                    no_answers=event.no_answers,
                    at=wall(event.at),
                )
            )
        elif isinstance(event, AgentProtocolError):
            log.warning("ACD agent %s: %s (%s)", event.agent_id, event.detail, event.input)
        else:
            self.outbox.remember(acct.account_id, event)  # status intervals

    def _offer(self, acct: Account, offer: Offer) -> None:
        session = acct.sessions.get(offer.call_id)
        d = acct.dispatcher
        if session is None:
            for agent_id in offer.agents:  # nobody to ring for: give the agents back
                self.feed(acct, agent_id, no_answer(offer.call_id))
            return
        definition = acct.defs.get(session.queue)
        timeout = definition.ring_timeout if definition else 15.0
        # The queue's announcement for the agent who answers ("a call from the Sales
        # queue"), in the caller's language; none without one or with its file missing.
        key = definition.agent_announce if definition is not None else None
        announce = session.prompt(key) if key else None
        reachable: list[RingTarget] = []
        for agent_id in offer.agents:
            contacts = session.targets(agent_id)
            if contacts:
                if announce is not None:  # heard by whoever answers (calls/accept.py)
                    contacts = tuple(replace(c, announce=announce) for c in contacts)
                reachable.extend(contacts)
            else:  # their phone went away since: unreachable, and try somebody else
                self.feed(acct, agent_id, DEVICES_UNREGISTERED)
                agent = d.agents.get(agent_id)
                if agent is not None and agent.status is AgentStatus.ringing:
                    self.feed(acct, agent_id, no_answer(offer.call_id))
        if not reachable:
            return
        acct.offer_seq += 1
        number = acct.offer_seq
        session.offers[number] = offer.agents
        self.changed(acct, session.queue, session.call_id, "offered")
        if session.callback:
            self._spawn(self._call_back(acct, session, number, tuple(reachable), timeout))
        else:
            session.signal(QueueOffer(number, tuple(reachable), timeout))

    async def _call_back(
        self,
        acct: Account,
        session: Session,
        offer: int,
        targets: tuple[RingTarget, ...],
        ring_for: float,
    ) -> None:
        """A callback's turn came: the agent first, then the customer."""
        if self.dial_callback is None or not session.caller:
            # Nobody can place it: drop it rather than ring agents for it forever.
            log.warning("queue callback %s cannot be placed", session.call_id)
            session.callback_misses = self.callback_tries - 1
            session.customer_missed(offer)  # the last try: frees the agents, drops it
            return
        outcome = CallbackOutcome.customer_missed
        talking = False

        def connected(agent_id: str | None) -> None:
            nonlocal talking
            if not talking and session.offers.get(offer):
                talking = True
                session.answered_by(offer, agent_id)  # on call now; the wait ends here

        try:
            outcome = await self.dial_callback(
                acct.account_id,
                session.call_id,
                targets,
                ring_for,
                session.caller,
                connected=connected,
            )
        except Exception:
            log.exception("queue callback %s failed", session.call_id)
        if talking:
            session.call_ended()  # whatever the dialer says now, they talked: wrap-up
        elif outcome is CallbackOutcome.talked and session.offers.get(offer):
            session.answered_by(offer, None)
            session.call_ended()
        elif outcome is CallbackOutcome.customer_missed:
            session.customer_missed(offer)
        else:
            session.not_answered(offer)

    def welcome(self, acct: Account, session: Session) -> None:
        """A caller just joined and nobody could take them at once: the announcement (and the
        callback offer) right away, not only after the first ``announce_interval``."""
        d = acct.dispatcher
        call_id = session.call_id
        if session.gone or call_id not in acct.sessions or d.offer_of(call_id):
            return
        try:
            position = d.position(call_id)
            wait = d.estimated_wait(call_id)
        except NotFound:
            return
        if position is None:
            return
        prompts = announcement(acct.defs.get(session.queue), session, position, wait)
        if prompts:
            session.signal(QueueAnnounce(prompts))

    def _arm(self, acct: Account) -> None:
        if acct.timer is not None:
            acct.timer.cancel()
            acct.timer = None
        if self._closed:
            return
        deadline = acct.dispatcher.next_deadline()
        if deadline is None:
            return
        delay = max(0.0, deadline - self.now())
        acct.timer = asyncio.get_running_loop().call_later(delay, self._tick, acct)

    def _tick(self, acct: Account) -> None:
        acct.timer = None
        try:
            acct.dispatcher.handle_timer(self.now())
            self.pump(acct)
        except Exception:
            log.exception("ACD timer failed")

    # -- feeds -----------------------------------------------------------------------------------

    def changed(self, acct: Account, queue: str, call_id: str, what: str) -> None:
        self.outbox.publish(
            QueueCallerChanged(
                account_id=acct.account_id,
                queue=queue,
                call_id=call_id,
                what=what,
                at=wall(self.now()),
            )
        )

    def _spawn(self, coro: Awaitable[object]) -> None:
        task: asyncio.Task[object] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
