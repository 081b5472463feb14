"""A caller's number as carriers present it: national, or international with or without its
``+``, or with a ``00`` the region's own plan does not use."""

from __future__ import annotations

import pytest

from zvonar.directory.phone import normalize_caller


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("+79161234567", "RU", "+79161234567"),
        ("89161234567", "RU", "+79161234567"),
        ("79161234567", "RU", "+79161234567"),
        ("9161234567", "RU", "+79161234567"),
        ("81038044123456", "RU", None),  # one digit short: no number anywhere
        ("810380441234567", "RU", "+380441234567"),
        ("380441234567", "RU", "+380441234567"),  # the + dropped by the carrier
        ("00380441234567", "RU", "+380441234567"),  # 00: not Russia's prefix, still meant
        ("0074957654321", "KZ", "+74957654321"),
        ("12025550100", "RU", "+12025550100"),
        ("0441234567", "UA", "+380441234567"),  # national first: never read as international
        ("00380441234567", "UA", "+380441234567"),
        ("anonymous", "RU", None),
        ("", "RU", None),
        ("+", "RU", None),
    ],
)
def test_a_callers_number(raw: str, region: str, e164: str | None) -> None:
    assert normalize_caller(raw, region) == e164
