"""RFC 3261 §17 timer values (Table 4 of Appendix A) and the one deadline heap of the layer.

Sans-IO: nothing here reads a clock. Durations are seconds; deadlines are the caller's
monotonic `now` plus a duration. Cancellation is lazy: a cancelled handle stays in the
heap until it reaches the top (or the heap compacts), so cancel is O(1).
"""

from __future__ import annotations

import enum
import heapq
import itertools
from dataclasses import dataclass
from typing import Generic, Protocol, TypeAlias, TypeVar

__all__ = ["DeadlineHeap", "Timer", "TimerConfig", "TimerHandle", "TimerSlot", "TimerTarget"]


class Timer(enum.Enum):
    """The §17 timers, plus the UAS-core / TU helpers the transaction layer runs for the TU."""

    A = "A"  # INVITE client request retransmit (unreliable only), doubles without cap
    B = "B"  # INVITE client transaction timeout, 64*T1
    D = "D"  # INVITE client wait for response retransmits: >= 32 s unreliable, 0 reliable
    E = "E"  # non-INVITE client request retransmit (unreliable only), doubles to T2
    F = "F"  # non-INVITE client transaction timeout, 64*T1
    K = "K"  # non-INVITE client wait for response retransmits: T4 unreliable, 0 reliable
    G = "G"  # INVITE server final response retransmit (unreliable only), doubles to T2
    H = "H"  # INVITE server wait for ACK, 64*T1
    I = "I"  # noqa: E741 — RFC name. INVITE server absorb ACK retransmits: T4 / 0
    J = "J"  # non-INVITE server absorb request retransmits: 64*T1 unreliable, 0 reliable
    L = "L"  # RFC 6026 §8.7: INVITE server Accepted state, 64*T1
    M = "M"  # RFC 6026 §8.4: INVITE client Accepted state, 64*T1
    TRYING = "Trying"  # §17.2.1: send 100 Trying if the TU is silent this long
    CANCEL_GUARD = "Cancel"  # §9.1: no final response 64*T1 after CANCEL → give up the INVITE
    OK_RETRANSMIT = "2xx"  # §13.3.1.4: UAS core retransmits 2xx, T1 doubling to T2
    OK_TIMEOUT = "2xx-timeout"  # §13.3.1.4: no ACK for the 2xx within 64*T1


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """T1/T2/T4 (§17.1.1.1, Table 4) and the knobs derived from them.

    `rfc6026` enables the Accepted states of RFC 6026 (INVITE transactions live 64*T1
    after a 2xx, absorbing retransmitted INVITEs and passing 2xx retransmissions up);
    with it off the machines are exactly RFC 3261 Figures 5 and 7 (2xx → Terminated).
    """

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    timer_d: float = 32.0  # §17.1.1.2: "at least 32 seconds" over unreliable transports
    trying_delay: float = 0.1  # §17.2.1: the TU gets this long before we send 100 Trying
    rfc6026: bool = True

    def __post_init__(self) -> None:
        if not (self.t1 > 0 and self.t2 >= self.t1 and self.t4 > 0):
            raise ValueError("timer values need T1 > 0, T2 >= T1, T4 > 0")
        if self.timer_d < 0 or self.trying_delay < 0:
            raise ValueError("timer D and the Trying delay cannot be negative")

    @property
    def timeout(self) -> float:
        """64*T1: timers B, F, H, L, M, the CANCEL guard and the 2xx ACK wait."""
        return 64 * self.t1

    def d(self, reliable: bool) -> float:
        return 0.0 if reliable else self.timer_d

    def i(self, reliable: bool) -> float:
        return 0.0 if reliable else self.t4

    def j(self, reliable: bool) -> float:
        return 0.0 if reliable else self.timeout

    def k(self, reliable: bool) -> float:
        return 0.0 if reliable else self.t4

    def accepted(self) -> float:
        """Timers L and M: 64*T1 with RFC 6026, 0 (leave at once, RFC 3261) without."""
        return self.timeout if self.rfc6026 else 0.0


class TimerTarget(Protocol):
    """Anything the layer's heap can wake up: a transaction or a TU helper."""

    def on_timer(self, timer: Timer, now: float) -> None: ...


T = TypeVar("T")


class TimerHandle(Generic[T]):
    """One scheduled deadline. `active` turns False when cancelled or popped."""

    __slots__ = ("active", "deadline", "payload")

    def __init__(self, deadline: float, payload: T) -> None:
        self.deadline = deadline
        self.payload = payload
        self.active = True

    def __repr__(self) -> str:
        return f"TimerHandle({self.deadline!r}, {self.payload!r}, active={self.active})"


class DeadlineHeap(Generic[T]):
    """A min-heap of deadlines with lazy cancellation, FIFO among equal deadlines."""

    _COMPACT_MIN = 64

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, TimerHandle[T]]] = []
        self._order = itertools.count()
        self._live = 0

    def __len__(self) -> int:
        return self._live

    def push(self, deadline: float, payload: T) -> TimerHandle[T]:
        handle = TimerHandle(deadline, payload)
        heapq.heappush(self._heap, (deadline, next(self._order), handle))
        self._live += 1
        return handle

    def cancel(self, handle: TimerHandle[T]) -> None:
        if handle.active:
            handle.active = False
            self._live -= 1
            # Many cancelled long timers (B, F after an early response) would otherwise sit
            # in the heap for 32 s each; rebuild when they outnumber the live ones.
            dead = len(self._heap) - self._live
            if dead > self._COMPACT_MIN and dead > self._live:
                self._heap = [e for e in self._heap if e[2].active]
                heapq.heapify(self._heap)

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap and not heap[0][2].active:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> TimerHandle[T] | None:
        """Remove and return the earliest live handle whose deadline is <= now."""
        deadline = self.next_deadline()
        if deadline is None or deadline > now:
            return None
        handle = heapq.heappop(self._heap)[2]
        handle.active = False
        self._live -= 1
        return handle


TimerSlot: TypeAlias = TimerHandle[tuple[TimerTarget, Timer]]
