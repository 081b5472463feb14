"""Missed-call e-mail: when a call ends missed or abandoned, tell the account's recipients who
called, which line they dialed and when (in the account's time zone and language).

The bus handler only records facts and starts a background task, so it returns at once: a call
never waits on a mail server. Delivery is retried with exponential back-off; when every attempt
fails the loss is logged, and nothing is ever raised into the bus (the journal and the call are
untouched by a broken mail server).

``CallEnded`` names the call only by id, so the notifier remembers each call's caller, dialed
number and start from ``CallStarted`` (bounded; forgotten at the end).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from zvonar.accounts.models import Account
from zvonar.calls.events import CallEnded, CallStarted, Disposition
from zvonar.core.bus import EventBus
from zvonar.core.events import Event
from zvonar.i18n import FALLBACK, Translator, supported
from zvonar.notify.mailer import Mail, Mailer
from zvonar.notify.outbox import MailOutbox, OutboxUser, RetryPolicy
from zvonar.store.db import Database

log = logging.getLogger(__name__)

NOTIFY_ON = frozenset({Disposition.missed, Disposition.abandoned})
MAX_REMEMBERED = 10_000

Recipients = Callable[[uuid.UUID], Sequence[str] | Awaitable[Sequence[str]]]


@dataclass(frozen=True)
class AccountProfile:
    time_zone: str
    language: str


Profiles = Callable[[uuid.UUID], Awaitable[AccountProfile | None]]


def profiles_from_db(db: Database) -> Profiles:
    """Reads the account's time zone and language from the accounts table."""

    async def profile(account_id: uuid.UUID) -> AccountProfile | None:
        async with db.read() as s:
            account = await s.get(Account, account_id)
        if account is None:
            return None
        return AccountProfile(time_zone=account.time_zone, language=account.language)

    return profile


@dataclass(frozen=True)
class CallFacts:
    caller: str
    dialed: str
    label: str | None
    started_at: datetime


def render(event: CallEnded, facts: CallFacts, profile: AccountProfile) -> tuple[str, str]:
    """``(subject, body)`` of the missed-call mail, in the account's language and zone."""
    t = Translator(supported(profile.language) or FALLBACK)
    try:
        zone = ZoneInfo(profile.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    local = facts.started_at.astimezone(zone)
    caller = facts.caller or t("mail.missed_call.unknown_caller")
    line = (
        t("mail.missed_call.line_labelled", label=facts.label, number=facts.dialed)
        if facts.label
        else facts.dialed
    )
    reason = t(f"mail.missed_call.reason_{event.disposition.value}")
    subject = t("mail.missed_call.subject", caller=caller)
    body = t(
        "mail.missed_call.body",
        caller=caller,
        line=line,
        time=local.strftime(t("mail.datetime_format")),
        zone=str(zone.key),
        reason=reason,
    )
    return subject, body


class MissedCallNotifier(OutboxUser):
    def __init__(
        self,
        mailer: Mailer,
        recipients: Recipients,
        profiles: Profiles,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.recipients = recipients
        self.profiles = profiles
        self.outbox = MailOutbox(mailer, log, retry=retry, sleep=sleep)
        self._calls: OrderedDict[tuple[uuid.UUID, str], CallFacts] = OrderedDict()

    def attach(self, bus: EventBus) -> Callable[[], None]:
        """Subscribe to call starts and ends; returns the unsubscribe."""
        off_start = bus.subscribe(CallStarted, self._on_event)
        off_end = bus.subscribe(CallEnded, self._on_event)

        def off() -> None:
            off_start()
            off_end()

        return off

    async def _on_event(self, event: Event) -> None:
        # Synchronous on purpose: no await, so publishing a call event never waits here.
        if isinstance(event, CallStarted):
            self._calls[(event.account_id, event.call_id)] = CallFacts(
                event.caller, event.dialed, event.number_label, event.started_at
            )
            while len(self._calls) > MAX_REMEMBERED:
                self._calls.popitem(last=False)
        elif isinstance(event, CallEnded):
            facts = self._calls.pop((event.account_id, event.call_id), None)
            if event.disposition not in NOTIFY_ON:
                return
            if facts is None:
                log.warning("missed call %s: its start was not seen, no e-mail", event.call_id)
                return
            ended = event
            self.outbox.submit(f"missed call {event.call_id}", lambda: self._prepare(ended, facts))

    async def _recipients(self, account_id: uuid.UUID) -> list[str]:
        found = self.recipients(account_id)
        if inspect.isawaitable(found):
            found = await found
        return [r for r in found if r]

    async def _prepare(self, event: CallEnded, facts: CallFacts) -> Mail | None:
        to = await self._recipients(event.account_id)
        if not to:
            return None
        profile = await self.profiles(event.account_id)
        if profile is None:
            log.warning("missed call %s: account not found, no e-mail", event.call_id)
            return None
        subject, body = render(event, facts, profile)
        return Mail(to=tuple(to), subject=subject, body=body)
