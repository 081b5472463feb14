"""RFC 4733 telephone-events: payload, generator, receiver (with a virtual clock)."""

from __future__ import annotations

import pytest

from zvonar.media.dtmf import (
    DtmfDigit,
    DtmfEnd,
    DtmfPacket,
    DtmfReceiver,
    DtmfSource,
    TelephoneEvent,
    digit_to_event,
    event_to_digit,
    format_event_list,
    generate_dtmf,
    parse_event_list,
)
from zvonar.media.errors import DtmfError
from zvonar.media.rtp import RtpPacket


def test_payload_wire_form() -> None:
    event = TelephoneEvent(5, end=True, volume=10, duration=800)
    assert event.serialize() == bytes.fromhex("05 8a 03 20")
    assert TelephoneEvent.parse(bytes.fromhex("05 8a 03 20")) == event
    # the R bit is ignored on receipt (RFC 4733 §2.3)
    assert TelephoneEvent.parse(bytes.fromhex("05 ca 03 20")) == event
    assert TelephoneEvent.parse(bytes.fromhex("0b 3f ff ff")) == TelephoneEvent(
        11, False, 63, 65535
    )
    assert TelephoneEvent(11).digit == "#"
    assert TelephoneEvent(32).digit is None


@pytest.mark.parametrize("payload", [b"", b"\x05\x8a\x03", b"\x05\x8a\x03\x20\x00"])
def test_payload_length_is_checked(payload: bytes) -> None:
    with pytest.raises(DtmfError):
        TelephoneEvent.parse(payload)


def test_payload_construction_is_validated() -> None:
    for kwargs in ({"event": 256}, {"event": 1, "volume": 64}, {"event": 1, "duration": 65536}):
        with pytest.raises(DtmfError):
            TelephoneEvent(**kwargs)  # type: ignore[arg-type]


def test_digit_codes_rfc4733_table_7() -> None:
    assert [digit_to_event(d) for d in "0123456789*#ABCD!"] == list(range(17))
    assert digit_to_event("d") == 15
    assert event_to_digit(10) == "*" and event_to_digit(17) is None
    for bad in ("X", "", "12"):
        with pytest.raises(DtmfError):
            digit_to_event(bad)


def test_event_lists() -> None:
    assert parse_event_list("0-15,66,70") == frozenset([*range(16), 66, 70])
    assert parse_event_list(" 0-16 ") == frozenset(range(17))
    assert format_event_list(set(range(17))) == "0-16"
    assert format_event_list({*range(16), 66, 70, 71}) == "0-15,66,70-71"
    assert format_event_list(set()) == ""
    for bad in ("x", "5-3", "300", "1-", ""):
        with pytest.raises(DtmfError):
            parse_event_list(bad)


def test_generator_packets_for_a_100ms_digit() -> None:
    packets = generate_dtmf("5", timestamp=1000, duration=0.1, ptime=20, volume=10)
    expected = [
        (0.00, True, 160, False),
        (0.02, False, 320, False),
        (0.04, False, 480, False),
        (0.06, False, 640, False),
        (0.08, False, 800, True),  # the end packet, sent three times (RFC 4733 §2.5.1.4)
        (0.10, False, 800, True),
        (0.12, False, 800, True),
    ]
    assert [(p.offset, p.marker, p.event.duration, p.event.end) for p in packets] == [
        pytest.approx(e) for e in expected
    ]
    assert {p.timestamp for p in packets} == {1000}  # one timestamp for the whole event
    assert {p.event.event for p in packets} == {5}
    assert packets[0].payload == bytes.fromhex("05 0a 00 a0")


def test_generator_short_digit_and_limits() -> None:
    packets = generate_dtmf("#", timestamp=2**32 + 5, duration=0.01)
    assert [(p.marker, p.event.end, p.event.duration) for p in packets] == [
        (True, True, 80), (False, True, 80), (False, True, 80)
    ]  # fmt: skip
    assert packets[0].timestamp == 5
    with pytest.raises(DtmfError):
        generate_dtmf("1", timestamp=0, duration=9.0)  # > 0xFFFF samples
    with pytest.raises(DtmfError):
        generate_dtmf("1", timestamp=0, duration=0)
    with pytest.raises(DtmfError):
        generate_dtmf("Z", timestamp=0)


def play(receiver: DtmfReceiver, packets: list[DtmfPacket], start: float) -> list[DtmfDigit]:
    out = []
    for p in packets:
        out += receiver.receive(p.timestamp, p.payload, start + p.offset, marker=p.marker)
    return out


