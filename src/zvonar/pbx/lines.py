"""What a watched extension looks like now, for the phones that watch it (pbx/blf.py keeps
their subscriptions): its dialogs for a BLF key (RFC 4235 dialog-info), or its presence for a
buddy list (RFC 3863 PIDF).

- **Dialogs:** each fork ringing the employee (an early dialog, direction recipient, with the
  caller: ``*8<ext>`` picks it up) and each leg they answered (confirmed); both name their
  SIP dialog (``B2bua.fork_ids``), which a phone copies into Replaces to pick the call up or
  to pull it to itself (calls/pull.py). A call they placed is one confirmed dialog without
  ids (their phone is its caller, no fork of ours).
- **Presence:** open while a phone of theirs is registered, ``on-the-phone`` while they talk,
  ``busy`` with a note while they are in do not disturb (read when asked: it comes and goes).
- **Park slots** (``*51`` … ``*59``, calls/park.py): a BLF key per slot is lit while a call
  waits there — one confirmed dialog with the parked caller — and dark once it is taken, rung
  back or over. Pressing the key dials the slot and takes the call. Which call is in a slot is
  read from the B2BUA when a watcher is told (``parked``), so a take that fails, and the call
  goes back to its slot, is shown right; the events only say when to look.

Who rings comes from the neutral call events (``CallRinging`` of a fork to an employee until
it is answered or ends), who talks from the Talking index (calls/talking.py). Only watched
employees are followed, and a call remembers them until it ends; ``touch`` tells the
subscriptions' side whose state may have changed.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from zvonar.calls.events import (
    CallAnswered,
    CallEnded,
    CallRinging,
    CallStarted,
    CallTransferred,
    Direction,
    LegEnded,
    TargetKind,
)
from zvonar.calls.park import park_slot, slot_code
from zvonar.calls.talking import Talking
from zvonar.core.events import Event
from zvonar.pbx.credentials import DirectoryCredentialStore, SipIdentity
from zvonar.sip.dialog_info import DialogDirection, DialogState, ExtensionDialog, dialog_info
from zvonar.sip.pidf import pidf
from zvonar.sip.ua import UserAgent

__all__ = ["Forks", "LineState", "Lines", "ParkSlot", "ParkedIn", "Presence", "Watched"]

_NUMBER = re.compile(r"\+?[0-9]{1,20}")

Forks = Callable[[str, str], tuple[str, str, str | None] | None]
"""A fork's SIP dialog (B2bua.fork_ids): (Call-ID, our tag, the phone's tag)."""

ParkedIn = Callable[[uuid.UUID, int], tuple[str, str] | None]
"""The call waiting in an account's park slot (B2bua.parked_in): (call id, its caller)."""


@dataclass(frozen=True, slots=True)
class ParkSlot:
    """A park slot of an account, as a BLF key watches it."""

    account_id: uuid.UUID
    slot: int

    @property
    def code(self) -> str:
        return slot_code(self.slot)


Watched = uuid.UUID | ParkSlot
"""What a subscription watches: an employee (by id), or a park slot."""


@dataclass(frozen=True, slots=True)
class Presence:
    reachable: bool  # a phone of theirs is registered
    busy: bool  # on a call
    dnd: bool = False  # in do not disturb


LineState = tuple[ExtensionDialog, ...] | Presence


