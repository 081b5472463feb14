"""Trunk selection for an outbound call. Pure: trunks come in as plain data.

Carriers usually let a trunk present only the numbers they host, so the trunk that carries the
chosen caller-ID number wins; then the trunk whose E.164 prefix matches the callee longest
(a cheap route to one country); then the lowest ``priority``. The rest follow in the same
order: an outbound call fails over to them when a carrier fails (pbx/outbound_resolver.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from zvonar.outbound.errors import NoTrunk


@dataclass(frozen=True)
class TrunkOption:
    """``prefixes``: E.164 prefixes ("+7", "+7383") the trunk may dial; empty means any.
    ``numbers``: the DIDs hosted on it."""

    id: uuid.UUID
    name: str
    active: bool = True
    priority: int = 100
    prefixes: tuple[str, ...] = ()
    numbers: frozenset[str] = field(default_factory=frozenset)
    default_caller_id: str | None = None


def prefix_match(prefixes: Sequence[str], callee: str) -> int:
    """Length of the longest of a trunk's ``prefixes`` that ``callee`` starts with; 0 for a
    catch-all trunk (no prefixes); -1 if it cannot dial ``callee``. The PBX's read model ranks
    the trunks of calls forwarded out with it too (pbx/snapshot.py ``trunk_for``)."""
    if not prefixes:
        return 0
    return max((len(p) for p in prefixes if callee.startswith(p)), default=-1)


def rank_key(hosts: bool, match: int, priority: int, name: str) -> tuple[bool, int, int, str]:
    """A trunk's place among those that may dial a number, smallest first: the one hosting
    the number the call shows (or was made to), the longest matching prefix, the lowest
    priority, the name. The one rule for employees' calls and forwarded ones."""
    return (not hosts, -match, priority, name)


def rank_trunks(
    callee_e164: str, trunks: Sequence[TrunkOption], *, caller_id: str | None = None
) -> list[TrunkOption]:
    """Every trunk that can place the call, best first (the order an outbound call fails
    over in when a carrier fails); :class:`NoTrunk` when none can."""
    usable = [(t, prefix_match(t.prefixes, callee_e164)) for t in trunks if t.active]
    usable = [(t, m) for t, m in usable if m >= 0]
    if not usable:
        raise NoTrunk(f"no active trunk can dial {callee_e164}")
    usable.sort(
        key=lambda tm: rank_key(
            caller_id is not None and caller_id in tm[0].numbers,
            tm[1],
            tm[0].priority,
            tm[0].name,
        )
    )
    return [t for t, _ in usable]


def select_trunk(
    callee_e164: str, trunks: Sequence[TrunkOption], *, caller_id: str | None = None
) -> TrunkOption:
    """The trunk to place the call on; :class:`NoTrunk` when none can."""
    return rank_trunks(callee_e164, trunks, caller_id=caller_id)[0]
