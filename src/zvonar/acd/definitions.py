"""Queue definitions: what an account configures for each ACD queue, validated when built.

A :class:`QueueDef` is the administrator's view (members by extension, prompts by key); the
runtime turns it into the pure core's :class:`~zvonar.acd.queue.QueueConfig` (members by agent
id) with :meth:`QueueDef.to_queue_config`. Plain data (YAML/JSON friendly) and back::

    name: sales                      # the key a scheme's {type: queue, queue: sales} names
    title: Sales line                # optional display name
    strategy: in_turn                # zvonar.acd.queue.Strategy
    members: [{extension: "101", level: 1}, {extension: "201", level: 2}]   # "in turn" order
    escalation: {"2": 30}            # level -> seconds the head caller waits before it opens
    max_wait: 300                    # then the step's overflow; optional
    max_length: 20                   # callers beyond it overflow at once; optional
    wrapup_seconds: 10
    respect_wrapup: true
    ring_timeout: 15                 # one offer to one agent
    max_no_answer: 3                 # offers let ring out in a row before "away" (0: never)
    hold_music: null                 # a prompt key; null: the built-in melody
    announce_prompt: queue_announce  # played on entry and every announce_interval
    announce_interval: 60
    announce_position: false         # also say the position and the estimated wait
    agent_announce: queue_sales      # played to the agent who answers, before the caller
    exit_digit: "0"                  # leave for the overflow steps
    callback_digit: "5"              # hang up, keep the place, be called back
    vip_tags: [vip]                  # callers whose contact carries one get priority 1

:func:`queue_to_dict` gives the canonical form (``name``, ``strategy`` and ``members`` always,
other fields only when not the default; escalation levels as strings so the form survives JSON
unchanged), which the database row and ``zvonar config`` hold: two canonical dicts are equal
exactly when the queues are. Errors are :class:`QueueInvalid` with ``details["path"]``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from zvonar.acd.agents import AgentConfig
from zvonar.acd.queue import QueueConfig, Strategy
from zvonar.core.errors import InvalidInput

__all__ = [
    "QUEUE_KEY",
    "QueueDef",
    "QueueInvalid",
    "QueueMember",
    "queue_from_dict",
    "queue_to_dict",
]

# Same rule as routing's queue step (zvonar.routing.scheme.QUEUE_KEY; a test keeps them equal).
QUEUE_KEY = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Same rules as directory extensions, prompt uploads and contact tags.
EXTENSION = re.compile(r"^[0-9]{2,6}$")
PROMPT_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
TAG = re.compile(r"^[\w-]{1,32}$")
_PRINTABLE = re.compile(r"^[^\x00-\x1f\x7f]+$")
DIGITS = frozenset("0123456789*#")

MAX_TITLE = 200
MAX_MEMBERS = 500
MAX_LEVEL = 9
MAX_TAGS = 20
DAY = 86_400.0
MAX_LENGTH = 10_000
MAX_WRAPUP = 3_600.0
MAX_RING_TIMEOUT = 600.0
MAX_NO_ANSWER = 100
MIN_ANNOUNCE_INTERVAL = 10.0  # shorter would talk over the hold music all the time
MAX_ANNOUNCE_INTERVAL = 3_600.0


class QueueInvalid(InvalidInput):
    code = "invalid_queue"

    def __init__(self, message: str, *, path: str, code: str | None = None, **details: Any) -> None:
        super().__init__(f"{path}: {message}" if path else message, code=code, path=path, **details)
        self.reason = message

    def under(self, prefix: str) -> QueueInvalid:
        """The same error with its path inside ``prefix``."""
        inner = self.details["path"]
        path = f"{prefix}.{inner}" if prefix and inner else prefix or inner
        return QueueInvalid(self.reason, path=path)


@dataclass(frozen=True)
class QueueMember:
    extension: str
    level: int = 1  # 1 is offered calls first; higher levels once escalation opens them

    def __post_init__(self) -> None:
        if not isinstance(self.extension, str) or not EXTENSION.match(self.extension):
            raise QueueInvalid("an extension is 2–6 digits", path="extension")
        if isinstance(self.level, bool) or not isinstance(self.level, int):
            raise QueueInvalid("expected a whole number", path="level")
        if not 1 <= self.level <= MAX_LEVEL:
            raise QueueInvalid(f"levels are 1–{MAX_LEVEL}", path="level")


def _within(value: float, low: float, high: float) -> bool:
    # Written so NaN fails too (every comparison with NaN is false).
    return not isinstance(value, bool) and math.isfinite(value) and low <= value <= high


@dataclass(frozen=True)
class QueueDef:
    name: str
    title: str | None = None
    strategy: Strategy = Strategy.round_robin
    members: tuple[QueueMember, ...] = ()
    escalation: Mapping[int, float] = field(default_factory=dict)
    max_wait: float | None = None
    max_length: int | None = None
    wrapup_seconds: float = 10.0
    respect_wrapup: bool = True
    ring_timeout: float = 15.0
    max_no_answer: int = 3
    hold_music: str | None = None
    announce_prompt: str | None = None
    announce_interval: float | None = None
    announce_position: bool = False
    agent_announce: str | None = None  # a prompt key the answering agent hears first
    exit_digit: str | None = None
    callback_digit: str | None = None
    vip_tags: tuple[str, ...] = ("vip",)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not QUEUE_KEY.match(self.name):
            raise QueueInvalid("1–64 of A–Z a–z 0–9 . _ -", path="name")
        if self.title is not None:
            if not (isinstance(self.title, str) and len(self.title) <= MAX_TITLE):
                raise QueueInvalid(f"text of 1–{MAX_TITLE} characters", path="title")
            # Blank is no title: one spelling per queue keeps canonical forms comparable.
            title = self.title.strip() or None
            if title is not None and not _PRINTABLE.match(title):
                raise QueueInvalid("no control characters", path="title")
            object.__setattr__(self, "title", title)
        if not isinstance(self.strategy, Strategy):
            raise QueueInvalid("unknown strategy", path="strategy")
        self._check_members()
        self._check_escalation()
        self._check_numbers()
        for key in ("hold_music", "announce_prompt", "agent_announce"):
            value = getattr(self, key)
            if value is not None and not (isinstance(value, str) and PROMPT_KEY.match(value)):
                raise QueueInvalid("a prompt key: lower-case letters, digits and _", path=key)
        for key in ("exit_digit", "callback_digit"):
            value = getattr(self, key)
            if value is not None and value not in DIGITS:
                raise QueueInvalid("one of 0–9, * or #", path=key)
        if self.exit_digit is not None and self.exit_digit == self.callback_digit:
            raise QueueInvalid("the exit digit is also the callback digit", path="callback_digit")
        self._check_tags()

    def _check_members(self) -> None:
        seen: set[str] = set()
        if len(self.members) > MAX_MEMBERS:
            raise QueueInvalid(f"at most {MAX_MEMBERS} members", path="members")
        for i, m in enumerate(self.members):
            if not isinstance(m, QueueMember):
                raise QueueInvalid("expected a member", path=f"members[{i}]")
            if m.extension in seen:
                raise QueueInvalid(f"{m.extension} is listed twice", path=f"members[{i}].extension")
            seen.add(m.extension)

    def _check_escalation(self) -> None:
        for level, after in self.escalation.items():
            path = f"escalation.{level}"
            if isinstance(level, bool) or not isinstance(level, int) or not 2 <= level <= MAX_LEVEL:
                raise QueueInvalid(f"levels 2–{MAX_LEVEL} (level 1 is open at once)", path=path)
            if not isinstance(after, int | float) or not _within(after, 0, DAY):
                raise QueueInvalid("between 0 and 86400 seconds", path=path)
        # A stable order (by level) keeps equal definitions equal and dumps diff-friendly.
        object.__setattr__(
            self, "escalation", {lv: float(s) for lv, s in sorted(self.escalation.items())}
        )

    def _check_numbers(self) -> None:
        if self.max_wait is not None and not _within(self.max_wait, 1, DAY):
            raise QueueInvalid("between 1 and 86400 seconds", path="max_wait")
        if self.max_length is not None and not (
            isinstance(self.max_length, int) and _within(self.max_length, 0, MAX_LENGTH)
        ):
            raise QueueInvalid(f"a whole number 0–{MAX_LENGTH}", path="max_length")
        if not _within(self.wrapup_seconds, 0, MAX_WRAPUP):
            raise QueueInvalid(f"between 0 and {MAX_WRAPUP:g} seconds", path="wrapup_seconds")
        if not _within(self.ring_timeout, 1, MAX_RING_TIMEOUT):
            raise QueueInvalid(f"between 1 and {MAX_RING_TIMEOUT:g} seconds", path="ring_timeout")
        if not (
            isinstance(self.max_no_answer, int) and _within(self.max_no_answer, 0, MAX_NO_ANSWER)
        ):
            raise QueueInvalid(f"a whole number 0–{MAX_NO_ANSWER}", path="max_no_answer")
        if self.announce_interval is not None and not _within(
            self.announce_interval, MIN_ANNOUNCE_INTERVAL, MAX_ANNOUNCE_INTERVAL
        ):
            raise QueueInvalid(
                f"between {MIN_ANNOUNCE_INTERVAL:g} and {MAX_ANNOUNCE_INTERVAL:g} seconds",
                path="announce_interval",
            )
        for key in ("respect_wrapup", "announce_position"):
            if not isinstance(getattr(self, key), bool):
                raise QueueInvalid("expected true or false", path=key)

    def _check_tags(self) -> None:
        if len(self.vip_tags) > MAX_TAGS:
            raise QueueInvalid(f"at most {MAX_TAGS} tags", path="vip_tags")
        for i, tag in enumerate(self.vip_tags):
            if not isinstance(tag, str) or not TAG.match(tag) or tag != tag.lower():
                raise QueueInvalid(
                    "a tag is lower-case letters, digits, _ and -", path=f"vip_tags[{i}]"
                )
        if len(set(self.vip_tags)) != len(self.vip_tags):
            raise QueueInvalid("a tag is listed twice", path="vip_tags")

    # --- for the runtime ------------------------------------------------------------------------

    def to_queue_config(self, agent_id_of: Callable[[str], str | None]) -> QueueConfig:
        """The core's config; members whose extension has no agent (``None``) are left out."""
        tiers: dict[str, int] = {}
        for m in self.members:
            agent = agent_id_of(m.extension)
            if agent is not None and agent not in tiers:
                tiers[agent] = m.level
        return QueueConfig(
            id=self.name,
            strategy=self.strategy,
            tiers=tiers,
            escalation=dict(self.escalation),
            max_wait=self.max_wait,
            max_length=self.max_length,
            respect_wrapup=self.respect_wrapup,
            announce_interval=self.announce_interval,
            exit_digit=self.exit_digit,
            callback_digit=self.callback_digit,
        )

    def agent_config(self) -> AgentConfig:
        """Per-agent settings this queue asks for (the runtime merges an agent's queues)."""
        return AgentConfig(
            wrapup_seconds=self.wrapup_seconds,
            max_no_answers=self.max_no_answer,
            ring_timeout=self.ring_timeout,
        )

    def priority_for(self, tags: Iterable[str]) -> int:
        """1 for a caller whose contact carries a VIP tag, else 0 (tags compare lower-cased)."""
        vip = set(self.vip_tags)
        return 1 if any(t.lower() in vip for t in tags) else 0


