"""The schema of the directory section of an account's configuration (see ``config``).

Unknown keys are refused so a typo fails loudly instead of being silently ignored; a schema
error becomes ``InvalidInput(code="invalid_config")`` with the path of the first problem.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from zvonar.core.errors import InvalidInput
from zvonar.core.schemas import EmailText, Name, PhoneText, ShortName
from zvonar.directory.models import GroupStrategy, Transport, TrunkAuth
from zvonar.directory.schemas import (
    MAX_MEMBERS,
    MAX_MOBILES,
    MAX_PREFIXES,
    MAX_SOURCES,
    Extension,
    FromUser,
    HostText,
    NetText,
    Prefix,
    Secret,
    SipUsername,
    TrunkPassword,
    TrunkPriority,
    Weight,
    ZoneText,
)


class _Spec(BaseModel):
    # YAML reads an unquoted 101 as an int: accept numbers where text is expected.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, coerce_numbers_to_str=True)


class TrunkSpec(_Spec):
    host: HostText
    port: int | None = Field(default=None, ge=1, le=65535)  # None: DNS SRV (RFC 3263)
    transport: Transport = Transport.udp
    auth_mode: TrunkAuth = TrunkAuth.registration
    username: ShortName | None = None
    password: TrunkPassword | None = None
    registrar: HostText | None = None
    allowed_sources: list[NetText] = Field(default_factory=list, max_length=MAX_SOURCES)
    caller_id: PhoneText | None = None
    srtp: bool = False  # offer SRTP only (RFC 4568 SDES); transport tls
    from_user: FromUser | None = None  # the From user the carrier requires
    prefixes: list[Prefix] = Field(default_factory=list, max_length=MAX_PREFIXES)
    priority: TrunkPriority = 100  # lower first (outbound/trunks.py)
    active: bool = True


class EmployeeSpec(_Spec):
    name: Name
    sip_username: SipUsername | None = None
    sip_password: Secret | None = None
    mobile_numbers: list[PhoneText] = Field(default_factory=list, max_length=MAX_MOBILES)
    ring_mobile: bool = False
    mobile_confirm: bool = False
    time_zone: ZoneText | None = None
    email: EmailText | None = None
    active: bool = True


class MemberSpec(_Spec):
    extension: Extension
    weight: Weight = 1


class GroupSpec(_Spec):
    strategy: GroupStrategy = GroupStrategy.all_at_once
    members: list[MemberSpec | Extension] = Field(default_factory=list, max_length=MAX_MEMBERS)


class NumberSpec(_Spec):
    label: ShortName | None = None
    trunk: ShortName | None = None
    active: bool = True


class DirectorySection(_Spec):
    trunks: dict[ShortName, TrunkSpec] | None = None
    employees: dict[Extension, EmployeeSpec] | None = None
    groups: dict[ShortName, GroupSpec] | None = None
    numbers: dict[PhoneText, NumberSpec] | None = None


def loc_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_section(section: dict[str, Any]) -> DirectorySection:
    try:
        return DirectorySection.model_validate(section)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = loc_path(tuple(first["loc"])) or "(section)"
        errors = [{"path": loc_path(tuple(e["loc"])), "msg": e["msg"]} for e in exc.errors()]
        raise InvalidInput(
            f"{path}: {first['msg']}", code="invalid_config", path=path, errors=errors
        ) from exc
