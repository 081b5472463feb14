"""Calls an agent takes outside the queues — a customer who dialled their number, a colleague,
a call they placed — feed the agent's state machine too (agents.py: "a direct call answered
on the agent's device makes them on call"), so a queue never offers a call to an agent in the
middle of another conversation, and their work-time shows the talk.

It follows who talks from ``calls/talking.py`` (one index of answered legs, kept from the
call events): a leg answered by an agent of an account the ACD has loaded, and not the queue
call the agent was offered (the queue session feeds that one itself) → ``answered``; its end
→ ``call_ended``, after which the runtime offers waiting callers again.
"""

from __future__ import annotations

import uuid

from zvonar.acd.agents import TABLE, Input, Status, answered, call_ended
from zvonar.acd.runtime import AcdRuntime
from zvonar.calls.talking import Talk, Talking

__all__ = ["DirectCalls"]


class DirectCalls:
    def __init__(self, runtime: AcdRuntime, talking: Talking) -> None:
        self.runtime = runtime
        self._fed: set[tuple[uuid.UUID, str, str]] = set()  # (account, agent, call) fed
        talking.watch(self.apply)

    def apply(self, talk: Talk) -> None:
        acct = self.runtime.accounts.get(talk.account_id)
        agent_id = str(talk.employee_id)
        agent = acct.dispatcher.agents.get(agent_id) if acct is not None else None
        if acct is None or agent is None:
            return
        key = (talk.account_id, agent_id, talk.call_id)
        if not talk.over:
            if agent.call_id == talk.call_id or (agent.status, Input.answered) not in TABLE:
                return  # the queue call it was offered (its session feeds it), talking, offline
            self._fed.add(key)
            self.runtime.feed(acct, agent_id, answered(talk.call_id))
        elif key in self._fed:
            self._fed.discard(key)
            if agent.status is Status.on_call and agent.call_id == talk.call_id:
                self.runtime.feed(acct, agent_id, call_ended(talk.call_id))
                self.runtime.pump(acct)  # free again: a waiting caller may be offered now
