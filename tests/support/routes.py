"""Unroll a live route (``Plan.route``) the way a call nobody answers would walk it."""

from __future__ import annotations

from dataclasses import dataclass

from zvonar.calls.plan import (
    CallStep,
    Enqueue,
    Menu,
    Plan,
    PlayPrompt,
    Reject,
    StepResult,
    StepResultKind,
    Wave,
)


@dataclass(frozen=True)
class Unrolled:
    waves: tuple[Wave, ...]
    final: Reject
    steps: tuple[CallStep, ...]
    path: tuple[str, ...]


async def unroll(plan: Plan, digits: str = "") -> Unrolled:
    """Every wave rings out, prompts play to the end, menus get ``digits`` one by one (then
    no input), queues overflow at once."""
    route = plan.route
    if route is None:
        return Unrolled(plan.waves, plan.final, tuple(plan.waves), plan.scheme_path)
    keys = list(digits)
    waves: list[Wave] = []
    steps: list[CallStep] = []
    result: StepResult | None = None
    for _ in range(200):
        step = await route.next(result)
        steps.append(step)
        if isinstance(step, Reject):
            return Unrolled(tuple(waves), step, tuple(steps), route.path)
        if isinstance(step, Wave):
            waves.append(step)
            result = StepResult(StepResultKind.no_answer)
        elif isinstance(step, PlayPrompt):
            result = StepResult(StepResultKind.completed)
        elif isinstance(step, Menu):
            result = (
                StepResult(StepResultKind.digit, digit=keys.pop(0))
                if keys
                else StepResult(StepResultKind.no_input)
            )
        elif isinstance(step, Enqueue):
            result = StepResult(StepResultKind.overflow)
    raise AssertionError("the route never ended")
