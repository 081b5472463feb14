"""Domain checks on directory fields that need more than a schema: each either returns the
normalized value or raises ``InvalidInput`` with a stable code. Pure, no I/O."""

from __future__ import annotations

import functools
import ipaddress
import re
import zoneinfo

from zvonar.core.errors import InvalidInput
from zvonar.core.schemas import is_email

# Files in the system zone directory that are not zones a user may pick.
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})
# RFC 1123 §2.1 host names: dot-separated labels of letters, digits and inner hyphens.
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) - _NOT_ZONES


def time_zone(value: str, *, field: str = "time_zone") -> str:
    if value not in _zones():
        raise InvalidInput(
            f"{value!r} is not an IANA time zone", code="invalid_time_zone", field=field
        )
    return value


def email(value: str, *, field: str = "email") -> str:
    value = value.strip().lower()
    # Lower-casing can lengthen text ("İ" → "i̇"): re-check against the column's 254.
    if len(value) > 254 or not is_email(value):
        raise InvalidInput("not an email address", code="invalid_email", field=field)
    return value


def host(value: str, *, field: str = "host") -> str:
    """A DNS name or an IP literal (IPv6 with or without brackets), lower-cased."""
    text = value.strip().lower()
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        pass
    name = text.removesuffix(".")
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise InvalidInput(
            f"{value!r} is not a host name or IP address", code="invalid_host", field=field
        )
    return name


def networks(values: list[str], *, field: str = "allowed_sources") -> list[str]:
    """IP addresses or CIDR blocks, normalized ("10.0.0.1" → "10.0.0.1/32"), duplicates dropped.

    Host bits set in a block ("10.0.0.1/24") are refused rather than silently widened or
    narrowed: an allow-list must mean exactly what the admin typed.
    """
    out: list[str] = []
    for i, raw in enumerate(values):
        try:
            net = ipaddress.ip_network(raw.strip(), strict=True)
        except ValueError as exc:
            raise InvalidInput(
                f"{raw!r} is not an IP address or network",
                code="invalid_ip_network",
                field=f"{field}[{i}]",
            ) from exc
        text = str(net)
        if text not in out:
            out.append(text)
    return out
