"""Voicemail e-mail: when a caller leaves a message (VoicemailLeft), mail it — the WAV
attached — to the addresses the scheme's voicemail step names (carried on the event), with
who called, which line, when (in the account's zone and language) and how long.

Like the missed-call notifier (missed.py): the bus handler only records facts and starts a
background task, delivery is retried with back-off, and nothing is ever raised into the bus.
The caller, line and start come from CallStarted (remembered, bounded; forgotten at CallEnded).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from zvonar.calls.events import CallEnded, CallStarted, VoicemailLeft
from zvonar.core.bus import EventBus
from zvonar.core.events import Event
from zvonar.i18n import FALLBACK, Translator, supported
from zvonar.notify.mailer import Attachment, Mail, Mailer
from zvonar.notify.missed import (
    MAX_REMEMBERED,
    AccountProfile,
    CallFacts,
    Profiles,
    Recipients,
)
from zvonar.notify.outbox import MailOutbox, OutboxUser, RetryPolicy

__all__ = ["MAX_ATTACHMENT", "VoicemailNotifier", "render_voicemail"]

log = logging.getLogger(__name__)

MAX_ATTACHMENT = 20 << 20  # bytes; most mail servers refuse much more (120 s mono is ~2 MB)
_UNSAFE = re.compile(r"[^0-9A-Za-z+]")


def _duration(seconds: float) -> str:
    whole = max(round(seconds), 0)
    return f"{whole // 60}:{whole % 60:02d}"


def render_voicemail(
    event: VoicemailLeft, facts: CallFacts | None, profile: AccountProfile, *, attached: bool
) -> tuple[str, str]:
    """``(subject, body)`` of the voicemail mail, in the account's language and zone."""
    t = Translator(supported(profile.language) or FALLBACK)
    try:
        zone = ZoneInfo(profile.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    at = facts.started_at if facts is not None else event.occurred_at
    caller = (facts.caller if facts is not None else "") or t("mail.voicemail.unknown_caller")
    line = ""
    if facts is not None:
        line = (
            t("mail.voicemail.line_labelled", label=facts.label, number=facts.dialed)
            if facts.label
            else facts.dialed
        )
    subject = t("mail.voicemail.subject", caller=caller)
    body = t(
        "mail.voicemail.body",
        caller=caller,
        line=line,
        time=at.astimezone(zone).strftime(t("mail.datetime_format")),
        zone=str(zone.key),
        duration=_duration(event.duration),
        attachment=t("mail.voicemail.attached" if attached else "mail.voicemail.not_attached"),
    )
    return subject, body


def _filename(facts: CallFacts | None, at: datetime) -> str:
    caller = _UNSAFE.sub("", facts.caller)[:32] if facts is not None else ""
    return f"voicemail-{at:%Y%m%d-%H%M}-{caller or 'unknown'}.wav"


def _read(path: Path) -> bytes | None:
    try:
        if path.stat().st_size > MAX_ATTACHMENT:
            return None
        return path.read_bytes()
    except OSError as exc:
        log.warning("voicemail %s unreadable: %s", path.name, exc)
        return None


class VoicemailNotifier(OutboxUser):
    """Attach with :meth:`attach` to the bus; ``profiles`` gives an account's zone/language."""

    def __init__(
        self,
        mailer: Mailer,
        profiles: Profiles,
        *,
        recipients: Recipients | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        outbox: MailOutbox | None = None,
    ) -> None:
        self.profiles = profiles
        self.recipients = recipients  # who is told when the voicemail step names nobody
        # A shared outbox (the app's, spooled) or one of its own (retry, sleep: tests).
        self.outbox = outbox or MailOutbox(mailer, log, retry=retry, sleep=sleep)
        self._calls: OrderedDict[tuple[uuid.UUID, str], CallFacts] = OrderedDict()

    def attach(self, bus: EventBus) -> Callable[[], None]:
        """Subscribe to call starts, voicemails and ends; returns the unsubscribe."""
        offs = [bus.subscribe(kind, self._on_event) for kind in (CallStarted, VoicemailLeft)]
        offs.append(bus.subscribe(CallEnded, self._on_event))

        def off() -> None:
            for unsubscribe in offs:
                unsubscribe()

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
            self._calls.pop((event.account_id, event.call_id), None)
        elif isinstance(event, VoicemailLeft):
            if not event.notify and self.recipients is None:
                return
            left, facts = event, self._calls.get((event.account_id, event.call_id))
            self.outbox.submit(f"voicemail {event.call_id}", lambda: self._prepare(left, facts))

    async def _prepare(self, event: VoicemailLeft, facts: CallFacts | None) -> Mail | None:
        profile = await self.profiles(event.account_id)
        if profile is None:
            log.warning("voicemail %s: account not found, no e-mail", event.call_id)
            return None
        data = await asyncio.to_thread(_read, Path(event.path))
        subject, body = render_voicemail(event, facts, profile, attached=data is not None)
        attachments: tuple[Attachment, ...] = ()
        if data is not None:
            at = (facts.started_at if facts else event.occurred_at).astimezone(
                ZoneInfo(profile.time_zone) if _zone_ok(profile.time_zone) else ZoneInfo("UTC")
            )
            attachments = (Attachment(_filename(facts, at), "audio/wav", data),)
        addresses: Sequence[str] = event.notify
        if not addresses and self.recipients is not None:
            # A step that names nobody (a scheme's default final voicemail): the people who
            # hear of the account's missed calls hear of its messages too.
            found = self.recipients(event.account_id)
            addresses = await found if inspect.isawaitable(found) else found
        to = tuple(dict.fromkeys(a.strip() for a in addresses if a and a.strip()))
        return Mail(to=to, subject=subject, body=body, attachments=attachments) if to else None


def _zone_ok(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True
