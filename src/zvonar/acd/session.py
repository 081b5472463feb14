"""One caller's wait in one queue (``calls.plan.QueueSession``) and one account's live ACD
state, as the runtime (``acd.runtime``) keeps them.

The call actor tells its :class:`Session` what happens on the line (an offer rang, an agent
answered, a digit, the caller left, the call ended); the session feeds the account's
dispatcher and asks the runtime to pump its decisions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from zvonar.acd.agents import Status as AgentStatus
from zvonar.acd.agents import answered, call_ended, no_answer
from zvonar.acd.definitions import QueueDef
from zvonar.acd.dispatcher import Dispatcher
from zvonar.acd.queue import QueueError
from zvonar.calls.events import Target
from zvonar.calls.plan import QueueSignal, RingTarget
from zvonar.core.errors import NotFound
from zvonar.media.engine import PromptNotFoundError
from zvonar.media.prompts import prompt_path

if TYPE_CHECKING:
    from zvonar.acd.runtime import AcdRuntime

__all__ = ["Account", "Session"]

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Session:
    """One caller's wait (``calls.plan.QueueSession``)."""

    runtime: AcdRuntime
    account: Account
    queue: str
    call_id: str
    priority: int
    caller: str
    language: str
    prompts_dir: Path | None
    targets: Callable[[str], tuple[RingTarget, ...]]
    notify: Callable[[QueueSignal], None] | None = None
    offers: dict[int, tuple[str, ...]] = field(default_factory=dict)
    connected_agent: str | None = None
    gone: bool = False  # left, overflowed, or answered and over
    callback: bool = False  # the caller hung up and waits for us to call back
    callback_misses: int = 0
    # A supervisor's intercept of a ringing offer, run once the call stopped ringing it.
    take_over: Callable[[], None] | None = None

    async def enter(self, notify: Callable[[QueueSignal], None]) -> bool:
        self.notify = notify
        acct, now = self.account, self.runtime.now()
        self._sync_members()
        try:
            joined = acct.dispatcher.enter(self.queue, self.call_id, now, self.priority)
        except (QueueError, NotFound) as exc:
            log.warning("call %s: cannot queue: %s", self.call_id, exc)
            return False
        if joined:
            acct.sessions[self.call_id] = self
            self.runtime.changed(acct, self.queue, self.call_id, "joined")
        self.runtime.pump(acct)
        if joined:
            self.runtime.welcome(acct, self)
        return joined

    def _sync_members(self) -> None:
        """Make sure the queue's agents exist and their registration is current."""
        acct = self.account
        definition = acct.defs.get(self.queue)
        if definition is None:
            return
        for member in definition.members:
            agent_id = acct.agent_ids.get(member.extension)
            if agent_id is not None:
                self.runtime.ensure_agent(acct, agent_id, bool(self.targets(agent_id)))

    def ringing(self, offer: int, target: Target) -> None:
        pass  # the agent is reserved ("ringing") from the moment of the offer

    def answered(self, offer: int, target: Target) -> None:
        self.answered_by(offer, str(target.target_id) if target.target_id else None)

    def answered_by(self, offer: int, agent_id: str | None) -> None:
        agents = self.offers.pop(offer, ())
        if agent_id not in agents:
            agent_id = agents[0] if agents else None
        if agent_id is None:
            return
        self.connected_agent = agent_id
        acct = self.account
        self.runtime.feed(acct, agent_id, answered(self.call_id))
        self.runtime.changed(acct, self.queue, self.call_id, "answered")
        self.runtime.pump(acct)

    def not_answered(self, offer: int) -> None:
        agents = self.offers.pop(offer, ())
        acct = self.account
        for agent_id in agents:
            agent = acct.dispatcher.agents.get(agent_id)
            if agent is not None and agent.status is AgentStatus.ringing:
                self.runtime.feed(acct, agent_id, no_answer(self.call_id))
        self.runtime.pump(acct)

    def withdrawn(self, offer: int) -> None:
        self.offers.pop(offer, None)
        acct, then = self.account, self.take_over
        self.take_over = None
        if self.call_id in acct.sessions:
            # The agents were not at fault: they go back to what they were doing, no miss.
            acct.dispatcher.withdraw(self.call_id, self.runtime.now())
            if then is not None:
                try:
                    then()
                except (QueueError, NotFound) as exc:  # the taker went away meanwhile
                    log.info("call %s: intercept lapsed: %s", self.call_id, exc)
        self.runtime.pump(acct)

    def digit(self, digit: str) -> None:
        acct = self.account
        if self.call_id not in acct.sessions:
            return
        try:
            acct.dispatcher.digit(self.call_id, digit, self.runtime.now())
        except (QueueError, NotFound) as exc:
            log.info("call %s: digit %s ignored: %s", self.call_id, digit, exc)
        self.runtime.pump(acct)

    def left(self) -> None:
        acct = self.account
        if self.gone or self.callback:
            return
        self.gone = True
        acct.sessions.pop(self.call_id, None)
        with contextlib.suppress(NotFound):  # already out (overflowed)
            acct.dispatcher.abandon(self.call_id, self.runtime.now())
        self.runtime.changed(acct, self.queue, self.call_id, "abandoned")
        self.runtime.pump(acct)

    def customer_missed(self, offer: int) -> None:
        """A callback's agent answered but the customer did not: the agent is free again
        (not a no-answer of theirs) and the customer is tried again after the retry delay,
        in the same place; after the last try the callback is dropped."""
        agents = self.offers.pop(offer, ())
        acct, runtime = self.account, self.runtime
        self.callback_misses += 1
        last = self.callback_misses >= runtime.callback_tries
        if not last and self.call_id in acct.sessions:
            with contextlib.suppress(NotFound):
                acct.dispatcher.retry_later(
                    self.call_id, runtime.now() + runtime.callback_retry_delay
                )
                runtime.changed(acct, self.queue, self.call_id, "callback_retry")
        for agent_id in agents:
            agent = acct.dispatcher.agents.get(agent_id)
            if agent is not None and agent.status is AgentStatus.ringing:
                runtime.feed(acct, agent_id, call_ended(self.call_id))
        if last:
            self.drop()
        runtime.pump(acct)

    def drop(self) -> None:
        """Give up a callback: it leaves the queue as abandoned (with its wait)."""
        acct = self.account
        self.gone = True
        acct.sessions.pop(self.call_id, None)
        with contextlib.suppress(NotFound):
            acct.dispatcher.abandon(self.call_id, self.runtime.now())
        self.runtime.changed(acct, self.queue, self.call_id, "abandoned")

    def call_ended(self) -> None:
        acct = self.account
        self.gone = True
        acct.sessions.pop(self.call_id, None)
        if self.connected_agent is not None:
            self.runtime.feed(acct, self.connected_agent, call_ended(self.call_id))
        self.runtime.pump(acct)

    def signal(self, sig: QueueSignal) -> None:
        if self.notify is not None and not self.gone:
            self.notify(sig)

    def prompt(self, key: str) -> Path | None:
        try:
            return prompt_path(key, self.language, base_dir=self.prompts_dir)
        except PromptNotFoundError:
            return None


@dataclass(eq=False)
class Account:
    account_id: uuid.UUID
    dispatcher: Dispatcher
    defs: Mapping[str, QueueDef] = field(default_factory=dict)
    agent_ids: Mapping[str, str] = field(default_factory=dict)  # extension → employee id
    dnd: frozenset[str] = frozenset()  # employee ids in do not disturb, as last loaded
    sessions: dict[str, Session] = field(default_factory=dict)
    #: agent id → their registered phones, as the latest queued call looked them up.
    targets: Callable[[str], tuple[RingTarget, ...]] | None = None
    stale: bool = True
    timer: asyncio.TimerHandle | None = None
    offer_seq: int = 0
    pumping: bool = False
