"""core/eager.py: a task whose first step runs inside the code that starts it."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from zvonar.core.eager import start_eager

MARK: contextvars.ContextVar[str] = contextvars.ContextVar("mark", default="outside")


async def from_a_callback(start: Callable[[], asyncio.Task[Any]]) -> asyncio.Task[Any]:
    """Run ``start`` as a plain loop callback (no task current: a transport's handler)."""
    loop = asyncio.get_running_loop()
    started: asyncio.Future[asyncio.Task[Any]] = loop.create_future()
    loop.call_soon(lambda: started.set_result(start()))
    return await started


def eager(coro: Coroutine[Any, Any, Any]) -> Callable[[], asyncio.Task[Any]]:
    return lambda: start_eager(asyncio.get_running_loop(), coro, name="eager")


async def test_the_first_step_runs_before_it_returns_as_the_task_and_the_rest_follows() -> None:
    seen: list[tuple[str, asyncio.Task[Any] | None]] = []

    async def work() -> int:
        seen.append(("first", asyncio.current_task()))
        await asyncio.sleep(0)
        seen.append(("second", asyncio.current_task()))
        return 42

    def start() -> asyncio.Task[Any]:
        task = start_eager(asyncio.get_running_loop(), work(), name="eager")
        seen.append(("returned", task))
        return task

    task = await from_a_callback(start)
    assert await task == 42
    assert seen == [("first", task), ("returned", task), ("second", task)]
    assert task.get_name() == "eager"
    assert asyncio.current_task() is not task  # the caller's task is current again


async def test_a_timeout_entered_in_the_first_step_fires_in_the_task() -> None:
    async def work() -> None:
        async with asyncio.timeout(0.01):  # needs a current task: the eager step has one
            await asyncio.sleep(5)

    task = await from_a_callback(eager(work()))
    with pytest.raises(TimeoutError):
        await task


async def test_cancelled_before_its_next_step_the_coroutine_still_cleans_up() -> None:
    cleaned: list[str] = []

    async def work() -> None:
        try:
            await asyncio.sleep(5)
        finally:
            cleaned.append("finally")

    def start() -> asyncio.Task[Any]:
        task = eager(work())()
        task.cancel()
        return task

    task = await from_a_callback(start)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["finally"]


async def test_a_coroutine_that_ends_or_fails_in_its_first_step_ends_its_task_so() -> None:
    async def ends() -> str:
        return "done"

    async def fails() -> None:
        raise ValueError("no route")

    assert await (await from_a_callback(eager(ends()))) == "done"
    failing = await from_a_callback(eager(fails()))  # not raised out of start_eager
    with pytest.raises(ValueError, match="no route"):
        await failing


async def test_the_first_step_runs_in_the_tasks_own_context() -> None:
    async def work() -> str:
        MARK.set("inside")
        await asyncio.sleep(0)
        return MARK.get()

    task = await from_a_callback(eager(work()))
    assert await task == "inside"
    assert MARK.get() == "outside"


async def test_inside_a_running_task_it_is_a_plain_task() -> None:
    ran: list[str] = []

    async def work() -> None:
        ran.append("ran")

    task = start_eager(asyncio.get_running_loop(), work())
    assert ran == []  # scheduled, as create_task does: this task is still running
    await task
    assert ran == ["ran"]
