"""API shapes of the directory slice.

Built on :mod:`zvonar.core.schemas`: inputs forbid unknown fields so typos fail loudly. Schemas
check form (lengths, patterns, ranges: failures are ``validation_error``); the service checks
meaning (a real phone number, an IANA zone, a free extension), failing with the specific codes
listed in the router.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import BaseModel, Field

from zvonar.core.schemas import (
    PRINTABLE,
    EmailText,
    Name,
    Output,
    PatchInput,
    PhoneText,
    ShortName,
    StrictInput,
)
from zvonar.directory.models import Employee, GroupStrategy, Transport, TrunkAuth
from zvonar.directory.phone import NumberKind

Extension = Annotated[str, Field(pattern=r"^[0-9]{2,6}$", description="2–6 digits.")]
# RFC 3261 §25.1 allows more in a user part; this subset survives every phone's keypad and UI.
SipUsername = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")]
Secret = Annotated[str, Field(min_length=8, max_length=128, pattern=PRINTABLE)]
# The carrier chose it, not us: any non-empty printable text.
TrunkPassword = Annotated[str, Field(min_length=1, max_length=128, pattern=PRINTABLE)]
ZoneText = Annotated[str, Field(min_length=1, max_length=64, pattern=PRINTABLE)]
HostText = Annotated[str, Field(min_length=1, max_length=255, pattern=PRINTABLE)]
NetText = Annotated[str, Field(min_length=1, max_length=64, pattern=PRINTABLE)]
Weight = Annotated[int, Field(ge=1, le=100, description="Share for weighted_random.")]

MAX_MOBILES = 5
MAX_MEMBERS = 500
MAX_SOURCES = 50
SRTP_DESCRIPTION = (
    "Offer SRTP only (RTP/SAVP with SDES keys, RFC 4568) on calls through this trunk, for "
    "carriers that require it; needs transport tls, which keeps the keys private."
)
FROM_USER_DESCRIPTION = (
    "The From user the carrier requires on our calls (often its account login; Asterisk's "
    "fromuser). The caller ID then goes in P-Asserted-Identity. Null: From carries the caller ID."
)
# What a SIP From user we write may be (calls/signalling.py checks the same).
FromUser = Annotated[str, Field(pattern=r"^\+?[0-9A-Za-z._-]{1,64}$")]
# "+" and digits; that they begin with a country calling code is the writer's check.
Prefix = Annotated[str, Field(pattern=r"^\+[0-9]{1,15}$")]
TrunkPriority = Annotated[int, Field(ge=0, le=1000)]
MAX_PREFIXES = 50
PREFIXES_DESCRIPTION = (
    'E.164 prefixes ("+7", "+380", "+7383") of the numbers this trunk may dial, the longest '
    "match preferred; empty: any number."
)
PRIORITY_DESCRIPTION = (
    "Among trunks that can dial a number (after the one hosting the caller ID, and the "
    "longest prefix), the lowest goes first; the others follow when a carrier fails."
)
SOURCES_DESCRIPTION = (
    "IPs/CIDRs the carrier sends this trunk's calls from (its asserted caller is trusted, for "
    "this account's numbers only). Required for auth_mode=ip; for a registration trunk, the "
    "carrier's sending addresses other than its registrar."
)


# --- employees ----------------------------------------------------------------------------------


class EmployeeIn(StrictInput):
    name: Name
    extension: Extension
    sip_username: SipUsername | None = Field(default=None, description="Default: the extension.")
    sip_password: Secret | None = Field(
        default=None, description="Write-only. Omit to have one generated and shown once."
    )
    mobile_numbers: list[PhoneText] = Field(default_factory=list, max_length=MAX_MOBILES)
    ring_mobile: bool = False
    mobile_confirm: bool = Field(
        default=False, description="Their mobile takes a call only when they press 1."
    )
    time_zone: ZoneText | None = Field(default=None, description="IANA zone; null: the account's.")
    email: EmailText | None = None
    active: bool = True


class EmployeePatch(PatchInput):
    NOT_NULL = frozenset(
        {
            "name",
            "extension",
            "sip_username",
            "sip_password",
            "mobile_numbers",
            "ring_mobile",
            "mobile_confirm",
            "active",
            "dnd",
        }
    )

    name: Name | None = None
    extension: Extension | None = None
    sip_username: SipUsername | None = Field(
        default=None, description="Changing it needs a new sip_password (the HA1 covers it)."
    )
    sip_password: Secret | None = None
    mobile_numbers: list[PhoneText] | None = Field(default=None, max_length=MAX_MOBILES)
    ring_mobile: bool | None = None
    mobile_confirm: bool | None = None
    time_zone: ZoneText | None = None
    email: EmailText | None = None
    active: bool | None = None
    dnd: bool | None = Field(
        default=None, description="Do not disturb: no routing rings them while it is on."
    )


class EmployeeOut(Output):
    id: uuid.UUID
    name: str
    extension: str
    sip_username: str
    has_sip_password: bool
    mobile_numbers: list[str]
    ring_mobile: bool
    mobile_confirm: bool
    time_zone: str | None
    email: str | None
    active: bool
    dnd: bool
    group_ids: list[uuid.UUID]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, employee: Employee, group_ids: Sequence[uuid.UUID]) -> Self:
        data: dict[str, Any] = {
            name: getattr(employee, name) for name in cls.model_fields if name != "group_ids"
        }
        return cls.model_validate({**data, "group_ids": list(group_ids)})


class EmployeeCreatedOut(EmployeeOut):
    sip_password: str | None = Field(
        description="The generated SIP password, shown once; null when the request set one."
    )


class DndIn(StrictInput):
    dnd: bool = Field(description="Do not disturb: no routing rings them while it is on.")


class DndOut(BaseModel):
    employee_id: uuid.UUID
    dnd: bool


class SipPasswordOut(BaseModel):
    sip_username: str
    sip_password: str = Field(description="Shown once: it cannot be retrieved again.")


# --- groups -------------------------------------------------------------------------------------


class MemberIn(StrictInput):
    employee_id: uuid.UUID
    weight: Weight = 1


class MembersIn(StrictInput):
    members: list[MemberIn] = Field(max_length=MAX_MEMBERS, description="In ringing order.")


class GroupIn(StrictInput):
    name: ShortName
    strategy: GroupStrategy = GroupStrategy.all_at_once
    members: list[MemberIn] = Field(default_factory=list, max_length=MAX_MEMBERS)


class GroupPatch(PatchInput):
    NOT_NULL = frozenset({"name", "strategy"})

    name: ShortName | None = None
    strategy: GroupStrategy | None = None


class MemberOut(Output):
    employee_id: uuid.UUID
    extension: str
    name: str
    position: int = Field(description="1-based ringing order.")
    weight: int


class GroupOut(Output):
    id: uuid.UUID
    name: str
    strategy: GroupStrategy
    members: list[MemberOut]
    created_at: datetime
    updated_at: datetime


# --- numbers ------------------------------------------------------------------------------------


class NumberIn(StrictInput):
    number: PhoneText
    label: ShortName | None = Field(default=None, description='A topic, e.g. "Resorts".')
    trunk_id: uuid.UUID | None = None
    active: bool = True


class NumberPatch(PatchInput):
    NOT_NULL = frozenset({"active"})

    label: ShortName | None = None
    trunk_id: uuid.UUID | None = None
    active: bool | None = None


class NumberOut(Output):
    id: uuid.UUID
    e164: str
    kind: NumberKind
    country: str | None = Field(description="ISO 3166-1 alpha-2.")
    region: str | None = Field(description='Place in English, e.g. "Moscow".')
    label: str | None
    trunk_id: uuid.UUID | None
    active: bool
    created_at: datetime
    updated_at: datetime


# --- trunks -------------------------------------------------------------------------------------


class TrunkIn(StrictInput):
    name: ShortName
    host: HostText
    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="None: the carrier is located by DNS SRV (_sip._udp.<host>…, RFC 3263), "
        "then the host's address at 5060.",
    )
    transport: Transport = Transport.udp
    auth_mode: TrunkAuth = TrunkAuth.registration
    username: ShortName | None = None
    password: TrunkPassword | None = Field(default=None, description="Write-only: never returned.")
    registrar: HostText | None = None
    allowed_sources: list[NetText] = Field(
        default_factory=list,
        max_length=MAX_SOURCES,
        description=SOURCES_DESCRIPTION,
    )
    caller_id: PhoneText | None = Field(default=None, description="Default outbound caller ID.")
    srtp: bool = Field(default=False, description=SRTP_DESCRIPTION)
    from_user: FromUser | None = Field(default=None, description=FROM_USER_DESCRIPTION)
    prefixes: list[Prefix] = Field(
        default_factory=list, max_length=MAX_PREFIXES, description=PREFIXES_DESCRIPTION
    )
    priority: TrunkPriority = Field(default=100, description=PRIORITY_DESCRIPTION)
    active: bool = True


class TrunkPatch(PatchInput):
    NOT_NULL = frozenset(
        {
            "name",
            "host",
            "transport",
            "auth_mode",
            "allowed_sources",
            "srtp",
            "prefixes",
            "priority",
            "active",
        }
    )

    name: ShortName | None = None
    host: HostText | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    transport: Transport | None = None
    auth_mode: TrunkAuth | None = None
    username: ShortName | None = None
    password: TrunkPassword | None = None
    registrar: HostText | None = None
    allowed_sources: list[NetText] | None = Field(
        default=None, max_length=MAX_SOURCES, description=SOURCES_DESCRIPTION
    )
    caller_id: PhoneText | None = None
    srtp: bool | None = Field(default=None, description=SRTP_DESCRIPTION)
    from_user: FromUser | None = Field(default=None, description=FROM_USER_DESCRIPTION)
    prefixes: list[Prefix] | None = Field(
        default=None, max_length=MAX_PREFIXES, description=PREFIXES_DESCRIPTION
    )
    priority: TrunkPriority | None = Field(default=None, description=PRIORITY_DESCRIPTION)
    active: bool | None = None


class TrunkOut(Output):
    id: uuid.UUID
    name: str
    host: str
    port: int | None
    transport: Transport
    auth_mode: TrunkAuth
    username: str | None
    has_password: bool
    registrar: str | None
    allowed_sources: list[str]
    caller_id: str | None
    srtp: bool
    from_user: str | None
    prefixes: list[str]
    priority: int
    active: bool
    created_at: datetime
    updated_at: datetime
