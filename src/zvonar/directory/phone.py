"""Phone numbers and SIP digest credentials: pure helpers, no I/O.

Numbers are never hand-parsed (DESIGN.md): ``phonenumbers`` normalizes them to E.164, tells the
number type and the geography. National input is read with the account's country as the default
region, so "8 (495) 123-45-67" in a Russian account becomes ``+74951234567``.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
import string
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneNumberType, geocoder

from zvonar.core.errors import InvalidInput

# E.164 allows at most 15 digits; anything longer than this is not worth handing to the parser.
_MAX_INPUT = 40


class NumberKind(enum.StrEnum):
    local = "local"
    toll_free = "toll_free"
    mobile = "mobile"


@dataclass(frozen=True)
class PhoneInfo:
    """A validated number: E.164 form, what kind it is and where it rings."""

    e164: str
    kind: NumberKind
    country: str | None
    region: str | None


def _parse(raw: str, default_region: str | None, field: str) -> phonenumbers.PhoneNumber:
    text = raw.strip()
    if not text or len(text) > _MAX_INPUT:
        raise InvalidInput(
            f"{raw!r} is not a phone number", code="invalid_phone_number", field=field
        )
    try:
        number = phonenumbers.parse(text, (default_region or "").upper() or None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidInput(
            f"{raw!r} is not a phone number", code="invalid_phone_number", field=field
        ) from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidInput(
            f"{raw!r} is not a valid phone number", code="invalid_phone_number", field=field
        )
    return number


def normalize(raw: str, default_region: str | None, *, field: str = "number") -> str:
    """The E.164 form of ``raw``; ``InvalidInput(code="invalid_phone_number")`` if it is none."""
    number = _parse(raw, default_region, field)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_written(raw: str, region: str | None) -> str | None:
    """The E.164 form of a number as people write it, or None: read with ``region``'s plan
    first (``8 916…`` in Russia), then with ``00`` as the international prefix, which that plan
    may lack (Russia's is 8~10) but everybody writes (outbound/dialplan.py reads it alike)."""
    try:
        return normalize(raw, region)
    except InvalidInput:
        pass
    digits = phonenumbers.normalize_digits_only(raw)
    if not digits.startswith("00"):
        return None
    try:
        return normalize("+" + digits[2:], None)
    except InvalidInput:
        return None


def normalize_caller(raw: str, region: str | None) -> str | None:
    """The E.164 form of a number a carrier presents as the caller, or None: as written
    (:func:`normalize_written`), or else international without its ``+``, which carriers
    often drop (``380441234567``)."""
    found = normalize_written(raw, region)
    digits = raw.strip().removeprefix("+")
    if found is not None or not digits.isdigit() or digits.startswith("00"):
        return found
    try:
        return normalize("+" + digits, None)
    except InvalidInput:
        return None


def _kind(number_type: int) -> NumberKind:
    if number_type == PhoneNumberType.TOLL_FREE:
        return NumberKind.toll_free
    if number_type == PhoneNumberType.MOBILE:
        return NumberKind.mobile
    # Fixed line, "fixed line or mobile" (NANP cannot tell), VoIP, UAN…: a geographic-style DID.
    return NumberKind.local


def describe(raw: str, default_region: str | None, *, field: str = "number") -> PhoneInfo:
    """Normalize ``raw`` and derive its kind, ISO country and English place description."""
    number = _parse(raw, default_region, field)
    place = geocoder.description_for_number(number, "en") or None
    return PhoneInfo(
        e164=phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        kind=_kind(phonenumbers.number_type(number)),
        country=phonenumbers.region_code_for_number(number),
        region=place,
    )


# --- SIP digest credentials ---------------------------------------------------------------------


def sip_realm(slug: str) -> str:
    """The digest realm of an account's registrar: one per tenant, so HA1s never collide."""
    return f"{slug}.zvonar"


def ha1(username: str, realm: str, password: str, algorithm: str) -> str:
    """HA1 = H(username ":" realm ":" password), RFC 7616 §3.4.2 (MD5 and SHA-256 alike).

    Keeping only HA1 lets the registrar verify digest responses without the plain password.
    """
    data = f"{username}:{realm}:{password}".encode()
    if algorithm == "MD5":
        return hashlib.md5(data, usedforsecurity=False).hexdigest()
    if algorithm == "SHA-256":
        return hashlib.sha256(data).hexdigest()
    raise ValueError(f"unsupported digest algorithm {algorithm!r}")


# Letters and digits only: some desk phones mangle punctuation typed on their keypads.
_ALPHABET = string.ascii_letters + string.digits


def generate_password(length: int = 20) -> str:
    """A random SIP password (about 119 bits for the default length)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))
