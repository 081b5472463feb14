"""The toll-fraud guard: international allow-list, premium rate, concurrency and hourly caps."""

from __future__ import annotations

import uuid

from zvonar.outbound.dialplan import normalize_dialed
from zvonar.outbound.tollfraud import Allow, Deny, DenyReason, TollFraudGuard, TollPolicy

ACC = uuid.uuid4()
LOCAL = normalize_dialed("84951234567", "RU")
US = normalize_dialed("810 1 212 555 1234", "RU")
PREMIUM = normalize_dialed("88091234567", "RU")
EMERGENCY = normalize_dialed("112", "RU")


def test_international_off_by_default_and_allow_listed_per_account() -> None:
    guard = TollFraudGuard()
    assert guard.admit(ACC, "c1", US, 0.0) == Deny(DenyReason.international_not_allowed)
    assert guard.admit(ACC, "c2", LOCAL, 0.0) == Allow()
    guard.set_policy(ACC, TollPolicy(allowed_countries=frozenset({"US"})))
    assert guard.admit(ACC, "c3", US, 0.0) == Allow()
    # Another account keeps the safe default.
    assert guard.admit(uuid.uuid4(), "c4", US, 0.0) == Deny(DenyReason.international_not_allowed)


def test_premium_rate_refused_unless_allowed() -> None:
    guard = TollFraudGuard()
    assert guard.admit(ACC, "p", PREMIUM, 0.0) == Deny(DenyReason.premium_rate_not_allowed)
    guard.set_policy(ACC, TollPolicy(allow_premium_rate=True))
    assert guard.admit(ACC, "p", PREMIUM, 0.0) == Allow()


def test_concurrent_cap_frees_on_release() -> None:
    guard = TollFraudGuard({ACC: TollPolicy(max_concurrent=2)})
    assert guard.admit(ACC, "a", LOCAL, 0.0) == Allow()
    assert guard.admit(ACC, "b", LOCAL, 1.0) == Allow()
    assert guard.admit(ACC, "c", LOCAL, 2.0) == Deny(DenyReason.too_many_concurrent)
    assert guard.admit(ACC, "a", LOCAL, 2.0) == Allow()  # same call again: not a new one
    guard.release(ACC, "a")
    assert guard.active(ACC) == 1
    assert guard.admit(ACC, "c", LOCAL, 3.0) == Allow()


def test_hourly_cap_is_a_sliding_window() -> None:
    guard = TollFraudGuard({ACC: TollPolicy(max_per_hour=3)})
    for i, t in enumerate((0.0, 600.0, 1200.0)):
        assert guard.admit(ACC, f"c{i}", LOCAL, t) == Allow()
        guard.release(ACC, f"c{i}")
    assert guard.admit(ACC, "x", LOCAL, 3599.0) == Deny(DenyReason.hourly_limit)
    # At 3600 s the first call leaves the window.
    assert guard.admit(ACC, "x", LOCAL, 3600.0) == Allow()
    assert guard.admit(ACC, "y", LOCAL, 3601.0) == Deny(DenyReason.hourly_limit)


def test_emergency_and_internal_always_allowed_and_not_counted() -> None:
    guard = TollFraudGuard({ACC: TollPolicy(max_concurrent=0, max_per_hour=0)})
    assert guard.admit(ACC, "e", EMERGENCY, 0.0) == Allow()
    assert guard.admit(ACC, "i", normalize_dialed("205", "RU"), 0.0) == Allow()
    assert guard.active(ACC) == 0
    assert guard.admit(ACC, "l", LOCAL, 0.0) == Deny(DenyReason.too_many_concurrent)