# --- plain data ---------------------------------------------------------------------------------

_DEFAULTS: dict[str, Any] = {
    f.name: f.default for f in fields(QueueDef) if f.name not in ("name", "members", "escalation")
}
_ALWAYS = ("name", "strategy", "members")
_KEYS = frozenset(f.name for f in fields(QueueDef))
_STRATEGIES = tuple(s.value for s in Strategy)


def _num(x: float) -> int | float:
    return int(x) if float(x).is_integer() else float(x)


def queue_to_dict(q: QueueDef, *, full: bool = False) -> dict[str, Any]:
    """Canonical plain form; ``full`` keeps the default values too (every key present)."""
    out: dict[str, Any] = {
        "name": q.name,
        "title": q.title,
        "strategy": q.strategy.value,
        "members": [{"extension": m.extension, "level": m.level} for m in q.members],
        "escalation": {str(lv): _num(s) for lv, s in q.escalation.items()},
        "max_wait": None if q.max_wait is None else _num(q.max_wait),
        "max_length": q.max_length,
        "wrapup_seconds": _num(q.wrapup_seconds),
        "respect_wrapup": q.respect_wrapup,
        "ring_timeout": _num(q.ring_timeout),
        "max_no_answer": q.max_no_answer,
        "hold_music": q.hold_music,
        "announce_prompt": q.announce_prompt,
        "announce_interval": None if q.announce_interval is None else _num(q.announce_interval),
        "announce_position": q.announce_position,
        "agent_announce": q.agent_announce,
        "exit_digit": q.exit_digit,
        "callback_digit": q.callback_digit,
        "vip_tags": list(q.vip_tags),
    }
    if full:
        return out
    return {
        k: v
        for k, v in out.items()
        if k in _ALWAYS
        or (k == "escalation" and v)
        or (k in _DEFAULTS and v != _plain(_DEFAULTS[k]))
    }


