"""Domain checks on directory fields that need more than a schema: each either returns the
normalized value or raises ``InvalidInput`` with a stable code. Pure, no I/O."""

from __future__ import annotations

import functools
import ipaddress
import re
import zoneinfo

import phonenumbers

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


# "+" and ASCII digits, at most E.164's fifteen.
_PREFIX = re.compile(r"^\+[0-9]{1,15}$")
# The longest country calling codes have three digits (ITU-T E.164), and none is the start of
# another, so at most one of a prefix's first one to three digits is one.
_CALLING_CODE_DIGITS = (1, 2, 3)


def prefixes(values: list[str], *, field: str = "prefixes") -> list[str]:
    """E.164 prefixes a trunk may dial ("+7", "+380", "+7383"), duplicates dropped, in order.
    Each must begin with a country calling code ``phonenumbers`` knows: a prefix no number
    has ("+3", "+999") would quietly leave the trunk dialling nothing."""
    known = phonenumbers.supported_calling_codes()
    out: list[str] = []
    for i, raw in enumerate(values):
        text = raw.strip()
        digits = text[1:]
        if not _PREFIX.match(text) or not any(
            int(digits[:n]) in known for n in _CALLING_CODE_DIGITS if len(digits) >= n
        ):
            raise InvalidInput(
                f"{raw!r} is not an E.164 prefix (+, a country calling code, digits)",
                code="invalid_prefix",
                field=f"{field}[{i}]",
            )
        if text not in out:
            out.append(text)
    return out
