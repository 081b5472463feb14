"""Who calls: a pool of distinct caller numbers of the account's country, and repeat callers.

One number for every call made the journal look like a single customer calling all day, and
routing by caller history (``{manager: last}``, the outbound caller-ID rule) had nothing to
choose between. The pool is ``size`` distinct numbers valid in the country (``phonenumbers``
decides), made from its example mobile number with the subscriber digits drawn at random.
Callers are drawn from it by Zipf's law — the k-th number of the pool calls 1/k as often as the
first —: a few regulars call again and again, most numbers once or twice, as customers do.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

__all__ = ["CallerPool", "caller_numbers"]

_SUBSCRIBER_DIGITS = 7  # drawn at random; the rest of the example number is kept (its prefix)
_TRIES_PER_NUMBER = 50  # a draw can be invalid (a range the plan does not allocate) or a repeat


def caller_numbers(country: str, size: int, rng: random.Random) -> tuple[str, ...]:
    """``size`` distinct E.164 numbers valid in ``country`` (ISO 3166 alpha-2), mobiles where
    the plan has an example of one. ValueError for a country without a number plan, or one
    whose plan cannot give that many."""
    if size < 1:
        raise ValueError("the pool needs at least one number")
    region = country.upper()
    example = phonenumbers.example_number_for_type(
        region, PhoneNumberType.MOBILE
    ) or phonenumbers.example_number_for_type(region, PhoneNumberType.FIXED_LINE)
    if example is None:
        raise ValueError(f"no number plan for the country {country!r}")
    national = str(example.national_number)
    drawn = min(_SUBSCRIBER_DIGITS, max(1, len(national) - 2))
    prefix = national[: len(national) - drawn]
    found: dict[str, None] = {}  # ordered: the pool's order is its callers' rank
    for _ in range(size * _TRIES_PER_NUMBER):
        digits = prefix + "".join(rng.choices("0123456789", k=drawn))
        number = phonenumbers.PhoneNumber(
            country_code=example.country_code, national_number=int(digits)
        )
        if phonenumbers.is_valid_number_for_region(number, region):
            found[phonenumbers.format_number(number, PhoneNumberFormat.E164)] = None
            if len(found) == size:
                return tuple(found)
    raise ValueError(f"could not make {size} distinct numbers of {region}")


class CallerPool:
    """Draws the caller of each call from ``numbers``, the first most often (Zipf)."""

    def __init__(self, numbers: Sequence[str]) -> None:
        if not numbers:
            raise ValueError("no caller numbers")
        self.numbers = tuple(numbers)
        self._cumulative = tuple(itertools.accumulate(1 / k for k in range(1, len(numbers) + 1)))

    def draw(self, rng: random.Random) -> str:
        return rng.choices(self.numbers, cum_weights=self._cumulative)[0]