class Lines:
    """See the module docstring. ``watched``: the employees someone watches (the
    subscriptions' index, read only)."""

    def __init__(
        self,
        ua: UserAgent,
        credentials: DirectoryCredentialStore,
        talking: Talking,
        watched: Mapping[Watched, object],
        touch: Callable[[Watched], None],
        forks: Forks | None = None,
        parked: ParkedIn | None = None,
    ) -> None:
        self.ua = ua
        self.credentials = credentials
        self.talking = talking
        self.forks = forks
        self.parked = parked
        self._watched = watched
        self._touch = touch
        # Forks ringing a watched employee: (call, leg) → employee, and back.
        self._ringing: dict[tuple[str, str], uuid.UUID] = {}
        self._ringing_of: dict[uuid.UUID, set[tuple[str, str]]] = {}
        self._calls: dict[str, set[uuid.UUID]] = {}  # call → the watched employees in it
        self._callers: dict[str, str] = {}  # call → its caller (what a ringing key shows)
        self._in_slot: dict[str, ParkSlot] = {}  # call → the slot it was last parked in

    # -- what a watcher is told ----------------------------------------------------------------

    def state(
        self, presence: bool, who: SipIdentity | ParkSlot, host: str, now: float
    ) -> LineState:
        """``who``'s presence, or their dialogs (a slot's: its parked call); ``host``: the
        domain the watcher named."""
        if isinstance(who, ParkSlot):
            return self._slot(who, host)
        if presence:
            reachable = bool(self.ua.lookup(who.aor, now)) if who.aor else False
            busy = self.talking.busy(who.account_id, who.employee_id, who.extension)
            # Read now, not from the subscription: do not disturb comes and goes meanwhile.
            now_who = self.credentials.by_extension(who.account_id, who.extension)
            dnd = now_who is not None and now_who.employee_id == who.employee_id and now_who.dnd
            return Presence(reachable, busy, dnd)
        return self._dialogs(who, host)

    @staticmethod
    def body(entity: str, version: int, state: LineState) -> bytes:
        """The NOTIFY body for ``state`` of ``entity`` (the address the watcher named)."""
        if isinstance(state, Presence):
            return pidf(entity, reachable=state.reachable, on_the_phone=state.busy, dnd=state.dnd)
        return dialog_info(entity, version, state)

    def _dialogs(self, who: SipIdentity, host: str) -> tuple[ExtensionDialog, ...]:
        dialogs: list[ExtensionDialog] = []
        if self.talking.busy(who.account_id, who.employee_id, who.extension):
            for call_id, leg_id in self.talking.answered_legs(who.employee_id):
                sip = self.forks(call_id, leg_id) if self.forks is not None else None
                if sip is not None:
                    dialogs.append(self._dialog(leg_id, DialogState.confirmed, call_id, host, sip))
            if not dialogs:  # a call they placed: their phone is its caller, no fork of ours
                dialogs.append(ExtensionDialog("talk", DialogState.confirmed))
        for call_id, leg_id in sorted(self._ringing_of.get(who.employee_id, ())):
            sip = self.forks(call_id, leg_id) if self.forks is not None else None
            dialogs.append(self._dialog(call_id, DialogState.early, call_id, host, sip))
        return tuple(dialogs)

    def _slot(self, slot: ParkSlot, host: str) -> tuple[ExtensionDialog, ...]:
        waiting = self.parked(slot.account_id, slot.slot) if self.parked is not None else None
        if waiting is None:
            return ()
        call_id, caller = waiting
        # No SIP dialog ids: the key takes the call by dialling the slot, not by Replaces.
        return (
            ExtensionDialog(
                call_id, DialogState.confirmed, DialogDirection.recipient, _address(caller, host)
            ),
        )

    def _dialog(
        self,
        dialog_id: str,
        state: DialogState,
        call_id: str,
        host: str,
        sip: tuple[str, str, str | None] | None,
    ) -> ExtensionDialog:
        """One of the employee's dialogs with the caller; ``sip``: its SIP dialog, from the
        watched phone's side (its tag local, ours remote)."""
        sip_call_id, ours, theirs = sip if sip is not None else (None, None, None)
        return ExtensionDialog(
            dialog_id,
            state,
            DialogDirection.recipient,
            _address(self._callers.get(call_id), host),
            call_id=sip_call_id,
            local_tag=theirs,
            remote_tag=ours,
        )

    # -- following the calls -------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        """A call event: who rings, who answered or placed it, which legs and calls ended.
        Only watched employees are followed; a call remembers them until it ends. A parked
        call is followed until it ends: whatever happens to it then (taken, rung back, over)
        may change its slot."""
        if self._in_slot or isinstance(event, CallTransferred):
            self._follow_slot(event)
        if not self._watched and not self._calls:
            return  # nobody watches, nothing to forget
        if isinstance(event, CallStarted):
            if self._watched:
                self._callers[event.call_id] = event.caller
                placer = event.placed_by
                if placer is None and event.direction is not Direction.inbound:
                    who = self.credentials.by_extension(event.account_id, event.caller)
                    placer = who.employee_id if who is not None else None
                if placer is not None:
                    self._involve(event.call_id, placer)
        elif isinstance(event, CallRinging):
            target = event.target
            employee = target.target_id if target.kind is TargetKind.employee else None
            if employee is not None and employee in self._watched:
                key = (event.call_id, event.leg_id)
                self._ringing[key] = employee
                self._ringing_of.setdefault(employee, set()).add(key)
                self._involve(event.call_id, employee)
        elif isinstance(event, CallAnswered):
            self._unring((event.call_id, event.leg_id))
            if event.by is not None:
                self._involve(event.call_id, event.by)
        elif isinstance(event, LegEnded):
            self._unring((event.call_id, event.leg_id))
            for employee in self._calls.get(event.call_id, ()):
                self._touch(employee)
        elif isinstance(event, CallEnded):
            for key in [k for k in self._ringing if k[0] == event.call_id]:
                self._unring(key)
            self._callers.pop(event.call_id, None)
            for employee in self._calls.pop(event.call_id, ()):
                self._touch(employee)

    def _follow_slot(self, event: Event) -> None:
        if isinstance(event, CallTransferred):
            slot = park_slot(event.to.display) if event.to.kind is TargetKind.park else None
            if slot is None:
                return
            # Followed even while nobody watches the slot: a key subscribing later is told
            # when the call leaves it. (Parks are rare; the call's end forgets it.)
            parked = ParkSlot(event.account_id, slot)
            self._in_slot[event.call_id] = parked
            self._touch(parked)
            return
        call_id = getattr(event, "call_id", None)
        key = self._in_slot.get(call_id) if call_id is not None else None
        if key is None:
            return
        if isinstance(event, CallEnded):
            del self._in_slot[event.call_id]
        self._touch(key)

    def _involve(self, call_id: str, employee: uuid.UUID) -> None:
        if employee in self._watched:
            self._calls.setdefault(call_id, set()).add(employee)
            self._touch(employee)

    def _unring(self, key: tuple[str, str]) -> None:
        employee = self._ringing.pop(key, None)
        if employee is None:
            return
        legs = self._ringing_of.get(employee)
        if legs is not None:
            legs.discard(key)
            if not legs:
                del self._ringing_of[employee]
        self._touch(employee)


def _address(caller: str | None, host: str) -> str | None:
    """A caller as a URI for ``<identity>``: an E.164 number as ``tel:``, an extension or a
    national number at our domain; anything else is not shown."""
    if not caller:
        return None
    if _NUMBER.fullmatch(caller):
        return f"tel:{caller}" if caller.startswith("+") else f"sip:{caller}@{host}"
    return None
