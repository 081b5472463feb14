"""Feature codes dialed from our phones: what the resolver answers before any routing.

``*8<ext>`` — directed pickup: take the call that is ringing extension ``<ext>`` right now.
``*8`` alone — group pickup (Asterisk's convention): take the oldest call ringing anyone who
shares a group with the picker (the picker's own phones excluded: those they can answer).
calls/pickup.py carries both out.
``*78`` / ``*79`` — do not disturb on / off (FreePBX's codes; ``*76`` toggles, for one phone
key) for the employee whose phone dials it: every phone of theirs, their mobiles and their
queue offers stop ringing until they turn it off. The caller is answered and hears it
confirmed (``dnd_on`` / ``dnd_off`` in the account's language), then hung up; nothing is
journalled (no account on the answer).
``*9<ext>`` — intercom (3CX's code; FreePBX's ``*80`` would read as a pickup of ``0<ext>``):
the colleague's phones are rung asking them to answer at once on the speaker
(``RingTarget.auto_answer``); an internal call otherwise, journalled as one. The resolver
builds it (``intercom_extension`` tells the code apart).
``*11`` — call pull (BroadWorks' code): the employee's call moves to the device that dials it
(from the desk phone to the mobile's softphone), calls/pull.py carries it out.
``*51`` … ``*59`` — park slots: a call transferred to one waits there with hold music; dialled
from a phone, the call parked in it comes to that phone (calls/park.py does both).

Only a phone that passed the INVITE gate's digest (``CallerAuth.account_id`` and ``user``) may
dial a feature code, and only within its own account: the picked employee, the groups and the
picker are all looked up in the caller's account, so a call of another account can never be
found.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import Select, select

from zvonar.calls.events import Target, TargetKind
from zvonar.calls.park import Unpark, park_slot
from zvonar.calls.pickup import GroupPickup
from zvonar.calls.plan import InboundCall, Pickup, Reject
from zvonar.calls.pull import Pull
from zvonar.directory.models import Employee, Group, GroupMember
from zvonar.directory.service import DirectoryService
from zvonar.store.db import Database

__all__ = [
    "DND_OFF_CODE",
    "DND_ON_CODE",
    "DND_TOGGLE_CODE",
    "GROUP_PICKUP_CODE",
    "INTERCOM_CODE",
    "PICKUP_CODE",
    "PULL_CODE",
    "feature_call",
    "intercom_extension",
]

PICKUP_CODE = "*8"  # followed by the extension whose ringing call to take
GROUP_PICKUP_CODE = PICKUP_CODE  # alone: any call ringing a fellow group member
DND_ON_CODE = "*78"
DND_OFF_CODE = "*79"
DND_TOGGLE_CODE = "*76"  # one key on the phone for both: on when off, off when on
_DND: dict[str, bool | None] = {DND_ON_CODE: True, DND_OFF_CODE: False, DND_TOGGLE_CODE: None}
INTERCOM_CODE = "*9"  # followed by the extension to talk to over its speaker
PULL_CODE = "*11"


def intercom_extension(dialed: str) -> str | None:
    """The extension ``*9<ext>`` calls over intercom; None for any other number."""
    if not dialed.startswith(INTERCOM_CODE):
        return None
    extension = dialed[len(INTERCOM_CODE) :]
    return extension if extension.isdigit() else None


# The prompt ``key`` in the language of ``account`` (None: no such file).
Prompt = Callable[[uuid.UUID, str], Awaitable[Path | None]]


async def feature_call(
    db: Database, call: InboundCall, prompt: Prompt | None = None
) -> Pickup | Reject | None:
    """The feature ``call`` dials, or None when its number is no feature code. An INVITE
    whose Replaces names a ringing fork (``InboundCall.picks``, a BLF key) is a directed
    pickup of that fork's employee, whatever it dials; naming an answered leg of the phone's
    own employee (``pulls``), a pull."""
    dnd = call.picks is None and call.dialed in _DND
    pulls = call.picks is None and call.dialed == PULL_CODE
    slot = park_slot(call.dialed) if call.picks is None else None
    code = dnd or pulls or slot is not None or call.dialed.startswith(PICKUP_CODE)
    if call.picks is None and not code:
        return None
    auth = call.auth
    if auth is None or auth.account_id is None or not auth.user:
        return Reject(403, "Forbidden")  # trunks, strangers, transfers: no features
    if dnd:
        return await _set_dnd(db, auth.account_id, auth.user, _DND[call.dialed], prompt)
    if pulls:
        return await _pull(db, auth.account_id, auth.user)
    if slot is not None:
        return await _unpark(db, auth.account_id, auth.user, slot)
    if call.picks is not None and call.pulls is not None:
        return await _pull(db, auth.account_id, auth.user, only=(call.picks, call.pulls))
    if call.picks is not None:
        return await _pick_by_id(db, auth.account_id, auth.user, call.picks)
    extension = call.dialed[len(PICKUP_CODE) :]
    if not extension:
        return await _group_pickup(db, auth.account_id, auth.user)
    async with db.read() as s:
        people = list(
            await s.scalars(
                select(Employee).where(
                    Employee.account_id == auth.account_id,
                    Employee.active.is_(True),
                    (Employee.extension == extension) | (Employee.sip_username == auth.user),
                )
            )
        )
    picked = next((e for e in people if e.extension == extension), None)
    picker = next((e for e in people if e.sip_username == auth.user), None)
    if picker is None:
        return Reject(403, "Forbidden")
    if picked is None:
        return Reject(404, "Not Found")
    return Pickup(
        account_id=auth.account_id,
        employee_id=picked.id,
        picker=_target(picker),
    )


def _target(employee: Employee) -> Target:
    """The employee who picks up or pulls, as the journal names who answered."""
    return Target(TargetKind.employee, employee.name, employee.id)


def _picker(account_id: uuid.UUID, user: str) -> Select[Employee]:
    """The active employee of the account whose phone authenticated as ``user``."""
    return select(Employee).where(
        Employee.account_id == account_id,
        Employee.active.is_(True),
        Employee.sip_username == user,
    )


async def _pick_by_id(
    db: Database, account_id: uuid.UUID, user: str, picked: uuid.UUID
) -> Pickup | Reject:
    async with db.read() as s:
        picker = await s.scalar(_picker(account_id, user))
    if picker is None:
        return Reject(403, "Forbidden")
    return Pickup(
        account_id=account_id,
        employee_id=picked,
        picker=_target(picker),
    )


async def _unpark(db: Database, account_id: uuid.UUID, user: str, slot: int) -> Unpark | Reject:
    """``*5N``: the call parked in slot N comes to the phone's own employee."""
    async with db.read() as s:
        taker = await s.scalar(_picker(account_id, user))
    if taker is None:
        return Reject(403, "Forbidden")
    return Unpark(account_id=account_id, employee_id=taker.id, picker=_target(taker), slot=slot)


