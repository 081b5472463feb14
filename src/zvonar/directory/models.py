"""Tables of the directory slice: employees, groups and their members, numbers (DIDs), SIP trunks.

Every row carries ``account_id``; the service filters every query by it. Uniqueness that the API
promises ("extension taken", "number taken") is checked by the service for a friendly error and
backed by a constraint here for the race the check cannot see.
"""

from __future__ import annotations

import enum
import uuid

from sqlalchemy import JSON, Enum, ForeignKey, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from zvonar.directory.phone import NumberKind
from zvonar.store.base import Base, IdMixin, TimestampMixin


class GroupStrategy(enum.StrEnum):
    """How a group distributes a call among its members (DESIGN.md glossary)."""

    all_at_once = "all_at_once"
    in_turn = "in_turn"
    round_robin = "round_robin"
    least_recent = "least_recent"
    fewest_calls = "fewest_calls"
    random = "random"
    weighted_random = "weighted_random"


class Transport(enum.StrEnum):
    udp = "udp"
    tcp = "tcp"
    tls = "tls"


class TrunkAuth(enum.StrEnum):
    """``registration``: we REGISTER to the carrier with username/password; ``ip``: the carrier
    sends from known addresses and we accept by source IP."""

    registration = "registration"
    ip = "ip"


def _enum(cls: type[enum.Enum]) -> Enum:
    return Enum(cls, native_enum=False, length=24, validate_strings=True)


class Employee(IdMixin, TimestampMixin, Base):
    __tablename__ = "employees"
    __table_args__ = (
        UniqueConstraint("account_id", "extension"),
        UniqueConstraint("account_id", "sip_username"),
    )

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    # Case-folded copy of ``name``: SQLite's lower() only folds ASCII, so "q" searches for
    # Cyrillic names compare against this column on both backends. Folding can triple a
    # character ("ΐ"), hence the width.
    name_folded: Mapped[str] = mapped_column(String(600))
    extension: Mapped[str] = mapped_column(String(6))
    sip_username: Mapped[str] = mapped_column(String(64))
    # Digest HA1 values for realm ``sip_realm(account.slug)``; None until a password is set.
    ha1_md5: Mapped[str | None] = mapped_column(String(32))
    ha1_sha256: Mapped[str | None] = mapped_column(String(64))
    mobile_numbers: Mapped[list[str]] = mapped_column(JSON, default=list)
    ring_mobile: Mapped[bool] = mapped_column(default=False)
    # Their mobile takes a call only when they press 1 (calls/accept.py): their voicemail
    # never does.
    mobile_confirm: Mapped[bool] = mapped_column(default=False, server_default=false())
    # IANA zone; None means "the account's zone".
    time_zone: Mapped[str | None] = mapped_column(String(64))
    email: Mapped[str | None] = mapped_column(String(254))
    active: Mapped[bool] = mapped_column(default=True)
    # Do not disturb: no routing rings them (their phones, their mobiles, queue offers) until
    # they turn it off — from the phone (*79), as an agent status, or by an admin.
    dnd: Mapped[bool] = mapped_column(default=False, server_default=false())

    @property
    def has_sip_password(self) -> bool:
        return self.ha1_md5 is not None


class Group(IdMixin, TimestampMixin, Base):
    __tablename__ = "employee_groups"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    strategy: Mapped[GroupStrategy] = mapped_column(_enum(GroupStrategy))


class GroupMember(Base):
    """One employee in one group; ``position`` orders "in turn" ringing, ``weight`` biases
    "weighted random"."""

    __tablename__ = "employee_group_members"

    group_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("employee_groups.id", ondelete="CASCADE"), primary_key=True
    )
    employee_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("employees.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    position: Mapped[int]
    weight: Mapped[int] = mapped_column(default=1)


class Trunk(IdMixin, TimestampMixin, Base):
    __tablename__ = "sip_trunks"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    host: Mapped[str] = mapped_column(String(253))
    # None: located by DNS SRV (RFC 3263 §4.2), then A/AAAA at 5060.
    port: Mapped[int | None] = mapped_column(default=None)
    transport: Mapped[Transport] = mapped_column(_enum(Transport))
    auth_mode: Mapped[TrunkAuth] = mapped_column(_enum(TrunkAuth))
    username: Mapped[str | None] = mapped_column(String(128))
    # Sealed (directory/secrets.py): REGISTER and INVITE must answer the carrier's digest
    # challenge, which needs the password itself, so it cannot be hashed; the key is outside
    # the database. Write-only in the API and never exported.
    password: Mapped[str | None] = mapped_column(String(512))
    registrar: Mapped[str | None] = mapped_column(String(253))
    allowed_sources: Mapped[list[str]] = mapped_column(JSON, default=list)
    caller_id: Mapped[str | None] = mapped_column(String(16))
    # Calls through the trunk are offered SRTP only (RTP/SAVP with SDES keys, RFC 4568): for
    # carriers that require it. Only over TLS, which keeps the keys in the SDP private.
    srtp: Mapped[bool] = mapped_column(default=False, server_default=false())
    # The From user the carrier requires on our INVITEs (often its account login, as
    # Asterisk's fromuser); the caller ID then travels in P-Asserted-Identity. None: From
    # carries the caller ID itself.
    from_user: Mapped[str | None] = mapped_column(String(64), default=None)
    # Outbound routing (outbound/trunks.py): after the trunk that hosts the caller ID, the
    # trunk whose E.164 prefix ("+7", "+380") matches the callee longest (none: it dials any
    # number; some: only those), then the lowest priority; the rest follow on failure.
    prefixes: Mapped[list[str]] = mapped_column(JSON, default=list)
    priority: Mapped[int] = mapped_column(default=100, server_default="100")
    active: Mapped[bool] = mapped_column(default=True)

    @property
    def has_password(self) -> bool:
        return self.password is not None


class Number(IdMixin, TimestampMixin, Base):
    """A DID. ``e164`` is unique across all accounts: an inbound call to it must route to
    exactly one tenant."""

    __tablename__ = "phone_numbers"

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    e164: Mapped[str] = mapped_column(String(16), unique=True)
    kind: Mapped[NumberKind] = mapped_column(_enum(NumberKind))
    country: Mapped[str | None] = mapped_column(String(2))
    region: Mapped[str | None] = mapped_column(String(100))
    label: Mapped[str | None] = mapped_column(String(100))
    label_folded: Mapped[str | None] = mapped_column(String(300))
    trunk_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("sip_trunks.id", ondelete="RESTRICT"), index=True
    )
    active: Mapped[bool] = mapped_column(default=True)
