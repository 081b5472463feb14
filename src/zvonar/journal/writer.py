"""Write-behind for the journal: the call path only enqueues, a background task writes batches.

The B2BUA awaits ``bus.publish`` for every call event, so the journal's bus handler must cost
nothing: :meth:`JournalWriter.submit` appends to a queue (O(1), no I/O) and returns. One writer
task, started lazily in the running loop, drains the queue in batches of up to ``max_batch``
events: it waits at most ``interval`` after the first queued event for more to arrive, then
applies the batch in order in one transaction (:class:`~zvonar.journal.consumer.JournalConsumer`).

Guarantees (``interval`` defaults to 25 ms):
- a call's row exists at most ``interval`` plus one batch's write time after its
  ``CallStarted`` was published (more only while the database is slower than the call rate);
  likewise its ``CallAnswered``, so a process killed later still has the answered call, and
  recovery at the next start finalizes it;
- a batch that fails on a transient database error (connection lost, locked, pool timeout) is
  retried with back-off, in order, losing nothing; any other error (a poison event, an
  account that does not exist) makes the writer apply that batch's events one by one, so the
  one bad event is logged and dropped and the rest are written;
- the queue is bounded: when full, the publisher waits up to ``put_timeout`` for room (back
  pressure on the call path, logged), then the event is dropped and counted in ``dropped``.

:meth:`flush` waits until everything queued so far is written (reads, tests and shutdown use
it); :meth:`aclose` flushes (bounded by a timeout) and stops the task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence

from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection

from zvonar.calls.events import CallEvent
from zvonar.journal.consumer import JournalConsumer

log = logging.getLogger(__name__)


def transient(exc: BaseException) -> bool:
    """A database error that retrying the same statements may cure."""
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeout | OSError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def _crashed(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        # The next submit or flush starts a new task; say why this one stopped.
        log.error("journal: writer task failed", exc_info=task.exception())


class JournalWriter:
    def __init__(
        self,
        consumer: JournalConsumer,
        *,
        max_batch: int = 200,
        interval: float = 0.025,
        max_queue: int = 100_000,
        put_timeout: float = 2.0,
        retry_first: float = 0.05,
        retry_max: float = 2.0,
        close_timeout: float = 10.0,
    ) -> None:
        self.consumer = consumer
        self.max_batch = max_batch
        self.interval = interval
        self.max_queue = max_queue
        self.put_timeout = put_timeout
        self.retry_first = retry_first
        self.retry_max = retry_max
        self.close_timeout = close_timeout
        self._queue: deque[CallEvent] = deque()
        self._enqueued = 0  # sequence number of the last queued event
        self._done = 0  # ... of the last one written (or dropped as poison)
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # The writer task's own connection, kept between batches: taking one from the pool
        # for every batch cost a liveness ping and a reset round trip each time (PostgreSQL:
        # a third of a small batch's CPU). Dropped on any failure (the retry reconnects) and
        # closed when the task ends.
        self._conn: AsyncConnection | None = None
        self._wake = asyncio.Event()  # something was queued
        self._hurry = asyncio.Event()  # a flush waits, or a full batch is queued: no lingering
        self._room = asyncio.Event()  # the queue has room again
        self.dropped = 0  # events lost to a full queue
        self.poisoned = 0  # events that failed alone and were dropped
        self.written = 0  # events applied
        self.batches = 0

    @property
    def pending(self) -> int:
        return self._enqueued - self._done

    # --- the call path ------------------------------------------------------------------------
    def submit(self, event: CallEvent) -> bool:
        """Queue ``event``; False when the queue is full (nothing queued)."""
        if len(self._queue) >= self.max_queue:
            return False
        self._ensure_started()
        self._queue.append(event)
        self._enqueued += 1
        self._wake.set()
        if len(self._queue) >= self.max_batch:
            self._hurry.set()
        return True

    async def put(self, event: CallEvent) -> None:
        """Queue ``event``, waiting up to ``put_timeout`` for room when the queue is full."""
        if self.submit(event):
            return
        log.warning("journal: write queue full (%d events); the call path waits", self.max_queue)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.put_timeout):
                while not self.submit(event):
                    self._room.clear()
                    await self._room.wait()
                return
        self.dropped += 1
        log.error("journal: %s of call %s dropped: queue full", event.event_type, event.call_id)

    # --- lifecycle ----------------------------------------------------------------------------
    def _ensure_started(self) -> None:
        loop = asyncio.get_running_loop()
        if self._task is not None and not self._task.done() and self._loop is loop:
            return
        if self._loop is not loop:
            # First use, or a new loop (the old one is gone with its task): fresh primitives.
            self._loop = loop
            self._conn = None  # bound to the old loop
            self._wake, self._hurry, self._room = asyncio.Event(), asyncio.Event(), asyncio.Event()
            self._waiters = []
        if self._queue:
            self._wake.set()
        self._task = loop.create_task(self._run(), name="journal-writer")
        self._task.add_done_callback(_crashed)

    async def flush(self) -> None:
        """Wait until every event queued before this call is written; returns at once when
        nothing is pending (also when the writer never started)."""
        target = self._enqueued
        if self._done >= target:
            return
        self._ensure_started()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, fut))
        self._hurry.set()
        await fut

    async def aclose(self) -> None:
        """Flush (at most ``close_timeout`` seconds), then stop the writer task."""
        try:
            async with asyncio.timeout(self.close_timeout):
                await self.flush()
        except TimeoutError:
            log.error("journal: %d event(s) not written at shutdown", self.pending)
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # --- the writer task ----------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            await self._drain()
        finally:
            await self._disconnect()

    async def _connection(self) -> AsyncConnection:
        conn = self._conn
        if conn is None or conn.closed or conn.invalidated:
            conn = self._conn = await self.consumer.db.engine.connect()
        return conn

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # a broken connection: nothing to give back
                await conn.close()

    async def _drain(self) -> None:
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            if not self._hurry.is_set():
                # Linger so one transaction carries many events (bounded latency: interval).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.interval):
                        await self._hurry.wait()
            n = min(len(self._queue), self.max_batch)
            batch = [self._queue.popleft() for _ in range(n)]
            self._room.set()
            await self._write(batch)
            self.batches += 1
            self._done += n
            self._release()
            if not self._waiters and len(self._queue) < self.max_batch:
                self._hurry.clear()

    def _release(self) -> None:
        keep: list[tuple[int, asyncio.Future[None]]] = []
        for target, fut in self._waiters:
            if target <= self._done:
                if not fut.done():
                    fut.set_result(None)
            else:
                keep.append((target, fut))
        self._waiters = keep

    async def _write(self, batch: Sequence[CallEvent]) -> None:
        delay = self.retry_first
        while True:
            try:
                await self.consumer.apply(batch, await self._connection())
            except Exception as exc:
                await self._disconnect()
                if not transient(exc):
                    failure = exc
                    break
                log.warning("journal: database unavailable (%s); retrying in %.2fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max)
            else:
                self.written += len(batch)
                return
        if len(batch) > 1:
            log.warning("journal: a batch of %d events failed; writing them one by one", len(batch))
            for event in batch:
                await self._write([event])
            return
        event = batch[0]
        self.poisoned += 1
        if isinstance(failure, IntegrityError):  # e.g. a call of an account that does not exist
            log.warning("journal: %s for call %s not stored", event.event_type, event.call_id)
        else:
            log.error(
                "journal: %s for call %s dropped", event.event_type, event.call_id, exc_info=failure
            )
