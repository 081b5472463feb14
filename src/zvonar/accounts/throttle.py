"""Password-guessing brake for web sign-in: failures per address and per source in a window.

Pure and clock-injected. Counting per email stops slow guessing of one account from many
sources; counting per source stops one source spraying many accounts. A successful sign-in
clears the email's count, not the source's.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass


@dataclass(frozen=True)
class ThrottleConfig:
    window: float = 900.0
    max_per_email: int = 5
    max_per_source: int = 30
    max_keys: int = 100_000


class LoginThrottle:
    def __init__(self, config: ThrottleConfig | None = None) -> None:
        self.config = config or ThrottleConfig()
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._failures.get(key)
        if q is None:
            return deque()
        while q and q[0] <= now - self.config.window:
            q.popleft()
        if not q:
            del self._failures[key]
        return q

    def retry_after(self, email: str, source: str | None, now: float) -> float | None:
        """Seconds until a new attempt is allowed, or None if it is allowed now."""
        waits = []
        for key, limit in self._keys(email, source):
            q = self._recent(key, now)
            if len(q) >= limit:
                waits.append(q[0] + self.config.window - now)
        return max(waits) if waits else None

    def failed(self, email: str, source: str | None, now: float) -> None:
        for key, _limit in self._keys(email, source):
            q = self._failures.setdefault(key, deque())
            q.append(now)
            self._failures.move_to_end(key)
        while len(self._failures) > self.config.max_keys:
            self._failures.popitem(last=False)

    def succeeded(self, email: str) -> None:
        self._failures.pop(f"email:{email}", None)

    def _keys(self, email: str, source: str | None) -> list[tuple[str, int]]:
        keys = [(f"email:{email}", self.config.max_per_email)]
        if source:
            keys.append((f"source:{source}", self.config.max_per_source))
        return keys
