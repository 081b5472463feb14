"""Directory events, published after commit. Routing caches and the registrar consume them.

Events carry ids and natural keys, never secrets: a password change shows up only as the field
name ``sip_password`` / ``password`` in ``changed``.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass

from zvonar.core.events import Event


class Action(enum.StrEnum):
    created = "created"
    updated = "updated"
    members = "members"
    deleted = "deleted"


@dataclass(frozen=True, kw_only=True)
class EmployeeEvent(Event):
    """Base of the employee events: subscribe to it for any change of an employee."""

    employee_id: uuid.UUID
    extension: str


@dataclass(frozen=True, kw_only=True)
class EmployeeCreated(EmployeeEvent):
    employee_name: str


@dataclass(frozen=True, kw_only=True)
class EmployeeUpdated(EmployeeEvent):
    changed: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class EmployeeDndChanged(EmployeeEvent):
    """Do not disturb turned on or off (from the phone, an agent status or an admin). Not
    in ``EmployeeUpdated.changed``: the queues follow it without reading the row back."""

    dnd: bool


@dataclass(frozen=True, kw_only=True)
class EmployeeDeleted(EmployeeEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class GroupChanged(Event):
    """A group was created, renamed/re-strategized, had its members replaced, or was deleted."""

    group_id: uuid.UUID
    group_name: str
    action: Action
    changed: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class NumberEvent(Event):
    """Base of the number (DID) events: subscribe to it for any change of a number."""

    number_id: uuid.UUID
    e164: str


@dataclass(frozen=True, kw_only=True)
class NumberAdded(NumberEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class NumberUpdated(NumberEvent):
    changed: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class NumberRemoved(NumberEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class TrunkChanged(Event):
    trunk_id: uuid.UUID
    trunk_name: str
    action: Action
    changed: tuple[str, ...] = ()
