"""The call event vocabulary: events are frozen, checked when built, and share one base type
consumers can subscribe to."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

import pytest

from zvonar.calls.events import (
    CallAnswered,
    CallEnded,
    CallEvent,
    CallRecorded,
    CallRinging,
    CallStarted,
    CallTransferred,
    Direction,
    Disposition,
    HangupSide,
    InvalidCallEvent,
    LegEnded,
    LegEndReason,
    Target,
    TargetKind,
    TransferKind,
    VoicemailLeft,
)
from zvonar.core.bus import InProcessBus
from zvonar.core.errors import InvalidInput
from zvonar.core.events import Event

ACC = uuid.uuid4()
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
EMP = Target(TargetKind.employee, "Anna (101)", uuid.uuid4())


def started(**kw: object) -> CallStarted:
    args: dict[str, object] = {
        "account_id": ACC,
        "call_id": "c-1",
        "direction": Direction.inbound,
        "caller": "+74951234567",
        "dialed": "+74957654321",
        "started_at": T0,
    }
    args.update(kw)
    return CallStarted(**args)  # type: ignore[arg-type]


def every_event() -> list[CallEvent]:
    return [
        started(tracking={"utm_source": "google"}),
        CallRinging(account_id=ACC, call_id="c-1", leg_id="l-1", target=EMP, at=T0),
        CallAnswered(account_id=ACC, call_id="c-1", leg_id="l-1", at=T0, by=EMP.target_id),
        LegEnded(account_id=ACC, call_id="c-1", leg_id="l-1", reason=LegEndReason.completed, at=T0),
        CallTransferred(
            account_id=ACC, call_id="c-1", from_leg_id="l-1", to=EMP, kind=TransferKind.blind, at=T0
        ),
        CallRecorded(account_id=ACC, call_id="c-1", path="recordings/x.wav", duration=12.5),
        VoicemailLeft(account_id=ACC, call_id="c-1", path="recordings/v.wav", duration=3),
        CallEnded(
            account_id=ACC,
            call_id="c-1",
            disposition=Disposition.answered,
            ended_at=T0,
            hangup=HangupSide.caller,
            scheme_path=["working hours", "ring sales"],  # type: ignore[arg-type]
        ),
    ]


def test_every_event_is_a_frozen_hashable_call_event() -> None:
    for ev in every_event():
        assert isinstance(ev, CallEvent) and isinstance(ev, Event)
        with pytest.raises(dataclasses.FrozenInstanceError):
            ev.call_id = "other"  # type: ignore[misc]
        hash(ev)


async def test_one_subscription_to_call_event_sees_the_whole_vocabulary() -> None:
    bus = InProcessBus()
    seen: list[str] = []

    async def handler(ev: Event) -> None:
        seen.append(ev.event_type)

    bus.subscribe(CallEvent, handler)
    for ev in every_event():
        await bus.publish(ev)
    assert seen == [
        "CallStarted",
        "CallRinging",
        "CallAnswered",
        "LegEnded",
        "CallTransferred",
        "CallRecorded",
        "VoicemailLeft",
        "CallEnded",
    ]


def test_mapping_and_sequence_fields_are_copied_and_immutable() -> None:
    tracking = {"utm_source": "google"}
    ev = started(tracking=tracking)
    tracking["utm_source"] = "changed"
    assert ev.tracking == {"utm_source": "google"}
    with pytest.raises(TypeError):
        ev.tracking["x"] = "y"  # type: ignore[index]
    ended = every_event()[-1]
    assert isinstance(ended, CallEnded)
    assert ended.scheme_path == ("working hours", "ring sales")


@pytest.mark.parametrize(
    "bad_id", ["", "../etc/passwd", "a/b", "x" * 129, "-leading", "id with space", "caf\u00e9"]
)
def test_call_id_must_be_a_safe_token(bad_id: str) -> None:
    with pytest.raises(InvalidCallEvent) as err:
        started(call_id=bad_id)
    assert err.value.details == {"field": "call_id"}
    assert isinstance(err.value, InvalidInput)


def test_longest_safe_call_id_is_accepted() -> None:
    assert started(call_id="a" + "b" * 127).call_id.startswith("ab")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("started_at", datetime(2024, 5, 1, 12, 0)),  # naive
        ("direction", "inbound"),  # a plain string, not the enum
        ("caller", "+7\n495"),
        ("dialed", ""),
        ("number_label", "x" * 201),
        ("tracking", {"k": "v\x00"}),
    ],
)
def test_call_started_rejects(field: str, value: object) -> None:
    with pytest.raises(InvalidCallEvent):
        started(**{field: value})


def test_an_empty_caller_means_a_hidden_number() -> None:
    assert started(caller="").caller == ""


def test_other_events_check_their_fields() -> None:
    with pytest.raises(InvalidCallEvent):
        CallRecorded(account_id=ACC, call_id="c", path="p.wav", duration=-1)
    with pytest.raises(InvalidCallEvent):
        VoicemailLeft(account_id=ACC, call_id="c", path="p.wav", duration=True)  # type: ignore[arg-type]
    with pytest.raises(InvalidCallEvent):
        CallRinging(account_id=ACC, call_id="c", leg_id="a/b", target=EMP, at=T0)
    with pytest.raises(InvalidCallEvent):
        LegEnded(account_id=ACC, call_id="c", leg_id="l", reason="busy", at=T0)  # type: ignore[arg-type]
    with pytest.raises(InvalidCallEvent):
        CallEnded(
            account_id=ACC,
            call_id="c",
            disposition=Disposition.missed,
            ended_at=T0,
            hangup=HangupSide.caller,
            scheme_path=("ok", "bad\x07"),
        )
    with pytest.raises(InvalidCallEvent):
        Target(TargetKind.group, "")
    with pytest.raises(InvalidCallEvent):
        CallAnswered(account_id=ACC, call_id="c", leg_id="l", at=datetime(2024, 1, 1))
