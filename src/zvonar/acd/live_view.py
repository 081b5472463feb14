"""A supervisor's snapshot of an account's queues: who waits (position, wait, priority, an
offer ringing, a callback) and each member's status, built from the dispatcher as it is now.
The live stream (acd/live.py) carries the changes that follow it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from zvonar.acd.session import Account

__all__ = ["QueueView", "queue_views", "wall"]


def wall(t: float) -> datetime:
    """Epoch seconds (the ACD's clock) as an aware UTC datetime."""
    return datetime.fromtimestamp(t, UTC)


@dataclass(frozen=True)
class QueueView:
    """A supervisor's live view of one queue."""

    name: str
    waiting: tuple[dict[str, object], ...]
    agents: tuple[dict[str, object], ...]


def queue_views(acct: Account, now: float) -> list[QueueView]:
    """Every queue of ``acct``, by name."""
    d = acct.dispatcher
    out: list[QueueView] = []
    ext_of = {v: k for k, v in acct.agent_ids.items()}
    for name, q in sorted(d.queues.items()):
        waiting: list[dict[str, object]] = []
        for call_id, session in acct.sessions.items():
            if session.queue != name or call_id not in q:
                continue
            c = q.caller(call_id)
            waiting.append(
                {
                    "call_id": call_id,
                    "caller": session.caller,
                    "position": q.position(call_id),
                    "waited": round(now - c.entered_at, 1),
                    "priority": c.priority,
                    "offered": bool(d.offer_of(call_id)),
                    "callback": c.is_callback,
                }
            )
        waiting.sort(key=lambda w: int(w["position"] or 0))  # type: ignore[call-overload]
        definition = acct.defs.get(name)
        agents: list[dict[str, object]] = []
        for member in definition.members if definition else ():
            agent_id = acct.agent_ids.get(member.extension)
            agent = d.agents.get(agent_id) if agent_id else None
            if agent is None:
                continue
            agents.append(
                {
                    "agent_id": agent.id,
                    "extension": ext_of.get(agent.id),
                    "status": agent.status.value,
                    "reason": agent.reason,
                    "since": wall(agent.since),
                    "call_id": agent.call_id,
                    "level": member.level,
                }
            )
        out.append(QueueView(name, tuple(waiting), tuple(agents)))
    return out
