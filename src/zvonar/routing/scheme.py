"""The forwarding-scheme data model: schedule branches holding steps, and its structural rules.

A :class:`Scheme` maps a :class:`~zvonar.routing.schedule.Branch` to a tuple of steps. Steps are
a tagged union of frozen dataclasses; the interpreter (``engine``) runs them in order, each one
moving on when it ends without a connected call. A branch the scheme leaves out falls back:
holiday → off → working, so a scheme with only ``working`` steps rings the same way at any hour.
When the steps run out the scheme's ``final`` step (voicemail unless set to hang up) ends the
call: a caller never hears a busy tone while a step remains.

Targets name directory objects by their natural keys (an employee's extension, a group's name),
the same keys ``zvonar config`` files use. The plain-data form lives in ``scheme_codec``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from zvonar.routing.errors import SchemeInvalid
from zvonar.routing.schedule import Branch
from zvonar.routing.strategies import Strategy

MAX_GOTO_HOPS = 10  # a call following more "go to scheme" steps than this ends (final step)
MAX_NESTING = 3  # caller rules / HTTP fallbacks inside each other
MAX_STEPS = 50
MAX_TARGETS = 100


class TargetKind(enum.StrEnum):
    employee = "employee"
    group = "group"
    number = "number"
    sip = "sip"


@dataclass(frozen=True)
class Target:
    """Something to ring: an employee (extension), a group (name), an E.164 number, a SIP URI."""

    kind: TargetKind
    ref: str
    timeout: float | None = None  # overrides the step's per-target timeout

    @property
    def key(self) -> str:
        return f"{self.kind.value}:{self.ref}"


@dataclass(frozen=True)
class RingStep:
    """Ring ``targets``. ``strategy`` None: a lone group rings by its own strategy, anything
    else all at once. ``timeout``: how long an all-at-once wave rings, and the cap on the whole
    step for one-at-a-time strategies (None: no cap). ``target_timeout``: each target's turn in
    one-at-a-time strategies."""

    targets: tuple[Target, ...]
    strategy: Strategy | None = None
    timeout: float | None = None
    target_timeout: float = 15.0
    label: str | None = None

    DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class PlayStep:
    prompt: str
    label: str | None = None


@dataclass(frozen=True)
class VoicemailStep:
    """Take a message; the recording is mailed to ``notify``. Ends the call."""

    greeting: str | None = None
    notify: tuple[str, ...] = ()
    label: str | None = None


@dataclass(frozen=True)
class GotoStep:
    scheme: str
    label: str | None = None


@dataclass(frozen=True)
class HangupStep:
    label: str | None = None


@dataclass(frozen=True)
class QueueStep:
    """Placeholder until queues land (issue 6): the orchestrator reports answered or not."""

    queue: str
    timeout: float | None = None
    label: str | None = None


@dataclass(frozen=True)
class IvrStep:
    """Placeholder until IVR menus land (issue 6)."""

    menu: str
    label: str | None = None


@dataclass(frozen=True)
class CallerRule:
    """When the caller carries any of ``tags`` (``unknown``: not in the contact directory), run
    ``steps`` and then carry on after the rule step, or go to ``scheme``."""

    tags: frozenset[str]
    steps: tuple[Step, ...] = ()
    scheme: str | None = None


@dataclass(frozen=True)
class CallerRuleStep:
    rules: tuple[CallerRule, ...]
    default_steps: tuple[Step, ...] = ()
    default_scheme: str | None = None
    label: str | None = None


@dataclass(frozen=True)
class HttpRouteStep:
    """Ask the customer's back office; a timeout, an error or an unusable reply runs
    ``fallback`` (then the steps after this one)."""

    url: str
    timeout: float = 3.0
    fallback: tuple[Step, ...] = ()
    label: str | None = None


Step = (
    RingStep
    | PlayStep
    | VoicemailStep
    | GotoStep
    | HangupStep
    | QueueStep
    | IvrStep
    | CallerRuleStep
    | HttpRouteStep
)
FinalStep = VoicemailStep | HangupStep
RINGING_STEPS = (RingStep, QueueStep, IvrStep)

_FALLBACK = {
    Branch.working: (Branch.working,),
    Branch.off: (Branch.off, Branch.working),
    Branch.holiday: (Branch.holiday, Branch.off, Branch.working),
}


@dataclass(frozen=True)
class Scheme:
    name: str
    branches: Mapping[Branch, tuple[Step, ...]]
    final: FinalStep = field(default_factory=VoicemailStep)

    def steps_for(self, branch: Branch) -> tuple[Branch, tuple[Step, ...]]:
        """The branch that applies (after fallback) and its steps."""
        for b in _FALLBACK[branch]:
            if b in self.branches:
                return b, self.branches[b]
        return branch, ()


# --- structure ------------------------------------------------------------------------------------


def children(step: Step) -> Iterator[tuple[str, tuple[Step, ...]]]:
    """Nested step lists of a step, with their path suffix."""
    if isinstance(step, CallerRuleStep):
        for i, rule in enumerate(step.rules):
            yield f".rules[{i}].steps", rule.steps
        yield ".default_steps", step.default_steps
    elif isinstance(step, HttpRouteStep):
        yield ".fallback", step.fallback


def goto_targets(step: Step) -> Iterator[str]:
    if isinstance(step, GotoStep):
        yield step.scheme
    elif isinstance(step, CallerRuleStep):
        yield from (r.scheme for r in step.rules if r.scheme is not None)
        if step.default_scheme is not None:
            yield step.default_scheme


def walk(steps: tuple[Step, ...], path: str, depth: int = 0) -> Iterator[tuple[str, Step, int]]:
    for i, step in enumerate(steps):
        here = f"{path}[{i}]"
        yield here, step, depth
        for suffix, inner in children(step):
            yield from walk(inner, here + suffix, depth + 1)


def _edges(scheme: Scheme) -> Iterator[tuple[str, str, bool]]:
    """``(path, target scheme, rang before)``: whether a ringing step surely or possibly ran
    before the jump on that path. Anything that may ring counts: a loop through it waits on
    people and is bounded at run time by ``MAX_GOTO_HOPS``."""

    def visit(steps: tuple[Step, ...], path: str, rang: bool) -> Iterator[tuple[str, str, bool]]:
        for i, step in enumerate(steps):
            here = f"{path}[{i}]"
            for target in goto_targets(step):
                yield here, target, rang
            for suffix, inner in children(step):
                yield from visit(inner, here + suffix, rang)
            if isinstance(step, RINGING_STEPS) or (
                isinstance(step, CallerRuleStep | HttpRouteStep)
                and any(isinstance(s, RINGING_STEPS) for _, s, _ in walk((step,), ""))
            ):
                rang = True

    for branch, steps in scheme.branches.items():
        yield from visit(steps, f"branches.{branch.value}", False)


def validate_scheme(scheme: Scheme) -> None:
    """Rules of one scheme on its own: sizes and nesting depth."""
    if not any(scheme.branches.values()):
        raise SchemeInvalid(
            "a scheme needs at least one step", path="branches", code="empty_scheme"
        )
    for branch, steps in scheme.branches.items():
        for path, step, depth in walk(steps, f"branches.{branch.value}"):
            if depth > MAX_NESTING:
                raise SchemeInvalid(
                    f"nested deeper than {MAX_NESTING} levels", path=path, code="too_deep"
                )
            for suffix, inner in children(step):
                if len(inner) > MAX_STEPS:
                    raise SchemeInvalid(f"at most {MAX_STEPS} steps", path=path + suffix)
        if len(steps) > MAX_STEPS:
            raise SchemeInvalid(f"at most {MAX_STEPS} steps", path=f"branches.{branch.value}")


def validate_library(schemes: Mapping[str, Scheme]) -> None:
    """Rules across an account's schemes: every "go to" names a scheme of the account, and no
    chain of jumps comes back to where it started without ringing anyone on the way."""
    silent: dict[str, set[str]] = {name: set() for name in schemes}
    where: dict[tuple[str, str], str] = {}
    for name, scheme in schemes.items():
        validate_scheme(scheme)
        for path, target, rang in _edges(scheme):
            if target not in schemes:
                raise SchemeInvalid(
                    f"no scheme named {target!r}",
                    path=path,
                    code="unknown_scheme",
                    scheme=name,
                )
            if not rang:
                silent[name].add(target)
                where.setdefault((name, target), path)
    # Depth-first search for a cycle in the graph of jumps that ring nobody first.
    state: dict[str, int] = {}

    def dfs(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(silent[node]):
            if state.get(nxt) == 1:
                cycle = [*trail[trail.index(nxt) :], nxt] if nxt in trail else [node, nxt]
                raise SchemeInvalid(
                    "these schemes jump to each other without ringing anyone: " + " → ".join(cycle),
                    path=where[(node, nxt)],
                    code="goto_cycle",
                    scheme=node,
                    cycle=cycle,
                )
            if state.get(nxt) is None:
                dfs(nxt, [*trail, nxt])
        state[node] = 2

    for name in sorted(schemes):
        if name not in state:
            dfs(name, [name])
