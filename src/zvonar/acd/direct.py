"""Calls an agent takes outside the queues — a customer who dialled their number, a colleague,
a call they placed — feed the agent's state machine too (agents.py: "a direct call answered
on the agent's device makes them on call"), so a queue never offers a call to an agent in the
middle of another conversation, and their work-time shows the talk.

Kept from the neutral call events on the bus: ``CallAnswered`` whose ``by`` is an agent of an
account the ACD has loaded, and not the queue call the agent was offered (the queue session
feeds that one itself) → ``answered``; the end of that leg (``LegEnded``) or of its call
(``CallEnded``) → ``call_ended``, after which the runtime offers waiting callers again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from zvonar.acd.agents import TABLE, Input, Status, answered, call_ended
from zvonar.acd.runtime import AcdRuntime
from zvonar.calls.events import CallAnswered, CallEnded, LegEnded
from zvonar.core.bus import EventBus
from zvonar.core.events import Event

__all__ = ["DirectCalls"]


class DirectCalls:
    def __init__(self, runtime: AcdRuntime) -> None:
        self.runtime = runtime
        # (call, leg) → (account, agent) for the direct calls fed as "answered"
        self._legs: dict[tuple[str, str], tuple[uuid.UUID, str]] = {}
        self._calls: dict[str, set[tuple[str, str]]] = {}  # call → its keys above

    def attach(self, bus: EventBus) -> Callable[[], None]:
        async def on_event(event: Event) -> None:
            self.apply(event)

        offs = [bus.subscribe(kind, on_event) for kind in (CallAnswered, LegEnded, CallEnded)]

        def detach() -> None:
            for off in offs:
                off()

        return detach

    def apply(self, event: Event) -> None:
        if isinstance(event, CallAnswered):
            if event.by is not None:
                self._answered(event)
        elif isinstance(event, LegEnded):
            self._over((event.call_id, event.leg_id))
        elif isinstance(event, CallEnded):
            for key in list(self._calls.get(event.call_id, ())):
                self._over(key)

    def _answered(self, event: CallAnswered) -> None:
        acct = self.runtime.accounts.get(event.account_id)
        agent_id = str(event.by)
        agent = acct.dispatcher.agents.get(agent_id) if acct is not None else None
        if acct is None or agent is None:
            return
        if agent.call_id == event.call_id or (agent.status, Input.answered) not in TABLE:
            return  # the queue call it was offered (its session feeds it), talking, offline
        key = (event.call_id, event.leg_id)
        self._legs[key] = (event.account_id, agent_id)
        self._calls.setdefault(event.call_id, set()).add(key)
        self.runtime.feed(acct, agent_id, answered(event.call_id))

    def _over(self, key: tuple[str, str]) -> None:
        fed = self._legs.pop(key, None)
        if fed is None:
            return
        keys = self._calls.get(key[0])
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._calls[key[0]]
        account_id, agent_id = fed
        acct = self.runtime.accounts.get(account_id)
        agent = acct.dispatcher.agents.get(agent_id) if acct is not None else None
        if acct is None or agent is None:
            return
        if agent.status is Status.on_call and agent.call_id == key[0]:
            self.runtime.feed(acct, agent_id, call_ended(key[0]))
            self.runtime.pump(acct)  # free again: a waiting caller may be offered now
