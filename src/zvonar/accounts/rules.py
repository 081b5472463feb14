"""The account's own settings and what each may hold: one set of rules for every door
(``PATCH /api/v1/account`` and the ``account`` section of ``zvonar config``), and the same
checks ``account create`` makes, so no door can store a value that breaks the account later
(a calendar without a time zone, numbers without a country)."""

from __future__ import annotations

import re
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
import phonenumbers

from zvonar.core.errors import InvalidInput
from zvonar.core.schemas import PRINTABLE, is_email

ACCOUNT_LANGUAGES = ("en", "ru", "uk")  # those the prompts and the UI speak (i18n)


def is_account_name(name: str) -> bool:
    """1-200 printable characters, not all blank: the API, the CLI and ``config apply``."""
    return bool(name.strip()) and len(name) <= 200 and re.fullmatch(PRINTABLE, name) is not None


@cache
def _countries() -> frozenset[str]:
    """ISO 3166-1 alpha-2 codes an account can have: its country both reads its callers'
    national numbers (phonenumbers) and gives its calendars their public holidays."""
    return frozenset(phonenumbers.SUPPORTED_REGIONS) & frozenset(
        holidays.list_supported_countries()
    )


def account_country(country: str) -> str:
    # Checked before upper-casing: "ß".upper() is "SS".
    code = country.upper() if re.fullmatch(r"[A-Za-z]{2}", country) else ""
    if code not in _countries():
        raise InvalidInput(
            f"unknown country {country!r}: an ISO 3166-1 alpha-2 code such as RU",
            code="invalid_country",
            field="country",
        )
    return code


def check_time_zone(time_zone: str) -> None:
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"unknown time zone {time_zone!r}: an IANA name such as Europe/Moscow",
            code="invalid_time_zone",
            field="time_zone",
        ) from None


# What an admin may change, in the order config files list them.
ACCOUNT_FIELDS = (
    "name",
    "time_zone",
    "country",
    "language",
    "missed_call_emails",
    "recording_enabled",
    "recording_retention_days",
    "park_seconds",
    "park_ring_back_seconds",
    "http_route_private",
    "international_calls",
    "outbound_max_concurrent",
    "outbound_max_per_hour",
)
FLAGS = ("recording_enabled", "http_route_private", "international_calls")
# Whole numbers and their ranges.
COUNTS: dict[str, tuple[int, int]] = {
    "recording_retention_days": (1, 3650),
    "park_seconds": (10, 3600),
    "park_ring_back_seconds": (5, 300),
    "outbound_max_concurrent": (1, 1000),
    "outbound_max_per_hour": (1, 100_000),
}
MAX_EMAILS = 20


def check_account_values(
    values: dict[str, Any], *, code: str = "invalid_config", prefix: str = "account."
) -> None:
    """Refuse the first value that breaks a rule: ``InvalidInput(code)``, its message starting
    with ``prefix`` and the field's name (``details.field`` names it too)."""

    def refuse(field: str, why: str) -> InvalidInput:
        return InvalidInput(f"{prefix}{field}: {why}", code=code, field=field)

    unknown = sorted(set(values) - set(ACCOUNT_FIELDS))
    if unknown:
        raise refuse(unknown[0], f"not a setting; these are: {', '.join(ACCOUNT_FIELDS)}")
    if "time_zone" in values:
        try:
            check_time_zone(str(values["time_zone"]))
        except InvalidInput:
            raise refuse("time_zone", "unknown time zone") from None
    if "country" in values:
        country = values["country"]
        if not isinstance(country, str) or country != country.upper() or _bad_country(country):
            raise refuse("country", "an ISO 3166-1 alpha-2 code, upper case, such as RU")
    if "language" in values and values["language"] not in ACCOUNT_LANGUAGES:
        raise refuse("language", f"one of {', '.join(ACCOUNT_LANGUAGES)}")
    if "name" in values and not (
        isinstance(values["name"], str) and is_account_name(values["name"])
    ):
        raise refuse("name", "1-200 printable characters")
    if "missed_call_emails" in values:
        emails = values["missed_call_emails"]
        if (
            not isinstance(emails, list)
            or len(emails) > MAX_EMAILS
            or not all(isinstance(e, str) and is_email(e) for e in emails)
        ):
            raise refuse("missed_call_emails", f"a list of at most {MAX_EMAILS} emails")
    for flag in FLAGS:
        if flag in values and not isinstance(values[flag], bool):
            raise refuse(flag, "true or false")
    for field, (low, high) in COUNTS.items():
        if field not in values:
            continue
        value = values[field]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise refuse(field, f"{low} to {high}")


def _bad_country(country: str) -> bool:
    try:
        account_country(country)
    except InvalidInput:
        return True
    return False
