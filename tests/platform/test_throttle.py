from __future__ import annotations

import pytest

from tests.conftest import Tenant
from zvonar.accounts.throttle import LoginThrottle, ThrottleConfig
from zvonar.container import Container
from zvonar.core.errors import LimitExceeded, Unauthenticated


def test_per_email_window_is_exact() -> None:
    t = LoginThrottle(ThrottleConfig(window=60, max_per_email=3, max_per_source=100))
    for i in range(3):
        assert t.retry_after("a@x", "10.0.0.1", float(i)) is None
        t.failed("a@x", "10.0.0.1", float(i))
    assert t.retry_after("a@x", "10.0.0.9", 2.0) == pytest.approx(58.0)
    assert t.retry_after("b@x", "10.0.0.1", 2.0) is None  # other accounts unaffected
    assert t.retry_after("a@x", None, 59.9) is not None
    assert t.retry_after("a@x", None, 60.0) is None  # the first failure left the window


def test_per_source_catches_spraying_and_success_clears_email_only() -> None:
    t = LoginThrottle(ThrottleConfig(window=60, max_per_email=100, max_per_source=4))
    for i in range(4):
        t.failed(f"user{i}@x", "203.0.113.7", 1.0)
    assert t.retry_after("new@x", "203.0.113.7", 2.0) is not None
    assert t.retry_after("new@x", "203.0.113.8", 2.0) is None
    t.succeeded("user0@x")
    assert t.retry_after("user0@x", "203.0.113.8", 2.0) is None
    assert t.retry_after("user0@x", "203.0.113.7", 2.0) is not None


def test_memory_is_bounded() -> None:
    t = LoginThrottle(ThrottleConfig(max_keys=10))
    for i in range(100):
        t.failed(f"u{i}@x", None, 0.0)
    assert len(t._failures) <= 10


async def test_sign_in_refuses_after_repeated_failures(
    container: Container, tenant_a: Tenant
) -> None:
    clock = [1000.0]
    container.accounts._monotonic = lambda: clock[0]
    container.accounts.throttle = LoginThrottle(ThrottleConfig(window=300, max_per_email=3))
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            await container.accounts.sign_in(tenant_a.admin_email, "nope", max_age=60)
    # Even the right password is refused while the brake is on…
    with pytest.raises(LimitExceeded) as exc:
        await container.accounts.sign_in(tenant_a.admin_email, tenant_a.admin_password, max_age=60)
    assert exc.value.code == "too_many_attempts" and exc.value.details["retry_after"] == 301
    # …and accepted once the window has passed.
    clock[0] += 301
    signed = await container.accounts.sign_in(
        tenant_a.admin_email, tenant_a.admin_password, max_age=60
    )
    assert signed.user.email == tenant_a.admin_email
