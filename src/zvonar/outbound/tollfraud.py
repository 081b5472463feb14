"""Toll-fraud guard: a hijacked SIP password must not run up an international bill overnight.

Pure and injected: the caller passes ``now`` (monotonic seconds) and reports call ends. Per
account: international calls are refused unless the destination country is allow-listed,
premium-rate numbers are refused unless allowed, and concurrent outbound calls and calls in any
sliding hour are capped. Emergency calls are always allowed and never counted against caps.
"""

from __future__ import annotations

import enum
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import phonenumbers

from zvonar.outbound.dialplan import DialKind, DialTarget

_HOUR = 3600.0


class DenyReason(enum.StrEnum):
    international_not_allowed = "international_not_allowed"
    premium_rate_not_allowed = "premium_rate_not_allowed"
    too_many_concurrent = "too_many_concurrent"
    hourly_limit = "hourly_limit"


@dataclass(frozen=True)
class TollPolicy:
    """Per-account limits; the defaults are the safe ones (no international, modest caps)."""

    country: str = "RU"
    allowed_countries: frozenset[str] = frozenset()
    allow_premium_rate: bool = False
    max_concurrent: int = 10
    max_per_hour: int = 200


@dataclass(frozen=True)
class Allow:
    pass


@dataclass(frozen=True)
class Deny:
    reason: DenyReason


Decision = Allow | Deny


@dataclass
class _Usage:
    active: set[str] = field(default_factory=set)
    started: deque[float] = field(default_factory=deque)


class TollFraudGuard:
    def __init__(self, policies: Mapping[uuid.UUID, TollPolicy] | None = None) -> None:
        self._policies: dict[uuid.UUID, TollPolicy] = dict(policies or {})
        self._usage: dict[uuid.UUID, _Usage] = {}

    def set_policy(self, account_id: uuid.UUID, policy: TollPolicy) -> None:
        self._policies[account_id] = policy

    def policy(self, account_id: uuid.UUID) -> TollPolicy:
        return self._policies.get(account_id, TollPolicy())

    def admit(
        self, account_id: uuid.UUID, call_id: str, target: DialTarget, now: float
    ) -> Decision:
        """Check the call and, when allowed, count it as started (until :meth:`release`)."""
        if target.kind is not DialKind.external:
            return Allow()
        policy = self.policy(account_id)
        country = (target.country or "").upper()
        if country != policy.country.upper() and country not in policy.allowed_countries:
            return Deny(DenyReason.international_not_allowed)
        if not policy.allow_premium_rate and _premium(target.value):
            return Deny(DenyReason.premium_rate_not_allowed)
        usage = self._usage.setdefault(account_id, _Usage())
        while usage.started and usage.started[0] <= now - _HOUR:
            usage.started.popleft()
        if call_id in usage.active:
            return Allow()  # a retried admit of the same call is not a second call
        if len(usage.active) >= policy.max_concurrent:
            return Deny(DenyReason.too_many_concurrent)
        if len(usage.started) >= policy.max_per_hour:
            return Deny(DenyReason.hourly_limit)
        usage.active.add(call_id)
        usage.started.append(now)
        return Allow()

    def release(self, account_id: uuid.UUID, call_id: str) -> None:
        """The call ended (or failed to start): it no longer counts as concurrent."""
        usage = self._usage.get(account_id)
        if usage is not None:
            usage.active.discard(call_id)

    def active(self, account_id: uuid.UUID) -> int:
        usage = self._usage.get(account_id)
        return len(usage.active) if usage else 0


def _premium(e164: str) -> bool:
    try:
        n = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.number_type(n) == phonenumbers.PhoneNumberType.PREMIUM_RATE)
