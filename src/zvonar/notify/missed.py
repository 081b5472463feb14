"""Missed-call e-mail: when a customer's call ends missed or abandoned, tell the account's
recipients who called, which line they dialed and when (in the account's time zone and
language) — and the employee who looks after that customer (their contact's manager), who
should call back. An employee's own unanswered outbound call is not a missed call.

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

from sqlalchemy import select

from zvonar.accounts.models import Account
from zvonar.calls.events import CallEnded, CallStarted, Direction, Disposition
from zvonar.contacts.models import Contact
from zvonar.core.bus import EventBus
from zvonar.core.events import Event
from zvonar.directory.models import Employee
from zvonar.i18n import FALLBACK, Translator, supported
from zvonar.journal.events import CallRecovered
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
# (account, contact) → the e-mail of the active employee who manages that contact, if any.
Managers = Callable[[uuid.UUID, uuid.UUID], Awaitable[str | None]]


def managers_from_db(db: Database) -> Managers:
    async def manager(account_id: uuid.UUID, contact_id: uuid.UUID) -> str | None:
        async with db.read() as s:
            email: str | None = await s.scalar(
                select(Employee.email)
                .join(Contact, Contact.manager_id == Employee.id)
                .where(
                    Contact.id == contact_id,
                    Contact.account_id == account_id,
                    Employee.active.is_(True),
                )
            )
        return email

    return manager


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
    contact_id: uuid.UUID | None = None  # the customer's contact, when the caller is known


def render(
    event: CallEnded | CallRecovered, facts: CallFacts, profile: AccountProfile
) -> tuple[str, str]:
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
        managers: Managers | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        outbox: MailOutbox | None = None,
    ) -> None:
        self.recipients = recipients
        self.profiles = profiles
        self.managers = managers
        # A shared outbox (the app's, spooled) or one of its own (retry, sleep: tests).
        self.outbox = outbox or MailOutbox(mailer, log, retry=retry, sleep=sleep)
        self._calls: OrderedDict[tuple[uuid.UUID, str], CallFacts] = OrderedDict()

    def attach(self, bus: EventBus) -> Callable[[], None]:
        """Subscribe to call starts and ends; returns the unsubscribe."""
        off_start = bus.subscribe(CallStarted, self._on_event)
        off_end = bus.subscribe(CallEnded, self._on_event)
        # A call whose process died: recovery's word instead of a CallEnded, with the facts
        # this process never saw start (journal/events.py).
        off_recovered = bus.subscribe(CallRecovered, self._on_event)

        def off() -> None:
            off_start()
            off_end()
            off_recovered()

        return off

    async def _on_event(self, event: Event) -> None:
        # Synchronous on purpose: no await, so publishing a call event never waits here.
        if isinstance(event, CallStarted):
            if event.direction is not Direction.inbound:
                return  # nobody to call back: an employee dialled (out, or a colleague)
            self._calls[(event.account_id, event.call_id)] = CallFacts(
                event.caller,
                event.dialed,
                event.number_label,
                event.started_at,
                event.caller_contact_id,
            )
            while len(self._calls) > MAX_REMEMBERED:
                self._calls.popitem(last=False)
        elif isinstance(event, CallEnded):
            facts = self._calls.pop((event.account_id, event.call_id), None)
            if event.disposition not in NOTIFY_ON:
                return
            if facts is None:
                log.info("missed call %s: not a customer's call seen starting", event.call_id)
                return
            ended = event
            self.outbox.submit(f"missed call {event.call_id}", lambda: self._prepare(ended, facts))
        elif isinstance(event, CallRecovered):
            if event.direction is not Direction.inbound or event.disposition not in NOTIFY_ON:
                return
            known = CallFacts(
                event.caller,
                event.dialed,
                event.dialed_label,
                event.started_at,
                event.caller_contact_id,
            )
            recovered = event
            self.outbox.submit(
                f"missed call {event.call_id} (recovered)",
                lambda: self._prepare(recovered, known),
            )

    async def _recipients(self, account_id: uuid.UUID) -> list[str]:
        found = self.recipients(account_id)
        if inspect.isawaitable(found):
            found = await found
        return [r for r in found if r]

    async def _prepare(self, event: CallEnded | CallRecovered, facts: CallFacts) -> Mail | None:
        to = await self._recipients(event.account_id)
        if facts.contact_id is not None and self.managers is not None:
            manager = await self.managers(event.account_id, facts.contact_id)
            if manager and manager not in to:
                to.append(manager)
        if not to:
            return None
        profile = await self.profiles(event.account_id)
        if profile is None:
            log.warning("missed call %s: account not found, no e-mail", event.call_id)
            return None
        subject, body = render(event, facts, profile)
        return Mail(to=tuple(to), subject=subject, body=body)
