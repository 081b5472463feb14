"""Background delivery with retries, shared by every notifier.

A notifier's bus handler only submits work here and returns, so publishing a call event never
waits for a mail server; a failing server is retried with back-off and finally logged, never
raised into the bus.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from zvonar.notify.mailer import Mail, Mailer


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
    def __init__(
        self,
        mailer: Mailer,
        log: logging.Logger,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.mailer = mailer
        self.log = log
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._tasks: dict[asyncio.Task[None], str] = {}  # what each is, for the log
        self.delivered = 0
        self.given_up = 0

    def submit(self, what: str, prepare: Callable[[], Awaitable[Mail | None]]) -> None:
        """Prepare (None: nothing to send) and deliver in the background; ``what`` names it
        in the log, e.g. ``"missed call c-1"``."""
        task = asyncio.get_running_loop().create_task(self._deliver(what, prepare))
        self._tasks[task] = what
        task.add_done_callback(lambda done: self._tasks.pop(done, None))

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def drain(self) -> None:
        """Wait until every queued mail is delivered or given up (tests, graceful shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        """Stop retrying: cancel what is still queued, and say so. The queue lives in memory:
        a mail still failing at shutdown is not sent after a restart, and the log is where
        the account's admin learns which ones to follow up by hand."""
        tasks = list(self._tasks)
        for what in sorted(self._tasks.values()):
            self.log.warning("%s: e-mail not delivered, dropped at shutdown", what)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

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
        delays = self.retry.delays()
        for attempt in range(len(delays) + 1):
            try:
                await self.mailer.send(mail)
            except Exception as exc:  # MailError, or a bug in a mailer: never into the bus
                if attempt == len(delays):
                    self.log.error("%s: e-mail not delivered, giving up: %s", what, exc)
                    self.given_up += 1
                    return
                self.log.warning(
                    "%s: e-mail attempt %d failed, retrying in %.0f s: %s",
                    what,
                    attempt + 1,
                    delays[attempt],
                    exc,
                )
                await self._sleep(delays[attempt])
            else:
                self.delivered += 1
                return


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
