"""KPI arithmetic over queue facts."""

from __future__ import annotations

import pytest

from zvonar.acd.facts import (
    FactKind,
    OverflowReason,
    QueueFact,
    abandonment_rate,
    asa,
    service_level,
)

K = FactKind


def f(kind: FactKind, wait: float | None = None, reason: OverflowReason | None = None) -> QueueFact:
    return QueueFact(kind, "q", "c", 0.0, wait, reason)


FACTS = [
    f(K.entered),
    f(K.callback_requested),
    f(K.answered, 5),
    f(K.answered, 20),
    f(K.answered, 21),
    f(K.abandoned, 3),
    f(K.abandoned, 40),
    f(K.overflowed, 60, OverflowReason.max_wait),
]


def test_service_level_counts_handled_calls() -> None:
    # handled = 3 answered + 2 abandoned + 1 overflowed; within 20 s: 2
    assert service_level(FACTS, 20) == pytest.approx(2 / 6)
    assert service_level(FACTS, 20, short_abandon=5) == pytest.approx(2 / 5)
    assert service_level(FACTS, 0) == 0.0
    assert service_level([f(K.entered)], 20) is None


def test_asa_and_abandonment() -> None:
    assert asa(FACTS) == pytest.approx(46 / 3)
    assert asa([f(K.abandoned, 1)]) is None
    assert abandonment_rate(FACTS) == pytest.approx(2 / 6)
    assert abandonment_rate(FACTS, short_abandon=5) == pytest.approx(1 / 5)
    assert abandonment_rate([]) is None


def test_facts_validate_their_fields() -> None:
    with pytest.raises(ValueError):
        f(K.answered)
    with pytest.raises(ValueError):
        f(K.abandoned, -1)
    with pytest.raises(ValueError):
        f(K.overflowed, 1)
    with pytest.raises(ValueError):
        f(K.answered, 1, OverflowReason.max_wait)