def test_receiver_reports_a_generated_digit_once() -> None:
    receiver = DtmfReceiver()
    digits = play(receiver, generate_dtmf("7", timestamp=1000, duration=0.1), start=5.0)
    assert digits == [
        DtmfDigit("7", 0.1, DtmfSource.RFC4733, DtmfEnd.END_BIT, timestamp=1000, volume=10)
    ]
    assert receiver.next_deadline() is None


def test_receiver_sequence_of_digits_including_repeats() -> None:
    receiver = DtmfReceiver()
    digits: list[DtmfDigit] = []
    for i, digit in enumerate("1155*#"):
        packets = generate_dtmf(digit, timestamp=i * 2400, duration=0.08)
        digits += play(receiver, packets, start=i * 0.3)
    assert "".join(d.digit for d in digits) == "1155*#"
    assert {d.end_reason for d in digits} == {DtmfEnd.END_BIT}


def test_lost_end_packets_time_out() -> None:
    receiver = DtmfReceiver(end_timeout=0.25)
    updates = [p for p in generate_dtmf("9", timestamp=0, duration=0.1) if not p.event.end]
    assert play(receiver, updates, start=1.0) == []
    deadline = receiver.next_deadline()
    assert deadline is not None
    assert deadline == pytest.approx(1.06 + 0.25)
    assert receiver.handle_timer(deadline - 0.001) == []
    (digit,) = receiver.handle_timer(deadline)
    assert (digit.digit, digit.end_reason, digit.duration) == ("9", DtmfEnd.TIMEOUT, 0.08)
    assert receiver.next_deadline() is None
    # a straggling end packet of that event is not a second digit
    assert receiver.receive(0, TelephoneEvent(9, True, 10, 800).serialize(), 1.5) == []


def test_next_event_ends_a_digit_whose_end_was_lost() -> None:
    receiver = DtmfReceiver()
    first = [p for p in generate_dtmf("1", timestamp=0, duration=0.1) if not p.event.end]
    second = generate_dtmf("2", timestamp=1200, duration=0.1)
    digits = play(receiver, first, 0.0) + play(receiver, second, 0.15)
    assert [(d.digit, d.end_reason) for d in digits] == [
        ("1", DtmfEnd.NEXT_EVENT), ("2", DtmfEnd.END_BIT)
    ]  # fmt: skip
    assert digits[0].duration == pytest.approx(0.08)


def test_reordering_and_late_packets() -> None:
    receiver = DtmfReceiver()
    packets = generate_dtmf("4", timestamp=500, duration=0.06)
    end, update = packets[-3], packets[0]
    assert receiver.receive(end.timestamp, end.payload, 0.0)[0].digit == "4"
    assert receiver.receive(update.timestamp, update.payload, 0.01) == []  # late update
    # a packet of an even older event is ignored too
    assert receiver.receive(100, TelephoneEvent(3, False, 10, 160).serialize(), 0.02) == []
    assert receiver.next_deadline() is None


def test_long_event_segments_are_joined() -> None:
    # RFC 4733 §2.5.1.3: at 0xFFFF the event continues with timestamp + 0xFFFF, no marker
    receiver = DtmfReceiver()
    start = 0xFFFFFF00  # and across a timestamp wrap
    second = (start + 0xFFFF) & 0xFFFFFFFF
    out = receiver.receive(start, TelephoneEvent(0, False, 10, 160).serialize(), 0.0, marker=True)
    for step in range(1, 82):  # an update every 100 ms up to 8.1 s
        event = TelephoneEvent(0, False, 10, step * 800)
        out += receiver.receive(start, event.serialize(), step * 0.1)
    out += receiver.receive(start, TelephoneEvent(0, False, 10, 0xFFFF).serialize(), 8.19)
    out += receiver.receive(second, TelephoneEvent(0, False, 10, 800).serialize(), 8.29)
    out += receiver.receive(second, TelephoneEvent(0, True, 10, 1600).serialize(), 8.39)
    assert out == [
        DtmfDigit(
            "0", (0xFFFF + 1600) / 8000, DtmfSource.RFC4733, DtmfEnd.END_BIT, start, volume=10
        )
    ]


def test_non_dtmf_events_and_rtp_packets() -> None:
    receiver = DtmfReceiver()
    assert receiver.receive(0, TelephoneEvent(32, True).serialize(), 0.0) == []  # a modem tone
    packet = RtpPacket(101, 1, 4000, 9, TelephoneEvent(16, True, 5, 400).serialize())
    (flash,) = receiver.receive_packet(packet, 0.1)
    assert (flash.digit, flash.volume, flash.duration) == ("!", 5, 0.05)
    with pytest.raises(DtmfError):
        receiver.receive(0, b"\x01", 0.2)
    with pytest.raises(DtmfError):
        DtmfReceiver(end_timeout=0)
