"""The toll-fraud guard: national by the account's country, international off unless allowed,
premium rate, and the account's concurrency and hourly caps."""

from __future__ import annotations

import uuid
from dataclasses import replace

from zvonar.outbound.dialplan import normalize_dialed
from zvonar.outbound.tollfraud import Allow, Deny, DenyReason, TollFraudGuard, TollPolicy

ACC = uuid.uuid4()
RU = TollPolicy(country="RU")
UA = TollPolicy(country="UA")
LOCAL = normalize_dialed("84951234567", "RU")
US = normalize_dialed("810 1 212 555 1234", "RU")
PREMIUM = normalize_dialed("88091234567", "RU")
EMERGENCY = normalize_dialed("112", "RU")
KYIV = normalize_dialed("0441234567", "UA")
ASTANA = normalize_dialed("8 7172 12 34 56", "RU")  # +7 too, but Kazakhstan's
INTERNATIONAL = Deny(DenyReason.international_not_allowed)


def test_international_off_by_default_and_allow_listed_per_account() -> None:
    guard = TollFraudGuard()
    assert guard.admit(ACC, "c1", US, 0.0, policy=RU) == INTERNATIONAL
    assert guard.admit(ACC, "c2", LOCAL, 0.0, policy=RU) == Allow()
    us_only = replace(RU, allowed_countries=frozenset({"US"}))
    assert guard.admit(ACC, "c3", US, 0.0, policy=us_only) == Allow()
    assert guard.admit(ACC, "c4", KYIV, 0.0, policy=us_only) == INTERNATIONAL


def test_national_is_the_accounts_country() -> None:
    """The audit's case: for a UA account Kyiv is national and Moscow is abroad."""
    guard = TollFraudGuard()
    assert KYIV.value == "+380441234567"
    assert guard.admit(ACC, "kyiv", KYIV, 0.0, policy=UA) == Allow()
    assert guard.admit(ACC, "moscow", LOCAL, 0.0, policy=UA) == INTERNATIONAL
    assert guard.admit(ACC, "moscow", LOCAL, 0.0, policy=replace(UA, international=True)) == (
        Allow()
    )


def test_a_shared_country_code_is_still_abroad() -> None:
    """+7 is Russia's and Kazakhstan's: a call between them is billed as international."""
    guard = TollFraudGuard()
    assert ASTANA.value == "+77172123456" and ASTANA.country == "KZ"
    assert guard.admit(ACC, "a", ASTANA, 0.0, policy=RU) == INTERNATIONAL
    assert guard.admit(ACC, "b", ASTANA, 0.0, policy=TollPolicy(country="KZ")) == Allow()
    assert guard.admit(ACC, "c", LOCAL, 0.0, policy=TollPolicy(country="KZ")) == INTERNATIONAL


def test_premium_rate_refused_unless_allowed() -> None:
    guard = TollFraudGuard()
    assert guard.admit(ACC, "p", PREMIUM, 0.0, policy=RU) == Deny(
        DenyReason.premium_rate_not_allowed
    )
    premium = replace(RU, allow_premium_rate=True)
    assert guard.admit(ACC, "p", PREMIUM, 0.0, policy=premium) == Allow()


def test_concurrent_cap_frees_on_release() -> None:
    guard = TollFraudGuard()
    two = replace(RU, max_concurrent=2)
    assert guard.admit(ACC, "a", LOCAL, 0.0, policy=two) == Allow()
    assert guard.admit(ACC, "b", LOCAL, 1.0, policy=two) == Allow()
    assert guard.admit(ACC, "c", LOCAL, 2.0, policy=two) == Deny(DenyReason.too_many_concurrent)
    assert guard.admit(ACC, "a", LOCAL, 2.0, policy=two) == Allow()  # the same call again
    guard.release(ACC, "a")
    assert guard.active(ACC) == 1
    assert guard.admit(ACC, "c", LOCAL, 3.0, policy=two) == Allow()
    # Another account counts its own calls.
    assert guard.admit(uuid.uuid4(), "c", LOCAL, 3.0, policy=two) == Allow()


def test_hourly_cap_is_a_sliding_window() -> None:
    guard = TollFraudGuard()
    three = replace(RU, max_per_hour=3)
    for i, t in enumerate((0.0, 600.0, 1200.0)):
        assert guard.admit(ACC, f"c{i}", LOCAL, t, policy=three) == Allow()
        guard.release(ACC, f"c{i}")
    assert guard.admit(ACC, "x", LOCAL, 3599.0, policy=three) == Deny(DenyReason.hourly_limit)
    # At 3600 s the first call leaves the window.
    assert guard.admit(ACC, "x", LOCAL, 3600.0, policy=three) == Allow()
    assert guard.admit(ACC, "y", LOCAL, 3601.0, policy=three) == Deny(DenyReason.hourly_limit)


def test_caps_follow_the_policy_of_each_call() -> None:
    """The account's caps are read per call: raised or lowered, the next call obeys them, and
    the calls already counted still count."""
    guard = TollFraudGuard()
    one = replace(RU, max_concurrent=1, max_per_hour=2)
    assert guard.admit(ACC, "a", LOCAL, 0.0, policy=one) == Allow()
    assert guard.admit(ACC, "b", LOCAL, 1.0, policy=one) == Deny(DenyReason.too_many_concurrent)
    assert guard.admit(ACC, "b", LOCAL, 1.0, policy=RU) == Allow()  # the default 10
    assert guard.active(ACC) == 2
    # Lowered: the two calls of this hour are the limit now.
    assert guard.admit(ACC, "c", LOCAL, 2.0, policy=replace(RU, max_per_hour=2)) == Deny(
        DenyReason.hourly_limit
    )


def test_emergency_and_internal_always_allowed_and_not_counted() -> None:
    guard = TollFraudGuard()
    none = replace(RU, max_concurrent=0, max_per_hour=0)
    assert guard.admit(ACC, "e", EMERGENCY, 0.0, policy=none) == Allow()
    assert guard.admit(ACC, "i", normalize_dialed("205", "RU"), 0.0, policy=none) == Allow()
    assert guard.active(ACC) == 0
    assert guard.admit(ACC, "l", LOCAL, 0.0, policy=none) == Deny(DenyReason.too_many_concurrent)


def test_the_safe_defaults() -> None:
    assert (RU.international, RU.allow_premium_rate, RU.allowed_countries) == (
        False,
        False,
        frozenset(),
    )
    assert (RU.max_concurrent, RU.max_per_hour) == (10, 200)
