"""The forwarding-scheme data model: schedule branches holding steps, and its structural rules.

A :class:`Scheme` maps a :class:`~zvonar.routing.schedule.Branch` to a tuple of steps. Steps are
a tagged union of frozen dataclasses; the interpreter (``engine``) runs them in order, each one
moving on when it ends without a connected call. A branch the scheme leaves out falls back:
holiday → off → working, so a scheme with only ``working`` steps rings the same way at any hour.
When the steps run out the scheme's ``final`` step (voicemail unless set to hang up) ends the
call: a caller never hears a busy tone while a step remains. Menus (``IvrStep``), queues and
caller rules hold nested step lists that run and then carry on after their step.

Targets name directory objects by their natural keys (an employee's extension, a group's name),
the same keys ``zvonar config`` files use. The plain-data form lives in ``scheme_codec``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from zvonar.routing.errors import SchemeInvalid
from zvonar.routing.schedule import Branch
from zvonar.routing.strategies import Strategy

MAX_GOTO_HOPS = 10  # a call following more "go to scheme" steps than this ends (final step)
MAX_NESTING = 3  # caller rules, HTTP fallbacks, menu options, queue overflows inside each other
MAX_STEPS = 50
MAX_TARGETS = 100
MAX_IVR_OPTIONS = 12
MAX_IVR_RETRIES = 5
MAX_IVR_TIMEOUT = 30
IVR_DIGITS = frozenset("0123456789*#")
QUEUE_KEY = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class TargetKind(enum.StrEnum):
    employee = "employee"
    group = "group"
    number = "number"
    sip = "sip"
    manager = "manager"  # the caller's own: ref is one of MANAGER_REFS


class ManagerRef(enum.StrEnum):
    """Whose employee a ``manager`` target rings: the contact's manager in the directory, or
    the employee who last answered this caller (within the last LAST_MANAGER_DAYS)."""

    contact = "contact"
    last = "last"


LAST_MANAGER_DAYS = 30


@dataclass(frozen=True)
class Target:
    """Something to ring: an employee (extension), a group (name), an E.164 number, a SIP URI,
    or the caller's manager (``ManagerRef``: resolved per call, nobody when there is none)."""

    kind: TargetKind
    ref: str
    timeout: float | None = None  # overrides the step's per-target timeout

    @property
    def key(self) -> str:
        return f"{self.kind.value}:{self.ref}"


@dataclass(frozen=True)
class RingStep:
    """Ring ``targets``. ``strategy`` None: a lone group rings by its own strategy, anything
    else all at once. ``timeout``: the cap on an all-at-once wave (each target rings its own
    ``Target.timeout``, else this, else ``DEFAULT_TIMEOUT``; the wave lasts until the last of
    them is done) and on the whole step for one-at-a-time strategies (None: no cap).
    ``target_timeout``: each target's turn in one-at-a-time strategies, unless it has its own.
    ``confirm``: a mobile or an outside number the step rings takes
    the call only when the person answering presses 1 (their voicemail never does).
    ``announce``: a prompt key played once to whoever answers before the call is theirs."""

    targets: tuple[Target, ...]
    strategy: Strategy | None = None
    timeout: float | None = None
    target_timeout: float = 15.0
    label: str | None = None
    confirm: bool = False
    announce: str | None = None

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
    """Wait in an ACD queue for up to ``timeout`` seconds (None: the queue's own limits). When
    the queue overflows (max wait or length, exit digit, nobody serving) ``overflow`` runs, then
    the steps after this one."""

    queue: str
    timeout: float | None = None
    overflow: tuple[Step, ...] = ()
    label: str | None = None


@dataclass(frozen=True)
class IvrOption:
    """Digit ``digit`` runs ``steps`` (then the steps after the menu) or goes to ``scheme``."""

    digit: str
    steps: tuple[Step, ...] = ()
    scheme: str | None = None


