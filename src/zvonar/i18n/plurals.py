"""CLDR cardinal plural rules for the languages Zvonar ships.

Rules follow the Unicode CLDR plural rules (``plurals.xml``, TR35 part 3 "Language Plural Rules").
The operands are the CLDR ones: ``i`` is the integer part of the absolute value and ``v`` the count
of visible fraction digits, so ``1`` and ``1.0`` differ (``v`` = 0 vs 1) exactly as CLDR says.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Literal, TypeAlias

PluralCategory: TypeAlias = Literal["zero", "one", "two", "few", "many", "other"]
Number: TypeAlias = int | float | Decimal

ALL_CATEGORIES: frozenset[str] = frozenset({"zero", "one", "two", "few", "many", "other"})


def operands(n: Number) -> tuple[int, int]:
    """CLDR operands ``(i, v)`` of ``n``; non-finite values count as having a fraction."""
    if isinstance(n, bool):
        raise TypeError("a plural count must be a number, not a bool")
    if isinstance(n, int):
        return abs(n), 0
    # repr() keeps the digits a float was written with (1.5 -> "1.5", 2.0 -> "2.0").
    d = Decimal(repr(n)) if isinstance(n, float) else n
    if not d.is_finite():
        return 0, 1
    d = abs(d)
    exponent = d.as_tuple().exponent
    if not isinstance(exponent, int):  # only NaN/Infinity have a letter exponent
        return 0, 1
    return int(d), max(0, -exponent)


def _english(n: Number) -> PluralCategory:
    # CLDR en: one → i = 1 and v = 0; other → everything else.
    i, v = operands(n)
    return "one" if i == 1 and v == 0 else "other"


def _east_slavic(n: Number) -> PluralCategory:
    # CLDR ru and uk share these cardinal rules:
    #   one  → v = 0 and i % 10 = 1 and i % 100 != 11
    #   few  → v = 0 and i % 10 = 2..4 and i % 100 != 12..14
    #   many → v = 0 and (i % 10 = 0 or i % 10 = 5..9 or i % 100 = 11..14)
    #   other → fractions (1.5 звонка)
    i, v = operands(n)
    if v != 0:
        return "other"
    last, last_two = i % 10, i % 100
    if last == 1 and last_two != 11:
        return "one"
    if 2 <= last <= 4 and not 12 <= last_two <= 14:
        return "few"
    return "many"


RULES: dict[str, Callable[[Number], PluralCategory]] = {
    "en": _english,
    "ru": _east_slavic,
    "uk": _east_slavic,
}

# The forms a catalog must give for a plural message, per language (the categories its rule can
# return; CLDR lists "other" for ru/uk because fractions reach it).
CATEGORIES: dict[str, tuple[PluralCategory, ...]] = {
    "en": ("one", "other"),
    "ru": ("one", "few", "many", "other"),
    "uk": ("one", "few", "many", "other"),
}


def plural_category(n: Number, lang: str) -> PluralCategory:
    """The CLDR cardinal category of ``n`` in ``lang`` (a language Zvonar ships)."""
    try:
        rule = RULES[lang]
    except KeyError:
        raise ValueError(f"no plural rule for language {lang!r}") from None
    return rule(n)
