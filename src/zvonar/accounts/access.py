"""Who is calling and what their role lets them do."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass

from zvonar.accounts.models import Role, User
from zvonar.core.errors import PermissionDenied


class Perm(enum.StrEnum):
    directory_read = "directory.read"
    directory_write = "directory.write"
    users_manage = "users.manage"
    tokens_manage = "tokens.manage"
    config_manage = "config.manage"
    routing_read = "routing.read"
    routing_write = "routing.write"
    contacts_read = "contacts.read"
    contacts_write = "contacts.write"
    calls_read = "calls.read"
    recordings_listen = "recordings.listen"
    acd_read = "acd.read"


_GRANTS: dict[Role, frozenset[Perm]] = {
    Role.admin: frozenset(Perm),
    Role.supervisor: frozenset(
        {
            Perm.directory_read,
            Perm.routing_read,
            Perm.contacts_read,
            Perm.contacts_write,
            Perm.calls_read,
            Perm.recordings_listen,
            Perm.acd_read,
        }
    ),
    Role.operator: frozenset(
        {Perm.directory_read, Perm.contacts_read, Perm.contacts_write, Perm.calls_read}
    ),
    Role.marketer: frozenset(
        {Perm.directory_read, Perm.routing_read, Perm.contacts_read, Perm.calls_read}
    ),
}


@dataclass(frozen=True)
class Principal:
    """The authenticated caller. Every service call is scoped to ``account_id``."""

    account_id: uuid.UUID
    role: Role
    user_id: uuid.UUID | None = None
    token_id: uuid.UUID | None = None

    @classmethod
    def of_user(cls, user: User) -> Principal:
        """A signed-in user of the web UI (their session): their account and role."""
        return cls(account_id=user.account_id, role=user.role, user_id=user.id)

    def can(self, perm: Perm) -> bool:
        return perm in _GRANTS[self.role]

    def require(self, perm: Perm) -> None:
        if not self.can(perm):
            raise PermissionDenied(f"role {self.role.value!r} may not {perm.value}")
