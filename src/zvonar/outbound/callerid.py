"""Caller-ID selection: show the callee a number of ours from their own region, so a client in
Novosibirsk sees a +7383… number and calls back at local rates. Pure: all inputs are plain data.

Rules run in the account's order; the first that yields one of our active numbers wins, and the
trunk's default caller ID is the last resort. No rule ever yields a number the callee cannot
call back as an ordinary call (:func:`presentable`): a trunk's default that is one stays the
admin's explicit choice.
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneNumberType, geocoder

from zvonar.outbound.places import place_names, same_place


class CallerIdRule(enum.StrEnum):
    # The callee's area code (or geocoded place) matches one of our numbers.
    callee_region = "callee_region"
    # The number the client called us on last time: they already know it.
    last_called = "last_called"
    # The contact card's city matches the place of one of our numbers.
    contact_city = "contact_city"


DEFAULT_RULES: tuple[CallerIdRule, ...] = (
    CallerIdRule.callee_region,
    CallerIdRule.last_called,
    CallerIdRule.contact_city,
)


@dataclass(frozen=True)
class OwnNumber:
    """One of the account's DIDs, as the directory knows it."""

    e164: str
    active: bool = True


@dataclass(frozen=True)
class CallerIdChoice:
    """``rule`` is None when the trunk default was used."""

    e164: str | None
    rule: CallerIdRule | None


# Non-geographic numbers that take calls in only or bill the one who calls them: a toll-free
# 8-800 line cannot be called from abroad or from many networks and carriers refuse it as the
# calling number; premium-rate and shared-cost numbers charge the client for calling back.
# UAN (corporate numbers: Switzerland's 058, Spain's 51…) are billed as ordinary calls, and
# companies present them: they stay.
_NOT_PRESENTABLE = frozenset(
    {PhoneNumberType.TOLL_FREE, PhoneNumberType.PREMIUM_RATE, PhoneNumberType.SHARED_COST}
)


@lru_cache(maxsize=4096)
def presentable(e164: str) -> bool:
    """Whether a rule may choose ``e164`` as the caller ID of an outbound call."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.number_type(number) not in _NOT_PRESENTABLE


@dataclass(frozen=True)
class _Place:
    country: str | None
    area: str | None  # country code + geographic area code, e.g. "7383"
    names: tuple[str, ...]  # the geocoder's descriptions (en, ru, uk) as bare place names


# The geocoder describes Russian numbers in Russian and Ukrainian ones in Ukrainian (and both
# in English): contacts' cities are written in any of them.
_LANGUAGES = ("en", "ru", "uk")


@lru_cache(maxsize=65536)
def _place(e164: str) -> _Place:
    try:
        n = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return _Place(None, None, ())
    area_len = phonenumbers.length_of_geographical_area_code(n)
    nsn = phonenumbers.national_significant_number(n)
    area = f"{n.country_code}{nsn[:area_len]}" if area_len else None
    # A mobile number geocodes to its country ("Russia"): that says nothing about the region.
    vague = {
        name
        for lang in _LANGUAGES
        for name in place_names(geocoder.country_name_for_number(n, lang))
    }
    names = {
        name
        for lang in _LANGUAGES
        for name in place_names(geocoder.description_for_number(n, lang))
    }
    return _Place(phonenumbers.region_code_for_number(n), area, tuple(sorted(names - vague)))


def _by_region(callee: str, ours: Sequence[str]) -> str | None:
    want = _place(callee)
    if want.area is not None:
        for e164 in ours:
            if _place(e164).area == want.area:
                return e164
    if want.names:
        for e164 in ours:
            place = _place(e164)
            if place.country == want.country and set(want.names) & set(place.names):
                return e164
    return None


def _by_city(city: str, ours: Sequence[str]) -> str | None:
    """Our number whose place the contact's ``city`` names, however written ("г. Москва",
    "Новосибирская область", "м. Київ": outbound/places.py). A number named exactly so comes
    before one whose region's adjective matches (Moscow's 499 is "г. Москва", its 495
    "Московская обл.")."""
    wanted = place_names(city)
    for matches in (operator.eq, same_place):
        for e164 in ours:
            if any(matches(w, name) for w in wanted for name in _place(e164).names):
                return e164
    return None


def select_caller_id(
    callee_e164: str,
    numbers: Sequence[OwnNumber],
    *,
    rules: Sequence[CallerIdRule] = DEFAULT_RULES,
    last_called: str | None = None,
    contact_city: str | None = None,
    trunk_default: str | None = None,
) -> CallerIdChoice:
    """The caller ID to present to ``callee_e164`` (see the module docstring)."""
    ours = [n.e164 for n in numbers if n.active and presentable(n.e164)]
    for rule in rules:
        found: str | None = None
        if rule is CallerIdRule.callee_region:
            found = _by_region(callee_e164, ours)
        elif rule is CallerIdRule.last_called:
            found = last_called if last_called in ours else None
        elif rule is CallerIdRule.contact_city and contact_city:
            found = _by_city(contact_city, ours)
        if found is not None:
            return CallerIdChoice(found, rule)
    return CallerIdChoice(trunk_default, None)
