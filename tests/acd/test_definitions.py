"""Queue definitions as plain data: validation with paths, the canonical form, the core config."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zvonar.acd.agents import AgentConfig
from zvonar.acd.definitions import (
    QUEUE_KEY,
    QueueDef,
    QueueInvalid,
    QueueMember,
    queue_from_dict,
    queue_to_dict,
)
from zvonar.acd.queue import Strategy
from zvonar.routing import scheme as routing_scheme

FULL: dict[str, Any] = {
    "name": "sales",
    "title": "Sales line",
    "strategy": "in_turn",
    "members": ["101", {"extension": 102}, {"extension": "201", "level": 2}],
    "escalation": {2: 30, "3": 90.5},
    "max_wait": 300,
    "max_length": 20,
    "wrapup_seconds": 5,
    "respect_wrapup": False,
    "ring_timeout": 20,
    "max_no_answer": 0,
    "hold_music": "jazz",
    "announce_prompt": "queue_announce",
    "announce_interval": 45,
    "announce_position": True,
    "agent_announce": "queue_sales",
    "exit_digit": 0,
    "callback_digit": "5",
    "vip_tags": ["VIP", "gold", "vip"],
}


def test_full_definition_parses_and_dumps_canonically() -> None:
    q = queue_from_dict(FULL)
    assert q.strategy is Strategy.in_turn
    assert q.members == (QueueMember("101"), QueueMember("102"), QueueMember("201", 2))
    assert q.escalation == {2: 30.0, 3: 90.5}
    assert q.exit_digit == "0" and q.vip_tags == ("vip", "gold")
    d = queue_to_dict(q)
    assert d["members"] == [
        {"extension": "101", "level": 1},
        {"extension": "102", "level": 1},
        {"extension": "201", "level": 2},
    ]
    assert d["escalation"] == {"2": 30, "3": 90.5}
    # The canonical form survives JSON (the database column) and YAML unchanged.
    assert json.loads(json.dumps(d)) == d
    assert queue_from_dict(json.loads(json.dumps(d))) == q
    assert queue_to_dict(queue_from_dict(d)) == d


def test_defaults_are_left_out_of_the_canonical_form() -> None:
    q = queue_from_dict({"name": "support"})
    assert q == QueueDef("support")
    assert queue_to_dict(q) == {"name": "support", "strategy": "round_robin", "members": []}
    full = queue_to_dict(q, full=True)
    assert full["vip_tags"] == ["vip"] and full["ring_timeout"] == 15
    assert full["wrapup_seconds"] == 10 and full["max_no_answer"] == 3
    assert queue_from_dict(full) == q
    assert QueueDef("support", title="  ") == q  # a blank title is no title
    assert QueueDef("support", title=" Support ").title == "Support"
    # Explicit nulls mean "the default", as absent keys do.
    assert queue_from_dict({"name": "support", "ring_timeout": None, "vip_tags": None}) == q


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"name": "no spaces"}, "q.name"),
        ({"name": "x" * 65}, "q.name"),
        ({"name": None}, "q.name"),
        ({"colour": "red"}, "q.colour"),
        ({"title": "a\x00b"}, "q.title"),
        ({"strategy": "weighted_random"}, "q.strategy"),
        ({"members": "101"}, "q.members"),
        ({"members": ["1"]}, "q.members[0].extension"),
        ({"members": [{"extension": "101", "level": 0}]}, "q.members[0].level"),
        ({"members": [{"extension": "101", "level": True}]}, "q.members[0].level"),
        ({"members": [{"extension": "101", "weight": 2}]}, "q.members[0].weight"),
        ({"members": [{"level": 2}]}, "q.members[0].extension"),
        ({"members": [[]]}, "q.members[0]"),
        ({"members": ["101", "102", "101"]}, "q.members[2].extension"),
        ({"escalation": {1: 10}}, "q.escalation.1"),
        ({"escalation": {10: 10}}, "q.escalation.10"),
        ({"escalation": {"two": 10}}, "q.escalation.two"),
        ({"escalation": {2: -1}}, "q.escalation.2"),
        ({"escalation": {2: "soon"}}, "q.escalation.2"),
        ({"escalation": [2, 30]}, "q.escalation"),
        ({"max_wait": 0}, "q.max_wait"),
        ({"max_wait": float("inf")}, "q.max_wait"),
        ({"max_wait": float("nan")}, "q.max_wait"),
        ({"max_wait": "300"}, "q.max_wait"),
        ({"max_length": -1}, "q.max_length"),
        ({"max_length": 2.5}, "q.max_length"),
        ({"wrapup_seconds": 3601}, "q.wrapup_seconds"),
        ({"respect_wrapup": "yes"}, "q.respect_wrapup"),
        ({"ring_timeout": 0}, "q.ring_timeout"),
        ({"max_no_answer": -1}, "q.max_no_answer"),
        ({"hold_music": "../etc/passwd"}, "q.hold_music"),
        ({"announce_prompt": "Queue Announce"}, "q.announce_prompt"),
        ({"agent_announce": "../sales"}, "q.agent_announce"),
        ({"announce_interval": 5}, "q.announce_interval"),
        ({"announce_position": 1}, "q.announce_position"),
        ({"exit_digit": "12"}, "q.exit_digit"),
        ({"exit_digit": "5", "callback_digit": "5"}, "q.callback_digit"),
        ({"vip_tags": "vip"}, "q.vip_tags"),
        ({"vip_tags": ["v i p"]}, "q.vip_tags[0]"),
        ({"vip_tags": [f"t{i}" for i in range(21)]}, "q.vip_tags"),
    ],
)
def test_bad_values_name_their_path(change: dict[str, Any], path: str) -> None:
    with pytest.raises(QueueInvalid) as info:
        queue_from_dict({"name": "sales", **change}, "q")
    assert info.value.code == "invalid_queue"
    assert info.value.details["path"] == path


def test_not_a_mapping() -> None:
    with pytest.raises(QueueInvalid) as info:
        queue_from_dict(["sales"], "queues[3]")
    assert info.value.details["path"] == "queues[3]"


def test_built_directly_the_same_rules_hold() -> None:
    with pytest.raises(QueueInvalid):
        QueueDef("sales", escalation={1: 5.0})
    with pytest.raises(QueueInvalid):
        QueueDef("sales", members=(QueueMember("101"), QueueMember("101", 2)))
    with pytest.raises(QueueInvalid):
        QueueMember("abc")
    # Escalation is kept in level order, so equal queues compare equal.
    assert QueueDef("s", escalation={3: 60, 2: 30}).escalation == {2: 30.0, 3: 60.0}
    assert list(QueueDef("s", escalation={3: 60, 2: 30}).escalation) == [2, 3]


def test_queue_key_rule_is_routings() -> None:
    assert QUEUE_KEY.pattern == routing_scheme.QUEUE_KEY.pattern


def test_to_queue_config_maps_extensions_to_agents_in_order() -> None:
    q = queue_from_dict(FULL)
    agents = {"101": "a-101", "201": "a-201"}  # 102 has no employee any more
    config = q.to_queue_config(agents.get)
    assert config.id == "sales"
    assert config.strategy is Strategy.in_turn
    assert list(config.tiers.items()) == [("a-101", 1), ("a-201", 2)]
    assert config.escalation == {2: 30.0, 3: 90.5}
    assert config.opens_after(2) == 30.0
    assert (config.max_wait, config.max_length) == (300.0, 20)
    assert config.respect_wrapup is False
    assert config.announce_interval == 45.0
    assert (config.exit_digit, config.callback_digit) == ("0", "5")
    assert q.agent_config() == AgentConfig(wrapup_seconds=5.0, max_no_answers=0, ring_timeout=20.0)


def test_vip_tags_give_priority_one() -> None:
    q = queue_from_dict({"name": "s", "vip_tags": ["vip", "gold"]})
    assert q.priority_for(["Gold"]) == 1
    assert q.priority_for(["supplier", "VIP"]) == 1
    assert q.priority_for(["supplier"]) == 0
    assert q.priority_for([]) == 0
    assert QueueDef("s", vip_tags=()).priority_for(["vip"]) == 0


_seconds = st.integers(0, 86_400).map(float) | st.floats(0.5, 3600, allow_nan=False)
_members = st.lists(
    st.builds(
        QueueMember,
        extension=st.from_regex(r"[0-9]{2,6}", fullmatch=True),
        level=st.integers(1, 9),
    ),
    max_size=6,
    unique_by=lambda m: m.extension,
).map(tuple)
_digits = st.sampled_from(list("0123456789*#"))
_queues = st.builds(
    QueueDef,
    name=st.from_regex(QUEUE_KEY, fullmatch=True),
    title=st.none()
    | st.text(st.characters(max_codepoint=0x4FF, exclude_categories=("Cc",)), min_size=1),
    strategy=st.sampled_from(Strategy),
    members=_members,
    escalation=st.dictionaries(st.integers(2, 9), _seconds, max_size=3),
    max_wait=st.none() | st.floats(1, 86_400),
    max_length=st.none() | st.integers(0, 10_000),
    wrapup_seconds=st.floats(0, 3600),
    respect_wrapup=st.booleans(),
    ring_timeout=st.floats(1, 600),
    max_no_answer=st.integers(0, 100),
    hold_music=st.none() | st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True),
    announce_interval=st.none() | st.floats(10, 3600),
    announce_position=st.booleans(),
    exit_digit=st.none() | _digits,
    vip_tags=st.lists(
        st.from_regex(r"[a-z0-9_-]{1,8}", fullmatch=True), unique=True, max_size=20
    ).map(tuple),
)


@settings(max_examples=60, deadline=None)
@given(_queues)
def test_any_valid_queue_round_trips_through_json(q: QueueDef) -> None:
    d = queue_to_dict(q)
    again = queue_from_dict(json.loads(json.dumps(d)))
    assert again == q
    assert queue_to_dict(again) == d
    assert queue_from_dict(queue_to_dict(q, full=True)) == q
