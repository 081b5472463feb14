"""Choosing a language: user setting, Accept-Language (q-values), account, default."""

from __future__ import annotations

import pytest

from zvonar.i18n import negotiate, parse_accept_language


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("uk-UA,uk;q=0.9,ru;q=0.8,en;q=0.5", "uk"),
        ("ru-RU,ru;q=0.9", "ru"),
        ("en;q=0.4, ru;q=0.7, uk;q=0.6", "ru"),
        ("de-DE,de;q=0.9,uk;q=0.3", "uk"),
        ("RU", "ru"),
        ("uk;q=0, ru;q=0.1", "ru"),
        ("fr, en-GB;q=0.8", "en"),
        ("ru;q=0.5, uk;q=0.5", "ru"),  # equal weights keep the sender's order
        ("uk;q=abc, ru;q=0.2", "ru"),  # a malformed weight drops that range
        ("uk;q=2, en;q=0.1", "en"),  # out of range
        ("uk;q=nan, en;q=0.1", "en"),
        ("uk;q, en;q=0.1", "en"),
    ],
)
def test_accept_language_beats_account(header: str, expected: str) -> None:
    assert negotiate(header, None, "ru" if expected != "ru" else "uk", "en") == expected


def test_user_setting_comes_first() -> None:
    assert negotiate("ru-RU,ru;q=0.9", "uk", "ru", "en") == "uk"


def test_unsupported_user_setting_is_ignored() -> None:
    assert negotiate("ru", "de", "uk", "en") == "ru"


@pytest.mark.parametrize("header", [None, "", "de, fr;q=0.5", "*", "*, ru;q=0.5", "ru;q=0"])
def test_account_when_header_has_nothing_usable(header: str | None) -> None:
    assert negotiate(header, None, "uk", "en") == "uk"


def test_default_then_english() -> None:
    assert negotiate("de", None, None, "ru") == "ru"
    assert negotiate("de", None, "xx", "zz") == "en"


def test_parse_keeps_weights_and_drops_zero() -> None:
    assert parse_accept_language(" uk-UA ; q=0.9 , ru;q=0, en ") == [("en", 1.0), ("uk-ua", 0.9)]


def test_huge_header_is_bounded() -> None:
    header = ",".join(["de"] * 10_000) + ",uk"
    assert len(parse_accept_language(header)) <= 32
    assert negotiate(header, None, "ru", "en") == "ru"
