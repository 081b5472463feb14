"""The routing error tree.

Scheme and calendar problems are :class:`~zvonar.core.errors.InvalidInput` with a stable ``code``
and ``details["path"]`` naming the place (``branches.working[2].targets[0].group``), so the API
and ``zvonar config apply`` point at the same spot. Misuse of the interpreter is a bug in the
orchestrator, not bad input, hence its own class.
"""

from __future__ import annotations

from typing import Any

from zvonar.core.errors import InvalidInput, ZvonarError


class SchemeInvalid(InvalidInput):
    """A scheme definition breaks a rule of form (``invalid_scheme``) or of structure
    (``goto_cycle``, ``unknown_scheme``, ``too_deep``)."""

    code = "invalid_scheme"

    def __init__(self, message: str, *, path: str, code: str | None = None, **details: Any) -> None:
        super().__init__(f"{path}: {message}" if path else message, code=code, path=path, **details)


class CalendarInvalid(InvalidInput):
    code = "invalid_calendar"

    def __init__(self, message: str, *, path: str, code: str | None = None, **details: Any) -> None:
        super().__init__(f"{path}: {message}" if path else message, code=code, path=path, **details)


class RoutingStateError(ZvonarError):
    """The orchestrator fed the interpreter an outcome its current state cannot take."""

    code = "routing_state"