@dataclass(frozen=True)
class IvrStep:
    """Play ``prompt`` and wait ``timeout`` seconds for a digit. A digit no option has, or none
    at all, replays the menu up to ``retries`` more times (``invalid_prompt`` first for a wrong
    digit); then ``default`` runs, then the steps after the menu."""

    prompt: str
    options: tuple[IvrOption, ...]
    timeout: float = 5.0
    retries: int = 2
    invalid_prompt: str | None = None
    default: tuple[Step, ...] = ()
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


HTTP_ROUTE_TIMEOUT = 2.0  # seconds the back office has to answer, unless the step says


@dataclass(frozen=True)
class HttpRouteStep:
    """Ask the customer's back office; a timeout, an error or an unusable reply runs
    ``fallback`` (then the steps after this one)."""

    url: str
    timeout: float = HTTP_ROUTE_TIMEOUT
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
    rating: bool = False  # offer the caller a post-call rating when a step of this one connects

    def steps_for(self, branch: Branch) -> tuple[Branch, tuple[Step, ...]]:
        """The branch that applies (after fallback) and its steps."""
        for b in _FALLBACK[branch]:
            if b in self.branches:
                return b, self.branches[b]
        return branch, ()


# --- structure ------------------------------------------------------------------------------------


def children(step: Step) -> Iterator[tuple[str, tuple[Step, ...]]]:
    """Nested step lists of a step, with their path suffix (the codec's keys)."""
    if isinstance(step, CallerRuleStep):
        for i, rule in enumerate(step.rules):
            yield f".rules[{i}].steps", rule.steps
        yield ".default", step.default_steps
    elif isinstance(step, HttpRouteStep):
        yield ".fallback", step.fallback
    elif isinstance(step, IvrStep):
        for i, option in enumerate(step.options):
            yield f".options[{i}].steps", option.steps
        yield ".default", step.default
    elif isinstance(step, QueueStep):
        yield ".overflow", step.overflow


def jumps(step: Step) -> Iterator[tuple[str, str]]:
    """``(path suffix, scheme)`` of every "go to" a step itself holds (not its nested steps)."""
    if isinstance(step, GotoStep):
        yield "", step.scheme
    elif isinstance(step, CallerRuleStep):
        for i, rule in enumerate(step.rules):
            if rule.scheme is not None:
                yield f".rules[{i}].scheme", rule.scheme
        if step.default_scheme is not None:
            yield ".default_scheme", step.default_scheme
    elif isinstance(step, IvrStep):
        for i, option in enumerate(step.options):
            if option.scheme is not None:
                yield f".options[{i}].scheme", option.scheme


def goto_targets(step: Step) -> Iterator[str]:
    return (target for _, target in jumps(step))


def walk(steps: tuple[Step, ...], path: str, depth: int = 0) -> Iterator[tuple[str, Step, int]]:
    for i, step in enumerate(steps):
        here = f"{path}[{i}]"
        yield here, step, depth
        for suffix, inner in children(step):
            yield from walk(inner, here + suffix, depth + 1)


def edges(scheme: Scheme) -> Iterator[tuple[str, str, bool]]:
    """``(path, target scheme, rang before)``: whether a ringing step surely or possibly ran
    before the jump on that path. Anything that may ring counts: a loop through it waits on
    people and is bounded at run time by ``MAX_GOTO_HOPS``. Inside a menu option or a queue's
    overflow the caller has already waited (for a digit, for an agent), so "back to the main
    menu" is a legal loop."""

    def visit(steps: tuple[Step, ...], path: str, rang: bool) -> Iterator[tuple[str, str, bool]]:
        for i, step in enumerate(steps):
            here = f"{path}[{i}]"
            inside = rang or isinstance(step, IvrStep | QueueStep)
            for suffix, target in jumps(step):
                yield here + suffix, target, inside
            for suffix, inner in children(step):
                yield from visit(inner, here + suffix, inside)
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
        for path, target, rang in edges(scheme):
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
