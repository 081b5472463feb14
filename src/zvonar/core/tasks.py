"""Background tasks of long-lived services."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def cancel(task: asyncio.Task[Any] | None) -> None:
    """Stop a service's background task and wait until it has (its ``finally`` blocks ran);
    None, or a task already done, is nothing to do."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
