"""Start a task with its first step run at once, inside the caller (Python 3.12's eager tasks).

``loop.create_task`` only schedules a task's first step: it runs after every callback already
in the loop's ready queue, among them the steps of other tasks that the same round of I/O woke.
For a new call that wait is most of its post-dial delay's tail (issue #5: an INVITE waiting
behind other calls' 1-7 ms steps). :func:`start_eager` runs the first step right away, up to
the coroutine's first real suspension, as the task it returns: ``asyncio.current_task()`` is
that task meanwhile, so ``asyncio.timeout`` and cancellation behave as in any task. The task
then carries on from that suspension like any other.

Python 3.12 has this as ``asyncio.eager_task_factory``; 3.11 does not, so the step is run
between the private ``asyncio.tasks._enter_task``/``_leave_task`` (what a task's own step does).
Where a task is already running (a test's coroutine, a task that starts another), nothing is
run early: the task is created as usual.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar

__all__ = ["start_eager"]

T = TypeVar("T")

_NOTHING: Any = object()


class _Continued(Coroutine[Any, Any, T]):
    """The task's coroutine: hands the task the suspension the eager step stopped at, then
    forwards everything (values, cancellation) to the real coroutine."""

    __slots__ = ("_coro", "_error", "_first", "_result")

    def __init__(self, coro: Coroutine[Any, Any, T]) -> None:
        self._coro = coro
        self._first: Any = _NOTHING  # what the eager step yielded (a future, or None)
        self._result: Any = _NOTHING  # the coroutine's value, when the eager step finished it
        self._error: BaseException | None = None  # ... or what it raised

    def step(self) -> None:
        """The eager step: run the coroutine to its first suspension (or its end)."""
        try:
            self._first = self._coro.send(None)
        except StopIteration as stop:
            self._result = stop.value
        except BaseException as exc:  # the task raises it, as its first step would have
            self._error = exc

    def send(self, value: Any) -> Any:
        first = self._first
        if first is not _NOTHING:
            self._first = _NOTHING
            return first  # the task now waits for what the coroutine waits for
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        if self._result is not _NOTHING:
            raise StopIteration(self._result)
        return self._coro.send(value)

    def throw(self, *exc: Any) -> Any:
        # Cancelled before its first scheduled step: still thrown in where the coroutine
        # waits, so its own handlers and finally clauses run.
        self._first = _NOTHING
        return self._coro.throw(*exc)

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, None, T]:
        raise TypeError("an eagerly started coroutine is run by its task only")


def start_eager(
    loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T], *, name: str | None = None
) -> asyncio.Task[T]:
    """A task running ``coro`` whose first step has already run (see the module docstring);
    a plain ``create_task`` when a task is running now."""
    if asyncio.current_task(loop) is not None:
        return loop.create_task(coro, name=name)
    continued = _Continued(coro)
    context = contextvars.copy_context()
    task = loop.create_task(continued, name=name, context=context)
    asyncio.tasks._enter_task(loop, task)
    try:
        context.run(continued.step)
    finally:
        asyncio.tasks._leave_task(loop, task)
    return task
