"""The dial plan: national/international prefixes, extensions, emergency codes."""

from __future__ import annotations

import pytest

from zvonar.outbound.dialplan import DialKind, DialTarget, normalize_dialed, withheld
from zvonar.outbound.errors import InvalidDialString


@pytest.mark.parametrize(
    ("dialed", "country", "e164", "region"),
    [
        ("8 (383) 212-34-56", "RU", "+73832123456", "RU"),
        ("89161234567", "RU", "+79161234567", "RU"),
        ("+7 916 123-45-67", "RU", "+79161234567", "RU"),
        ("9161234567", "RU", "+79161234567", "RU"),
        ("810 1 212 555 1234", "RU", "+12125551234", "US"),
        ("81044 20 7946 0018", "RU", "+442079460018", "GB"),
        ("044 123 45 67", "UA", "+380441234567", "UA"),
        ("00 1 212 555 1234", "UA", "+12125551234", "US"),
        ("8 800 123-45-67", "RU", "+78001234567", "RU"),
    ],
)
def test_external_numbers_normalize_to_e164(
    dialed: str, country: str, e164: str, region: str
) -> None:
    assert normalize_dialed(dialed, country) == DialTarget(DialKind.external, e164, region)


@pytest.mark.parametrize(
    ("dialed", "country", "e164", "region"),
    [
        # 00 is the international prefix of most of the world and of every GSM phone; Russia's
        # and Kazakhstan's plans know only 8~10, so these were 484 Address Incomplete.
        ("0079161112233", "RU", "+79161112233", "RU"),
        ("00380441234567", "RU", "+380441234567", "UA"),
        ("00 44 20 7946 0018", "RU", "+442079460018", "GB"),
        ("0074957654321", "KZ", "+74957654321", "RU"),
        ("00 1 212 555 1234", "US", "+12125551234", "US"),
        ("00380441234567", "UA", "+380441234567", "UA"),  # UA's own prefix, as before
        # The region's own plan is read first: Australia's 0011 stays its international prefix.
        ("0011 44 20 7946 0018", "AU", "+442079460018", "GB"),
    ],
)
def test_00_is_an_international_prefix_everywhere(
    dialed: str, country: str, e164: str, region: str
) -> None:
    assert normalize_dialed(dialed, country) == DialTarget(DialKind.external, e164, region)


@pytest.mark.parametrize("dialed", ["00 7 916 111", "0000000000000", "00 999 1234 5678"])
def test_00_before_no_valid_number_is_still_refused(dialed: str) -> None:
    with pytest.raises(InvalidDialString):
        normalize_dialed(dialed, "RU")


def test_short_numbers_are_internal() -> None:
    assert normalize_dialed("205", "RU") == DialTarget(DialKind.internal, "205")
    assert normalize_dialed("123456", "RU").kind is DialKind.internal
    # Seven digits cannot be an extension: it must then be a valid number, which it is not.
    with pytest.raises(InvalidDialString):
        normalize_dialed("1234567", "RU")


def test_emergency_codes() -> None:
    for code in ("112", "101", "102", "103", "104"):
        assert normalize_dialed(code, "RU") == DialTarget(DialKind.emergency, code)
    assert normalize_dialed("911", "US").kind is DialKind.emergency
    # 101 in a country without that code is just an extension.
    assert normalize_dialed("101", "DE").kind is DialKind.internal


def test_existing_extension_wins_over_local_emergency_code_but_never_over_112() -> None:
    exts = frozenset({"101", "112"})
    assert normalize_dialed("101", "RU", extensions=exts).kind is DialKind.internal
    assert normalize_dialed("102", "RU", extensions=exts).kind is DialKind.emergency
    assert normalize_dialed("112", "RU", extensions=exts).kind is DialKind.emergency


@pytest.mark.parametrize("dialed", ["", "*21#", "abc", "8", "+7 916", "8 999 000 00 00 00 00"])
def test_garbage_is_refused(dialed: str) -> None:
    with pytest.raises(InvalidDialString) as info:
        normalize_dialed(dialed, "RU")
    assert info.value.code == "invalid_dial_string"


@pytest.mark.parametrize(
    ("dialed", "rest", "private"),
    [
        ("*6784951234567", "84951234567", True),
        ("#31#84951234567", "84951234567", True),
        ("%2331%2384951234567", "84951234567", True),  # the phone escaped its #
        ("84951234567", "84951234567", False),
        ("*67", "*67", False),  # a prefix alone dials nothing
        ("*8102", "*8102", False),  # pickup stays pickup
    ],
)
def test_a_withheld_call_is_told_by_its_prefix(dialed: str, rest: str, private: bool) -> None:
    assert withheld(dialed) == (rest, private)