def _plain(default: Any) -> Any:
    if isinstance(default, Strategy):
        return default.value
    if isinstance(default, tuple):
        return list(default)
    return default


class _Reader:
    """Reads one plain-data queue at ``path``; every error names the key it is about."""

    def __init__(self, data: Mapping[str, Any], path: str) -> None:
        self.data = data
        self.path = path

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def fail(self, key: str, message: str) -> QueueInvalid:
        return QueueInvalid(message, path=self.at(key))

    def text(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # YAML reads an unquoted 101 or 0 as an int
        if not isinstance(value, str):
            raise self.fail(key, "expected text")
        return value.strip()

    def number(self, key: str) -> float | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, "expected a number")
        return float(value)

    def whole(self, key: str) -> int | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, "expected a whole number")
        return value

    def flag(self, key: str) -> bool | None:
        value = self.data.get(key)
        if value is not None and not isinstance(value, bool):
            raise self.fail(key, "expected true or false")
        return value

    def members(self) -> tuple[QueueMember, ...]:
        raw = self.data.get("members", [])
        if not isinstance(raw, list):
            raise self.fail("members", "expected a list")
        if len(raw) > MAX_MEMBERS:
            raise self.fail("members", f"at most {MAX_MEMBERS} members")
        out = []
        for i, item in enumerate(raw):
            where = self.at(f"members[{i}]")
            if isinstance(item, str | int) and not isinstance(item, bool):
                item = {"extension": item}  # a plain extension: level 1
            if not isinstance(item, Mapping):
                raise QueueInvalid("expected an extension or {extension, level}", path=where)
            unknown = sorted(str(k) for k in item if k not in ("extension", "level"))
            if unknown:
                raise QueueInvalid(f"unknown key {unknown[0]!r}", path=f"{where}.{unknown[0]}")
            sub = _Reader(item, where)
            extension = sub.text("extension")
            if extension is None:
                raise sub.fail("extension", "required")
            level = sub.whole("level")
            try:
                out.append(QueueMember(extension, 1 if level is None else level))
            except QueueInvalid as exc:
                raise exc.under(where) from None
        return tuple(out)

    def escalation(self) -> dict[int, float]:
        raw = self.data.get("escalation") or {}
        if not isinstance(raw, Mapping):
            raise self.fail("escalation", "expected a mapping of level to seconds")
        out: dict[int, float] = {}
        for key, value in raw.items():
            where = self.at(f"escalation.{key}")
            level = key if isinstance(key, int) and not isinstance(key, bool) else None
            if isinstance(key, str) and key.isascii() and key.isdigit() and len(key) <= 2:
                level = int(key)  # JSON object keys are strings
            if level is None:
                raise QueueInvalid("a level is a whole number", path=where)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise QueueInvalid("expected seconds", path=where)
            if level in out:
                raise QueueInvalid("level given twice", path=where)
            out[level] = float(value)
        return out

    def tags(self) -> tuple[str, ...] | None:
        raw = self.data.get("vip_tags")
        if raw is None:
            return None
        if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
            raise self.fail("vip_tags", "expected a list of tags")
        # Contacts store tags lower-cased; the same here so "VIP" matches.
        return tuple(dict.fromkeys(t.strip().lower() for t in raw))


