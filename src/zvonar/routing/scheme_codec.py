"""Schemes as plain data (YAML/JSON friendly) and back, with the path of every error.

One scheme::

    branches:
      working:
        - {type: ring, label: Office, targets: [{employee: "100"}], timeout: 20}
        - {type: ring, targets: [{number: "+79161234567"}, {sip: "sip:shop@pbx.example"}]}
        - {type: ring, targets: [{group: Sales}], strategy: round_robin, target_timeout: 15}
        - {type: caller_rule, rules: [{tags: [supplier], scheme: Production}],
           default: [{type: play, prompt: busy_lines}]}
        - {type: http_route, url: "https://crm.example/route", timeout: 3,  # default 2
           fallback: [{type: goto, scheme: Shop}]}
        - {type: ivr, label: Main menu, prompt: greeting, timeout: 5, retries: 2,
           invalid_prompt: invalid_choice,
           options: [{digit: "1", steps: [{type: queue, queue: sales, timeout: 120,
                                           overflow: [{type: voicemail}]}]},
                     {digit: "2", scheme: Support}],
           default: [{type: ring, targets: [{employee: "100"}]}]}
      off:
        - {type: voicemail, greeting: off_hours, notify: [boss@example.com]}
    final: {type: hangup}          # optional; default: voicemail
    rating: true                   # optional: a call one of its steps connects is rated

Other step types: ``play {prompt}``, ``goto {scheme}``, ``hangup``. A prompt is named by its
key (``PROMPT_KEY``; the writer refuses any other). Every step may carry a
``label`` (shown in the call journal). Dumping gives the canonical form (defaults left out), so
``dump(parse(d))`` is stable and config files diff well.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from zvonar.core.schemas import is_email
from zvonar.routing.errors import SchemeInvalid
from zvonar.routing.schedule import Branch
from zvonar.routing.scheme import (
    HTTP_ROUTE_TIMEOUT,
    IVR_DIGITS,
    MAX_IVR_OPTIONS,
    MAX_IVR_RETRIES,
    MAX_IVR_TIMEOUT,
    MAX_NESTING,
    MAX_STEPS,
    MAX_TARGETS,
    QUEUE_KEY,
    CallerRule,
    CallerRuleStep,
    FinalStep,
    GotoStep,
    HangupStep,
    HttpRouteStep,
    IvrOption,
    IvrStep,
    ManagerRef,
    PlayStep,
    QueueStep,
    RingStep,
    Scheme,
    Step,
    Target,
    TargetKind,
    VoicemailStep,
    validate_scheme,
)
from zvonar.routing.strategies import Strategy

_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_SIP = re.compile(r"^sips?:[^\s@]+@[^\s@]+$|^sips?:[^\s@]+$")
_PRINTABLE = re.compile(r"^[^\x00-\x1f\x7f\ud800-\udfff]+$")  # no controls, no lone surrogates
MAX_TIMEOUT = 600


class _Obj:
    """A mapping being read at ``path``: every key must be consumed, so typos fail loudly."""

    def __init__(self, data: Any, path: str, allowed: set[str]) -> None:
        if not isinstance(data, Mapping):
            raise SchemeInvalid("expected a mapping", path=path)
        unknown = sorted(str(k) for k in data if k not in allowed)
        self.data = data
        self.path = path
        if unknown:
            raise SchemeInvalid(f"unknown key {unknown[0]!r}", path=self.at(unknown[0]))

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def text(self, key: str, *, required: bool = False, max_len: int = 200) -> str | None:
        value = self.data.get(key)
        if value is None:
            if required:
                raise SchemeInvalid("required", path=self.at(key))
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # YAML reads an unquoted 101 as an int
        if not isinstance(value, str) or not _PRINTABLE.match(value) or len(value) > max_len:
            raise SchemeInvalid(f"expected text of 1–{max_len} characters", path=self.at(key))
        return value.strip()

    def req(self, key: str, max_len: int = 200) -> str:
        value = self.text(key, required=True, max_len=max_len)
        if value is None:  # unreachable: required=True raised; keeps the type exact
            raise SchemeInvalid("required", path=self.at(key))
        return value

    def seconds(self, key: str, most: int = MAX_TIMEOUT) -> float | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SchemeInvalid("expected seconds", path=self.at(key))
        if not 1 <= value <= most:
            raise SchemeInvalid(f"between 1 and {most} seconds", path=self.at(key))
        return float(value)

    def count(self, key: str, least: int, most: int) -> int | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= most:
            raise SchemeInvalid(f"expected a whole number {least}–{most}", path=self.at(key))
        return value

    def flag(self, key: str) -> bool:
        value = self.data.get(key, False)
        if not isinstance(value, bool):
            raise SchemeInvalid("expected true or false", path=self.at(key))
        return value

    def items(self, key: str, max_len: int) -> list[Any]:
        value = self.data.get(key, [])
        if not isinstance(value, list):
            raise SchemeInvalid("expected a list", path=self.at(key))
        if len(value) > max_len:
            raise SchemeInvalid(f"at most {max_len} items", path=self.at(key))
        return value


def target_from_dict(data: Any, path: str) -> Target:
    """``{employee|group|number|sip|manager: ref, timeout?: seconds}``."""
    kinds = {k.value for k in TargetKind}
    obj = _Obj(data, path, kinds | {"timeout"})
    given = [k for k in obj.data if k in kinds]
    if len(given) != 1:
        raise SchemeInvalid(f"name exactly one of {', '.join(sorted(kinds))}", path=path)
    kind = TargetKind(given[0])
    ref = obj.req(kind.value)
    if kind is TargetKind.number and not _E164.match(ref):
        raise SchemeInvalid("expected E.164, e.g. +74951234567", path=obj.at("number"))
    if kind is TargetKind.sip and not _SIP.match(ref):
        raise SchemeInvalid("expected a SIP URI, e.g. sip:shop@pbx.example", path=obj.at("sip"))
    if kind is TargetKind.employee and not ref.isdigit():
        raise SchemeInvalid("expected an extension (digits)", path=obj.at("employee"))
    if kind is TargetKind.manager and ref not in ManagerRef.__members__:
        raise SchemeInvalid(f"one of {', '.join(ManagerRef)}", path=obj.at("manager"))
    return Target(kind, ref, obj.seconds("timeout"))


def _url(obj: _Obj) -> str:
    url = obj.req("url", max_len=2000)
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # "http://[::1/"
        raise SchemeInvalid(f"not a valid URL: {exc}", path=obj.at("url")) from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SchemeInvalid("expected an http(s) URL", path=obj.at("url"))
    return url


def _ring(o: _Obj) -> RingStep:
    raw = o.items("targets", MAX_TARGETS)
    if not raw:
        raise SchemeInvalid("a ring step needs targets", path=o.at("targets"))
    targets = tuple(target_from_dict(t, f"{o.at('targets')}[{i}]") for i, t in enumerate(raw))
    if len({t.key for t in targets}) != len(targets):
        raise SchemeInvalid("a target is listed twice", path=o.at("targets"))
    strategy = o.text("strategy")
    if strategy is not None and strategy not in Strategy.__members__:
        raise SchemeInvalid(f"one of {', '.join(Strategy)}", path=o.at("strategy"))
    return RingStep(
        targets=targets,
        strategy=Strategy(strategy) if strategy else None,
        timeout=o.seconds("timeout"),
        target_timeout=o.seconds("target_timeout") or 15.0,
        label=o.text("label"),
        confirm=o.flag("confirm"),
        announce=o.text("announce"),
    )


def _voicemail(o: _Obj) -> VoicemailStep:
    notify = []
    for i, email in enumerate(o.items("notify", 20)):
        if not isinstance(email, str) or not is_email(email):
            raise SchemeInvalid("expected an email address", path=f"{o.at('notify')}[{i}]")
        notify.append(email.strip().lower())
    return VoicemailStep(greeting=o.text("greeting"), notify=tuple(notify), label=o.text("label"))


def _caller_rule(o: _Obj, depth: int) -> CallerRuleStep:
    rules = []
    for i, raw in enumerate(o.items("rules", 50)):
        r = _Obj(raw, f"{o.at('rules')}[{i}]", {"tags", "steps", "scheme"})
        tags = r.items("tags", 50)
        if not tags or not all(isinstance(t, str) and t.strip() and len(t) <= 50 for t in tags):
            raise SchemeInvalid("expected a list of tags", path=r.at("tags"))
        scheme = r.text("scheme")
        steps = _steps(r.data.get("steps", []), r.at("steps"), depth + 1)
        if (scheme is None) == (not steps):
            raise SchemeInvalid("give either steps or a scheme", path=r.path)
        # Contacts keep their tags lower-case: a rule's VIP is their vip.
        rules.append(CallerRule(frozenset(t.strip().lower() for t in tags), steps, scheme))
    default_scheme = o.text("default_scheme")
    default = _steps(o.data.get("default", []), o.at("default"), depth + 1)
    if default_scheme is not None and default:
        raise SchemeInvalid("give either default or default_scheme", path=o.path)
    return CallerRuleStep(tuple(rules), default, default_scheme, o.text("label"))


def _ivr(o: _Obj, depth: int) -> IvrStep:
    prompt = o.req("prompt")
    raw = o.items("options", MAX_IVR_OPTIONS)
    if not raw:
        raise SchemeInvalid("a menu needs options", path=o.at("options"))
    options: list[IvrOption] = []
    for i, item in enumerate(raw):
        r = _Obj(item, f"{o.at('options')}[{i}]", {"digit", "steps", "scheme"})
        digit = r.req("digit", max_len=10)
        if digit not in IVR_DIGITS:
            raise SchemeInvalid("a digit is one of 0–9, *, #", path=r.at("digit"))
        if any(opt.digit == digit for opt in options):
            raise SchemeInvalid(f"digit {digit} is used twice", path=r.at("digit"))
        scheme = r.text("scheme")
        steps = _steps(r.data.get("steps", []), r.at("steps"), depth + 1)
        if (scheme is None) == (not steps):
            raise SchemeInvalid("give either steps or a scheme", path=r.path)
        options.append(IvrOption(digit, steps, scheme))
    timeout = o.seconds("timeout", MAX_IVR_TIMEOUT)
    retries = o.count("retries", 0, MAX_IVR_RETRIES)
    return IvrStep(
        prompt=prompt,
        options=tuple(options),
        timeout=5.0 if timeout is None else timeout,
        retries=2 if retries is None else retries,
        invalid_prompt=o.text("invalid_prompt"),
        default=_steps(o.data.get("default", []), o.at("default"), depth + 1),
        label=o.text("label"),
    )


def _queue(o: _Obj, depth: int) -> QueueStep:
    queue = o.req("queue")
    if not QUEUE_KEY.match(queue):
        raise SchemeInvalid("a queue key: 1–64 of A–Z a–z 0–9 . _ -", path=o.at("queue"))
    overflow = _steps(o.data.get("overflow", []), o.at("overflow"), depth + 1)
    return QueueStep(queue, o.seconds("timeout"), overflow, o.text("label"))


_KEYS: dict[str, set[str]] = {
    "ring": {"targets", "strategy", "timeout", "target_timeout", "confirm", "announce"},
    "play": {"prompt"},
    "voicemail": {"greeting", "notify"},
    "goto": {"scheme"},
    "hangup": set(),
    "queue": {"queue", "timeout", "overflow"},
    "ivr": {"prompt", "options", "timeout", "retries", "invalid_prompt", "default"},
    "caller_rule": {"rules", "default", "default_scheme"},
    "http_route": {"url", "timeout", "fallback"},
}


def _step(data: Any, path: str, depth: int) -> Step:
    kind = data.get("type") if isinstance(data, Mapping) else None
    if not isinstance(kind, str) or kind not in _KEYS:
        raise SchemeInvalid(f"a step needs type: one of {', '.join(_KEYS)}", path=path)
    o = _Obj(data, path, _KEYS[kind] | {"type", "label"})
    label = o.text("label")
    if kind == "ring":
        return _ring(o)
    if kind == "play":
        return PlayStep(o.req("prompt"), label)
    if kind == "voicemail":
        return _voicemail(o)
    if kind == "goto":
        return GotoStep(o.req("scheme"), label)
    if kind == "hangup":
        return HangupStep(label)
    if kind == "queue":
        return _queue(o, depth)
    if kind == "ivr":
        return _ivr(o, depth)
    if kind == "caller_rule":
        return _caller_rule(o, depth)
    fallback = _steps(o.data.get("fallback", []), o.at("fallback"), depth + 1)
    return HttpRouteStep(_url(o), o.seconds("timeout") or HTTP_ROUTE_TIMEOUT, fallback, label)


def _steps(data: Any, path: str, depth: int = 0) -> tuple[Step, ...]:
    if not isinstance(data, list):
        raise SchemeInvalid("expected a list of steps", path=path)
    if len(data) > MAX_STEPS:
        raise SchemeInvalid(f"at most {MAX_STEPS} steps", path=path)
    if depth > MAX_NESTING:
        raise SchemeInvalid("nested too deep", path=path, code="too_deep")
    return tuple(_step(s, f"{path}[{i}]", depth) for i, s in enumerate(data))


def scheme_from_dict(name: str, data: Any) -> Scheme:
    """Parse and validate one scheme (its own rules; ``validate_library`` checks jumps)."""
    o = _Obj(data, "", {"branches", "final", "rating"})
    raw = o.data.get("branches")
    if not isinstance(raw, Mapping) or not raw:
        raise SchemeInvalid("expected a mapping of working/off/holiday to steps", path="branches")
    branches: dict[Branch, tuple[Step, ...]] = {}
    for key, steps in raw.items():
        if key is False:
            key = Branch.off.value  # YAML 1.1 (PyYAML) reads an unquoted off as false
        if key not in Branch.__members__:
            raise SchemeInvalid("branches are working, off, holiday", path=f"branches.{key}")
        branches[Branch(key)] = _steps(steps, f"branches.{key}")
    final: FinalStep = VoicemailStep()
    if o.data.get("final") is not None:
        step = _step(o.data["final"], "final", 0)
        if not isinstance(step, VoicemailStep | HangupStep):
            raise SchemeInvalid("the final step is a voicemail or a hangup", path="final")
        final = step
    scheme = Scheme(name=name, branches=branches, final=final, rating=o.flag("rating"))
    validate_scheme(scheme)
    return scheme


# --- dump -----------------------------------------------------------------------------------------


def _num(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


def _target_dict(t: Target) -> dict[str, Any]:
    out: dict[str, Any] = {t.kind.value: t.ref}
    if t.timeout is not None:
        out["timeout"] = _num(t.timeout)
    return out


def _with_label(kind: str, label: str | None, **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": kind}
    if label is not None:
        out["label"] = label
    out.update({k: v for k, v in fields.items() if v is not None and v != []})
    return out


def _rule_dict(r: CallerRule) -> dict[str, Any]:
    out: dict[str, Any] = {"tags": sorted(r.tags)}
    if r.scheme is not None:
        out["scheme"] = r.scheme
    else:
        out["steps"] = steps_to_list(r.steps)
    return out


def _option_dict(o: IvrOption) -> dict[str, Any]:
    out: dict[str, Any] = {"digit": o.digit}
    if o.scheme is not None:
        out["scheme"] = o.scheme
    else:
        out["steps"] = steps_to_list(o.steps)
    return out


_DUMP: dict[type, Callable[[Any], dict[str, Any]]] = {
    RingStep: lambda s: _with_label(
        "ring",
        s.label,
        targets=[_target_dict(t) for t in s.targets],
        strategy=s.strategy.value if s.strategy else None,
        timeout=_num(s.timeout) if s.timeout is not None else None,
        target_timeout=_num(s.target_timeout) if s.target_timeout != 15.0 else None,
        confirm=True if s.confirm else None,
        announce=s.announce,
    ),
    PlayStep: lambda s: _with_label("play", s.label, prompt=s.prompt),
    VoicemailStep: lambda s: _with_label(
        "voicemail", s.label, greeting=s.greeting, notify=list(s.notify)
    ),
    GotoStep: lambda s: _with_label("goto", s.label, scheme=s.scheme),
    HangupStep: lambda s: _with_label("hangup", s.label),
    QueueStep: lambda s: _with_label(
        "queue",
        s.label,
        queue=s.queue,
        timeout=_num(s.timeout) if s.timeout else None,
        overflow=steps_to_list(s.overflow),
    ),
    IvrStep: lambda s: _with_label(
        "ivr",
        s.label,
        prompt=s.prompt,
        timeout=_num(s.timeout) if s.timeout != 5.0 else None,
        retries=s.retries if s.retries != 2 else None,
        invalid_prompt=s.invalid_prompt,
        options=[_option_dict(o) for o in s.options],
        default=steps_to_list(s.default),
    ),
    CallerRuleStep: lambda s: _with_label(
        "caller_rule",
        s.label,
        rules=[_rule_dict(r) for r in s.rules],
        default=steps_to_list(s.default_steps),
        default_scheme=s.default_scheme,
    ),
    HttpRouteStep: lambda s: _with_label(
        "http_route",
        s.label,
        url=s.url,
        timeout=_num(s.timeout) if s.timeout != HTTP_ROUTE_TIMEOUT else None,
        fallback=steps_to_list(s.fallback),
    ),
}


def step_to_dict(step: Step) -> dict[str, Any]:
    return _DUMP[type(step)](step)


def steps_to_list(steps: tuple[Step, ...]) -> list[dict[str, Any]]:
    return [step_to_dict(s) for s in steps]


def scheme_to_dict(scheme: Scheme) -> dict[str, Any]:
    """The canonical plain form (branches in working/off/holiday order, defaults left out)."""
    out: dict[str, Any] = {
        "branches": {
            b.value: steps_to_list(scheme.branches[b]) for b in Branch if b in scheme.branches
        }
    }
    if scheme.final != VoicemailStep():
        out["final"] = step_to_dict(scheme.final)
    if scheme.rating:
        out["rating"] = True
    return out
