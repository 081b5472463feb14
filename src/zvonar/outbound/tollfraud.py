"""Toll-fraud guard: a hijacked SIP password must not run up an international bill overnight.

Pure and injected: the caller passes ``now`` (monotonic seconds) and the account's
:class:`TollPolicy` with every call (read from the account then, so a changed setting applies
to the next call), and reports call ends. Per account: international calls are refused unless
the account allows them (or the destination country is allow-listed), premium-rate numbers are
refused unless allowed, and concurrent outbound calls and calls in any sliding hour are capped.
Emergency calls are always allowed and never counted against caps.
"""

from __future__ import annotations

import enum
import uuid
from collections import deque
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
    """One account's limits: its ``country`` is national; the rest default to the safe values
    (no international, no premium rate, modest caps) that accounts/models.py defaults to too.
    ``allowed_countries``: countries allowed while ``international`` is off."""

    country: str
    international: bool = False
    allowed_countries: frozenset[str] = frozenset()
    allow_premium_rate: bool = False
    max_concurrent: int = 10
    max_per_hour: int = 200

    def national(self, region: str | None) -> bool:
        """Whether a number of ISO ``region`` is a national call.

        The number's region, not its country calling code: +7 is Russia's and Kazakhstan's,
        +1 that of the US, Canada and a score of Caribbean countries, and carriers bill a call
        between them at international rates (+1 876 Jamaica and its kin are a classic
        toll-fraud destination). So a Kazakh number is international for a Russian account.
        A number of no country (non-geographic +800, +881…) is international.
        """
        return region is not None and region.upper() == self.country.upper()

    def may_call(self, region: str | None) -> bool:
        if self.international or self.national(region):
            return True
        return region is not None and region.upper() in self.allowed_countries


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
    """What each account has placed: calls in progress and the starts of the last hour."""

    def __init__(self) -> None:
        self._usage: dict[uuid.UUID, _Usage] = {}

    def admit(
        self,
        account_id: uuid.UUID,
        call_id: str,
        target: DialTarget,
        now: float,
        *,
        policy: TollPolicy,
    ) -> Decision:
        """Check the call against the account's ``policy`` and, when allowed, count it as
        started (until :meth:`release`)."""
        if target.kind is not DialKind.external:
            return Allow()
        if not policy.may_call(target.country):
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
