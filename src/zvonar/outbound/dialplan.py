"""The dial plan: what an extension dialed → an internal extension, an emergency service or an
E.164 number. Pure: no I/O, no clock.

National and international prefixes are the account country's (RU: trunk prefix 8, IDD 810;
UA: trunk prefix 0, IDD 00); ``phonenumbers`` knows them per region, so nothing is hand-parsed
beyond stripping the visual separators people type, and a leading ``00`` that the account's
plan cannot place (``INTERNATIONAL_00``: accepted everywhere).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Container
from dataclasses import dataclass

import phonenumbers

from zvonar.outbound.errors import InvalidDialString

# Emergency short codes per ISO country. 112 works everywhere in Europe and on every GSM phone.
EMERGENCY: dict[str, frozenset[str]] = {
    "RU": frozenset({"112", "101", "102", "103", "104"}),
    "UA": frozenset({"112", "101", "102", "103", "104"}),
    "KZ": frozenset({"112", "101", "102", "103", "104"}),
    "BY": frozenset({"112", "101", "102", "103", "104"}),
    "US": frozenset({"911", "112"}),
    "CA": frozenset({"911", "112"}),
}
_DEFAULT_EMERGENCY = frozenset({"112"})
# Never an extension, whatever the directory holds: the one code every phone user knows.
_ALWAYS_EMERGENCY = frozenset({"112", "911"})

# Extensions are 2–6 digits (directory schema); anything that short is internal.
_MAX_EXTENSION = 6
_SEPARATORS = re.compile(r"[\s\-().]")
_DIALABLE = re.compile(r"^\+?[0-9]{2,20}$")
# The international prefix of most of the world, and the one people bring from their mobiles:
# dialled where the plan has another (RU, KZ, BY: 8~10; the NANP: 011) it is still meant as
# one, and the toll-fraud guard judges the number it leads to as any other.
INTERNATIONAL_00 = "00"


class DialKind(enum.StrEnum):
    internal = "internal"
    emergency = "emergency"
    external = "external"


@dataclass(frozen=True)
class DialTarget:
    """``value`` is the extension, the emergency code, or the E.164 number; ``country`` is the
    ISO region of an external number (None for the others)."""

    kind: DialKind
    value: str
    country: str | None = None


# Dialled before a number, they withhold the caller's own for that call (CLIR): ``*67`` as on
# most PBXes, ``#31#`` as on every GSM phone (a phone may send its ``#`` escaped, RFC 3261 §19.1.2).
WITHHOLD_PREFIXES = ("*67", "#31#", "%2331%23")


def withheld(dialed: str) -> tuple[str, bool]:
    """``dialed`` without a withhold prefix, and whether it had one."""
    for prefix in WITHHOLD_PREFIXES:
        if dialed.startswith(prefix) and len(dialed) > len(prefix):
            return dialed[len(prefix) :], True
    return dialed, False


def emergency_codes(country: str) -> frozenset[str]:
    return EMERGENCY.get(country.upper(), _DEFAULT_EMERGENCY)


def normalize_dialed(
    dialed: str, account_country: str, *, extensions: Container[str] = frozenset()
) -> DialTarget:
    """Classify and normalize ``dialed``.

    Order matters. 112/911 are emergency, always. Other emergency codes (RU 101–104) collide with
    common extension numbers, so an *existing* extension of the account wins for them (the
    admin chose it; calling a colleague must not dispatch the fire brigade); otherwise they are
    emergency. Remaining short strings are internal; longer ones must be valid numbers.
    """
    text = _SEPARATORS.sub("", dialed)
    if not _DIALABLE.match(text):
        raise InvalidDialString(f"{dialed!r} cannot be dialed", field="dialed")
    if text in _ALWAYS_EMERGENCY:
        return DialTarget(DialKind.emergency, text)
    if text in extensions:
        return DialTarget(DialKind.internal, text)
    if text in emergency_codes(account_country):
        return DialTarget(DialKind.emergency, text)
    if not text.startswith("+") and len(text) <= _MAX_EXTENSION:
        return DialTarget(DialKind.internal, text)
    return _external(text, dialed, account_country)


def _valid(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_valid_number(number) else None


def _external(text: str, dialed: str, account_country: str) -> DialTarget:
    # With the account's region phonenumbers strips its trunk prefix (RU 8, UA 0) and its
    # international prefix (RU 810, UA 00).
    number = _valid(text, account_country.upper())
    if number is None and text.startswith(INTERNATIONAL_00):
        # Only what the account's own plan cannot place: where 00 means something there
        # (Australia's 0011 is its international prefix) that meaning stands.
        number = _valid("+" + text.removeprefix(INTERNATIONAL_00), None)
    if number is None:
        raise InvalidDialString(f"{dialed!r} is not a valid phone number", field="dialed")
    return DialTarget(
        DialKind.external,
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        phonenumbers.region_code_for_number(number),
    )
