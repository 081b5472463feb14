"""What client and server transactions share (RFC 3261 §17): the layer they run on, and the
bookkeeping of their timers on its heap.

Both machines treat a timer the same way: only a running timer is an input (a stale or
foreign one is ignored), re-arming replaces it, and a zero-length timer (D/K/I/J over a
reliable transport, M/L without RFC 6026, 100 Trying at once) fires at once, queued behind
the transition that armed it so the machine runs it next.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Generic, Protocol, TypeAlias, TypeVar

from zvonar.sip.timers import Timer, TimerSlot, TimerTarget

__all__ = ["Address", "TimedTransaction", "TransportSink"]

Address: TypeAlias = tuple[str, int]

InputT = TypeVar("InputT", bound=enum.Enum)


class TransportSink(Protocol):
    """What any transaction needs from the layer that owns it: the wire and the timer heap."""

    def transmit(self, data: bytes, addr: Address) -> None: ...

    def schedule(self, target: TimerTarget, timer: Timer, deadline: float) -> TimerSlot: ...

    def unschedule(self, handle: TimerSlot) -> None: ...


class TimedTransaction(Generic[InputT]):
    """Timer bookkeeping for a transaction machine whose inputs are `InputT`.

    A subclass sets `_timer_inputs` (class level: which input each timer is), `_timers` and
    `_sink` (in `__init__`), and implements `_feed` (run an input now) and `_queue` (run an
    input after the transition in progress).
    """

    _timer_inputs: Mapping[Timer, InputT]
    _timers: dict[Timer, TimerSlot]
    _sink: TransportSink

    @property
    def timers(self) -> frozenset[Timer]:
        """The timers running now (for tests and invariants)."""
        return frozenset(t for t, h in self._timers.items() if h.active)

    def on_timer(self, timer: Timer, now: float) -> None:
        # Only a running timer is an input: a stale or foreign one is ignored.
        handle = self._timers.pop(timer, None)
        if handle is None:
            return
        self._sink.unschedule(handle)  # no-op when the heap popped it
        inp = self._timer_inputs.get(timer)
        if inp is not None:
            self._feed(inp, now, None)

    def _feed(self, inp: InputT, now: float, msg: None) -> object:
        raise NotImplementedError

    def _queue(self, inp: InputT, msg: None) -> None:
        raise NotImplementedError

    def _arm(self, timer: Timer, duration: float, now: float) -> None:
        old = self._timers.pop(timer, None)
        if old is not None:
            self._sink.unschedule(old)
        if duration <= 0:
            self._queue(self._timer_inputs[timer], None)  # fires at once (see module doc)
            return
        self._timers[timer] = self._sink.schedule(self, timer, now + duration)

    def _stop_timers(self) -> None:
        for handle in self._timers.values():
            self._sink.unschedule(handle)
        self._timers.clear()
