"""Hypothesis strategies for schemes in their plain form, every step type, within the limits.

Composite strategies keep reprs short (nested ``builds`` of lambdas make 60 kB reprs, which
Hypothesis warns about).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from zvonar.routing.scheme import MAX_NESTING

SCHEMES = ("Other", "Support")
DIGITS = "0123456789*#"
LABELS = st.none() | st.sampled_from(["Office", "Main menu", "Меню"])
SECONDS = st.none() | st.integers(1, 600) | st.sampled_from([2.5, 15.0])
PROMPTS = st.sampled_from(["greeting", "invalid_choice", "sorry", "after_hours"])
TARGETS = st.sampled_from(
    [
        {"employee": "100"},
        {"employee": "105"},
        {"group": "Sales"},
        {"number": "+74951112233"},
        {"manager": "contact"},
        {"manager": "last"},
    ]
)
QUEUE_KEYS = st.from_regex(r"\A[A-Za-z0-9._-]{1,64}\Z")


def _with(kind: str, label: str | None, **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": kind, **{k: v for k, v in fields.items() if v is not None}}
    if label is not None:
        out["label"] = label
    return out


@st.composite
def leaf_step(draw: st.DrawFn) -> dict[str, Any]:
    label = draw(LABELS)
    kind = draw(st.sampled_from(["ring", "play", "hangup", "goto", "voicemail"]))
    if kind == "ring":
        targets = draw(st.lists(TARGETS, min_size=1, max_size=3, unique_by=lambda t: str(t)))
        confirm = draw(st.sampled_from([None, False, True]))  # False is the default, dropped
        return _with("ring", label, targets=targets, timeout=draw(SECONDS), confirm=confirm)
    if kind == "play":
        return _with("play", label, prompt=draw(PROMPTS))
    if kind == "goto":
        return _with("goto", label, scheme=draw(st.sampled_from(SCHEMES)))
    if kind == "voicemail":
        return _with("voicemail", label, greeting=draw(st.none() | PROMPTS))
    return _with("hangup", label)


@st.composite
def branch_target(draw: st.DrawFn, depth: int) -> dict[str, Any]:
    """What a menu option or a caller rule leads to: nested steps or another scheme."""
    if draw(st.booleans()):
        return {"scheme": draw(st.sampled_from(SCHEMES))}
    return {"steps": draw(steps(depth + 1, min_size=1))}


@st.composite
def step(draw: st.DrawFn, depth: int) -> dict[str, Any]:
    kind = draw(st.sampled_from(["leaf", "leaf", "ivr", "queue", "caller_rule", "http_route"]))
    if kind == "leaf" or depth >= MAX_NESTING:
        return draw(leaf_step())
    label = draw(LABELS)
    if kind == "ivr":
        digits = draw(st.lists(st.sampled_from(DIGITS), min_size=1, max_size=4, unique=True))
        return _with(
            "ivr",
            label,
            prompt=draw(PROMPTS),
            options=[{"digit": d, **draw(branch_target(depth))} for d in digits],
            timeout=draw(st.none() | st.integers(1, 30) | st.just(2.5)),
            retries=draw(st.none() | st.integers(0, 5)),
            invalid_prompt=draw(st.none() | PROMPTS),
            default=draw(steps(depth + 1)) or None,
        )
    if kind == "queue":
        return _with(
            "queue",
            label,
            queue=draw(QUEUE_KEYS),
            timeout=draw(SECONDS),
            overflow=draw(steps(depth + 1)) or None,
        )
    if kind == "caller_rule":
        tags = st.lists(st.sampled_from(["unknown", "vip", "supplier"]), min_size=1, unique=True)
        rules = [
            {"tags": draw(tags), **draw(branch_target(depth))}
            for _ in range(draw(st.integers(0, 2)))
        ]
        return _with("caller_rule", label, rules=rules, default=draw(steps(depth + 1)))
    return _with(
        "http_route", label, url="https://crm.example/route", fallback=draw(steps(depth + 1))
    )


def steps(depth: int = 0, min_size: int = 0) -> st.SearchStrategy[list[dict[str, Any]]]:
    """A list of steps; nested lists stop growing at ``MAX_NESTING``."""
    return st.lists(step(depth), min_size=min_size, max_size=3 if depth == 0 else 2)


@st.composite
def scheme_dicts(draw: st.DrawFn) -> dict[str, Any]:
    """A scheme in plain form; ``rating`` and ``final`` sometimes given, sometimes defaulted."""
    out: dict[str, Any] = {"branches": {"working": draw(steps(min_size=1))}}
    off = draw(steps())
    if off:
        out["branches"]["off"] = off
    final = draw(st.none() | st.sampled_from([{"type": "hangup"}, {"type": "voicemail"}]))
    if final is not None:
        out["final"] = final
    rating = draw(st.none() | st.booleans())
    if rating is not None:
        out["rating"] = rating
    return out
