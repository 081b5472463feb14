"""What a contact search's ``q`` asks for, the pure half: text, or a phone number as people
write it. The service turns it into SQL.

- Text (always): the name or the company contains ``q``, in any case of any script (both are
  compared case-folded, as :attr:`Search.folded`).
- A number, only when ``q`` has no letters and 3+ digits (so "ООО Фирма 4999" is a company,
  never every contact whose number holds 4999):

  - ``q`` that normalizes to a whole valid number, read with the account's country as the
    numbers were when stored ("8 (495) 123-45-67", "4951234567", "+7 495…"), finds that
    number only: :attr:`NumberSearch.exact`;
  - a whole number written with ``00`` before its country code, as dialling reads it, finds
    that number (a part of one: those that start so, or its digits anywhere);
  - otherwise its digits anywhere in the E.164 form ("1234567" finds +74951234567), and a
    start of a number: "+7 495 12" one that starts so, "8 495 12" written with the country's
    national prefix (phonenumbers' ``ndd_prefix_for_region``: 8 in Russia, 0 in Ukraine) one
    that starts with the country code instead (+749512…). Both, since "0504" in Ukraine may
    be a number's end as well as its start.

Numbers are never hand-parsed (DESIGN.md): a whole number is read by ``phonenumbers``; only a
part of one, which it cannot read, is matched on its digits, with its prefix from the metadata.
"""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers

from zvonar.directory import phone

# Fewer digits than this match too many numbers to be meant as one.
MIN_DIGITS = 3


@dataclass(frozen=True)
class NumberSearch:
    exact: str | None = None  # this E.164 number only
    contains: str | None = None  # these digits anywhere in the E.164 form
    prefix: str | None = None  # an E.164 form that starts so ("+749512")


@dataclass(frozen=True)
class Search:
    folded: str  # the query, case-folded, for the name and the company
    number: NumberSearch | None


def parse(q: str, country: str | None) -> Search:
    """What ``q`` searches for in an account of ``country`` (ISO 3166 alpha-2, or None)."""
    return Search(q.casefold(), _number(q, country))


def _number(q: str, country: str | None) -> NumberSearch | None:
    if any(ch.isalpha() for ch in q):
        return None
    digits = phonenumbers.normalize_digits_only(q)
    if len(digits) < MIN_DIGITS:
        return None
    exact = phone.normalize_written(q, country)  # 00 as the international prefix too
    if exact is not None:
        return NumberSearch(exact=exact)
    if digits.startswith("00"):
        return NumberSearch(prefix="+" + digits[2:], contains=digits)
    if q.lstrip().startswith("+"):
        return NumberSearch(prefix="+" + digits)
    prefix = None
    region = (country or "").upper()
    national = phonenumbers.ndd_prefix_for_region(region, True) if region else None
    if national and digits.startswith(national) and len(digits) > len(national):
        code = phonenumbers.country_code_for_region(region)
        prefix = f"+{code}{digits[len(national) :]}"
    return NumberSearch(contains=digits, prefix=prefix)