async def _group_pickup(db: Database, account_id: uuid.UUID, user: str) -> Pickup | Reject:
    async with db.read() as s:
        picker = await s.scalar(_picker(account_id, user))
        if picker is None:
            return Reject(403, "Forbidden")
        groups = (
            select(GroupMember.group_id)
            .join(Group, Group.id == GroupMember.group_id)
            .where(GroupMember.employee_id == picker.id, Group.account_id == account_id)
        )
        members = set(
            await s.scalars(
                select(GroupMember.employee_id)
                .join(Employee, Employee.id == GroupMember.employee_id)
                .where(
                    GroupMember.group_id.in_(groups),
                    Employee.account_id == account_id,
                    Employee.active.is_(True),
                    GroupMember.employee_id != picker.id,
                )
            )
        )
    if not members:
        return Reject(404, "Not Found")  # in no group, or alone in it: nothing to pick
    return GroupPickup(
        account_id=account_id,
        employee_id=picker.id,
        picker=_target(picker),
        members=frozenset(members),
    )


async def _set_dnd(
    db: Database, account_id: uuid.UUID, user: str, on: bool | None, prompt: Prompt | None
) -> Reject:
    """``*78`` / ``*79`` / ``*76``: the phone's own employee goes into (or out of, or the
    other way round) do not disturb."""
    on = await DirectoryService(db).set_dnd(account_id, on, sip_username=user)
    if on is None:
        return Reject(403, "Forbidden")  # a phone of no active employee
    said = await prompt(account_id, "dnd_on" if on else "dnd_off") if prompt else None
    # Answered with the confirmation when there is one; else a final answer the phone shows.
    return Reject(480, "Do Not Disturb On" if on else "Do Not Disturb Off", prompt=said)


async def _pull(
    db: Database,
    account_id: uuid.UUID,
    user: str,
    *,
    only: tuple[uuid.UUID, str] | None = None,
) -> Pull | Reject:
    """``*11``: the phone's own employee's answered call comes to this phone. ``only``: the
    employee and call whose answered leg an INVITE's Replaces names — a pull of that call
    when it is the phone's own employee, refused otherwise (nobody takes over a colleague's
    conversation, RFC 3891 §6)."""
    async with db.read() as s:
        puller = await s.scalar(_picker(account_id, user))
    if puller is None or (only is not None and only[0] != puller.id):
        return Reject(403, "Forbidden")
    me = _target(puller)
    named = only[1] if only is not None else None
    return Pull(account_id=account_id, employee_id=puller.id, picker=me, call_id=named)
