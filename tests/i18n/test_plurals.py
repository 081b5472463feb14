"""CLDR cardinal plural rules for en, ru and uk."""

from __future__ import annotations

from decimal import Decimal

import pytest

from zvonar.i18n import plural_category
from zvonar.i18n.plurals import CATEGORIES, Number

SAMPLES = (0, 1, 2, 5, 11, 12, 14, 21, 22, 25, 101, 111, 112, 1001)

EXPECTED_EAST_SLAVIC = {
    0: "many",
    1: "one",
    2: "few",
    5: "many",
    11: "many",
    12: "many",
    14: "many",
    21: "one",
    22: "few",
    25: "many",
    101: "one",
    111: "many",
    112: "many",
    1001: "one",
}


@pytest.mark.parametrize("lang", ["ru", "uk"])
@pytest.mark.parametrize("n", SAMPLES)
def test_east_slavic_integers(lang: str, n: int) -> None:
    assert plural_category(n, lang) == EXPECTED_EAST_SLAVIC[n]
    assert plural_category(-n, lang) == EXPECTED_EAST_SLAVIC[n]


@pytest.mark.parametrize("n", SAMPLES)
def test_english_integers(n: int) -> None:
    assert plural_category(n, "en") == ("one" if n == 1 else "other")


@pytest.mark.parametrize(
    ("n", "lang", "expected"),
    [
        (Decimal("1.5"), "ru", "other"),
        (1.5, "uk", "other"),
        (Decimal("1.0"), "en", "other"),  # CLDR: v = 1, so "1.0 hours"
        (Decimal("1"), "en", "one"),
        (Decimal("21"), "ru", "one"),
        (Decimal("2E+1"), "ru", "many"),
        (2.0, "ru", "other"),
        (float("inf"), "ru", "other"),
        (Decimal("NaN"), "uk", "other"),
    ],
)
def test_fractions_follow_visible_digits(n: Number, lang: str, expected: str) -> None:
    assert plural_category(n, lang) == expected


def test_every_rule_result_is_a_declared_category() -> None:
    for lang, categories in CATEGORIES.items():
        seen = {plural_category(n, lang) for n in range(0, 200)}
        seen |= {plural_category(Decimal("0.5"), lang)}
        assert seen == set(categories), lang


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="de"):
        plural_category(1, "de")
    with pytest.raises(TypeError):
        plural_category(True, "en")
