"""Background delivery with retries, shared by every notifier.

A notifier's bus handler only submits work here and returns, so publishing a call event never
waits for a mail server; a failing server is retried with back-off and finally logged, never
raised into the bus. With a spool (spool.py) a mail outlives the process that prepared it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from zvonar.core.tasks import cancel
from zvonar.notify.mailer import Mail, Mailer
from zvonar.notify.spool import MailSpool, load_mail
from zvonar.store.base import utcnow

# How often a running process looks for mails nobody delivers (another process died).
RESUME_EVERY = 30.0


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries in all; the n-th retry waits ``first_delay * factor**(n-1)`` seconds,
    at most ``max_delay`` (defaults: 5 s, 15 s, 45 s, 135 s, 405 s: about ten minutes)."""

    attempts: int = 6
    first_delay: float = 5.0
    factor: float = 3.0
    max_delay: float = 600.0

    def delays(self) -> list[float]:
        return [
            min(self.first_delay * self.factor**n, self.max_delay)
            for n in range(max(self.attempts - 1, 0))
        ]


class MailOutbox:
    """Delivers mails in the background, retrying by ``retry``. With a ``spool`` every mail is
    kept in the database until sent (spool.py): :meth:`start` resumes what an earlier or
    another process left, and :meth:`aclose` leaves what is still failing to the next start.
    Without one (tests, a process with no database) the queue lives in memory."""

    def __init__(
        self,
        mailer: Mailer,
        log: logging.Logger,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        spool: MailSpool | None = None,
        clock: Callable[[], datetime] = utcnow,
        resume_every: float = RESUME_EVERY,
    ) -> None:
        self.mailer = mailer
        self.log = log
        self.retry = retry or RetryPolicy()
        self.spool = spool
        self.resume_every = resume_every
        self._sleep = sleep
        self._clock = clock
        # Each delivery: what it is (for the log) and its spooled row once it has one.
        self._tasks: dict[asyncio.Task[None], str] = {}
        self._rows: dict[asyncio.Task[None], uuid.UUID] = {}
        self._resumer: asyncio.Task[None] | None = None
        self.delivered = 0
        self.given_up = 0
        self.resumed = 0

    def submit(self, what: str, prepare: Callable[[], Awaitable[Mail | None]]) -> None:
        """Prepare (None: nothing to send) and deliver in the background; ``what`` names it
        in the log, e.g. ``"missed call c-1"``."""
        self._spawn(what, self._deliver(what, prepare))

    def _spawn(self, what: str, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks[task] = what

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.pop(t, None)
            self._rows.pop(t, None)

        task.add_done_callback(done)

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def start(self) -> None:
        """Resume spooled mails now and every ``resume_every`` seconds (those of a process
        that stopped or died); nothing without a spool."""
        if self.spool is not None and self._resumer is None:
            self._resumer = asyncio.get_running_loop().create_task(
                self._resume_forever(), name="mail-resume"
            )

    async def drain(self) -> None:
        """Wait until every queued mail is delivered or given up (tests, graceful shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        """Stop retrying: cancel what is still queued, and say so. Spooled mails are released
        for the next start; without a spool they are lost, and the log is where the account's
        admin learns which ones to follow up by hand."""
        await cancel(self._resumer)
        self._resumer = None
        tasks = list(self._tasks)
        rows = dict(self._rows)
        for task in sorted(tasks, key=lambda t: self._tasks.get(t, "")):
            what = self._tasks.get(task, "?")
            if task in rows:
                self.log.warning("%s: e-mail not delivered yet, kept for the next start", what)
            else:
                self.log.warning("%s: e-mail not delivered, dropped at shutdown", what)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.spool is not None and rows:
            try:
                await self.spool.release(list(rows.values()))
            except Exception:  # their claims run out by themselves (CLAIM_MARGIN)
                self.log.warning(
                    "mail spool: releasing %d mail(s) failed", len(rows), exc_info=True
                )

    async def resume(self) -> int:
        """Claim and deliver what the spool holds for nobody; how many were taken."""
        assert self.spool is not None
        now = self._clock()
        try:
            await self.spool.purge(now)
            found = await self.spool.claim_due(now, busy=frozenset(self._rows.values()))
        except Exception:
            self.log.warning("mail spool: reading it failed, will retry", exc_info=True)
            return 0
        for row in found:
            try:
                mail = load_mail(row.message)
            except (ValueError, KeyError, TypeError) as exc:
                self.log.error("%s: spooled e-mail unreadable, giving up: %s", row.what, exc)
                await self._recorded(
                    self.spool.gave_up(row.id, row.attempts, f"unreadable: {exc}", now),
                    "recording a give-up",
                )
                continue
            self.resumed += 1
            self._spawn(row.what, self._attempts(row.what, mail, row.id, row.attempts))
        return len(found)

    async def _resume_forever(self) -> None:
        while True:
            await self.resume()
            await asyncio.sleep(self.resume_every)

    async def _deliver(self, what: str, prepare: Callable[[], Awaitable[Mail | None]]) -> None:
        try:
            mail = await prepare()
        except asyncio.CancelledError:
            raise
        except Exception:
            self.log.exception("%s: could not prepare the e-mail", what)
            self.given_up += 1
            return
        if mail is None:
            return
        row: uuid.UUID | None = None
        if self.spool is not None:
            try:
                row = await self.spool.add(what, mail, self._clock())
            except Exception:  # the database is down: deliver anyway, from memory
                self.log.warning(
                    "%s: e-mail not spooled, delivering from memory", what, exc_info=True
                )
        await self._attempts(what, mail, row, 0)

    async def _attempts(self, what: str, mail: Mail, row: uuid.UUID | None, made: int) -> None:
        """Try until sent or ``retry`` runs out; ``made`` attempts were made before (a mail
        resumed from the spool goes on with its back-off where it stopped)."""
        spool = self.spool if row is not None else None  # what to record each attempt in
        task = asyncio.current_task()
        if row is not None and task is not None:
            self._rows[task] = row
        delays = self.retry.delays()
        while True:
            try:
                await self.mailer.send(mail)
            except Exception as exc:  # MailError, or a bug in a mailer: never into the bus
                made += 1
                if made > len(delays):
                    self.log.error("%s: e-mail not delivered, giving up: %s", what, exc)
                    self.given_up += 1
                    if spool is not None and row is not None:
                        await self._recorded(
                            spool.gave_up(row, made, str(exc), self._clock()),
                            "recording a give-up",
                        )
                    return
                delay = delays[made - 1]
                self.log.warning(
                    "%s: e-mail attempt %d failed, retrying in %.0f s: %s", what, made, delay, exc
                )
                if spool is not None and row is not None:
                    next_at = self._clock() + timedelta(seconds=delay)
                    await self._recorded(
                        spool.failed_attempt(row, made, str(exc), next_at),
                        "recording an attempt",
                    )
                await self._sleep(delay)
            else:
                self.delivered += 1
                if spool is not None and row is not None:
                    # Failing, the mail is sent once more after its claim runs out: better
                    # than never.
                    await self._recorded(spool.delivered(row), "forgetting a sent mail")
                return

    async def _recorded(self, write: Awaitable[None], doing: str) -> None:
        """A spool write that must not stop the delivery: the database may be down too."""
        try:
            await write
        except Exception:
            self.log.warning("mail spool: %s failed", doing, exc_info=True)


class OutboxUser:
    """A notifier that delivers through ``self.outbox``: its counters and lifecycle."""

    outbox: MailOutbox

    @property
    def delivered(self) -> int:
        return self.outbox.delivered

    @property
    def given_up(self) -> int:
        return self.outbox.given_up

    @property
    def pending(self) -> int:
        return self.outbox.pending

    async def drain(self) -> None:
        """Wait until every queued mail is delivered or given up (tests, graceful shutdown)."""
        await self.outbox.drain()

    async def aclose(self) -> None:
        """Stop retrying: cancel what is still queued."""
        await self.outbox.aclose()