def queue_from_dict(data: Any, path: str = "") -> QueueDef:
    """Parse the plain form (absent or null keys take their defaults); errors carry a path."""
    if not isinstance(data, Mapping):
        raise QueueInvalid("expected a mapping", path=path)
    unknown = sorted(str(k) for k in data if k not in _KEYS)
    r = _Reader(data, path)
    if unknown:
        raise r.fail(unknown[0], f"unknown key {unknown[0]!r}")
    name = r.text("name")
    if name is None:
        raise r.fail("name", "required")
    strategy = r.text("strategy")
    if strategy is not None and strategy not in _STRATEGIES:
        raise r.fail("strategy", f"one of {', '.join(_STRATEGIES)}")
    kwargs: dict[str, Any] = {
        "name": name,
        "title": r.text("title") or None,
        "members": r.members(),
        "escalation": r.escalation(),
        "max_wait": r.number("max_wait"),
        "max_length": r.whole("max_length"),
        "hold_music": r.text("hold_music"),
        "announce_prompt": r.text("announce_prompt"),
        "announce_interval": r.number("announce_interval"),
        "agent_announce": r.text("agent_announce"),
        "exit_digit": r.text("exit_digit"),
        "callback_digit": r.text("callback_digit"),
    }
    if strategy is not None:
        kwargs["strategy"] = Strategy(strategy)
    optional = {
        "wrapup_seconds": r.number("wrapup_seconds"),
        "ring_timeout": r.number("ring_timeout"),
        "max_no_answer": r.whole("max_no_answer"),
        "respect_wrapup": r.flag("respect_wrapup"),
        "announce_position": r.flag("announce_position"),
        "vip_tags": r.tags(),
    }
    kwargs.update({k: v for k, v in optional.items() if v is not None})
    try:
        return QueueDef(**kwargs)
    except QueueInvalid as exc:
        raise exc.under(path) from None
