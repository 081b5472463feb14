"""pcap -> stereo WAV conversion of rtpengine-style recordings (synthetic captures)."""

from __future__ import annotations

import struct

import pytest

from tests.media.engine.phone import dominant, tone_pcm
from zvonar.media.g711 import alaw_encode, ulaw_encode
from zvonar.media.pcap import PcapError, pcap_to_stereo_wav, read_pcap
from zvonar.media.wav import parse_wav

CALLER_PORT, OPERATOR_PORT = 30000, 30002
T0 = 1_700_000_000.0


def ipv4_udp(src: tuple[str, int], dst: tuple[str, int], payload: bytes) -> bytes:
    udp = struct.pack("!HHHH", src[1], dst[1], 8 + len(payload), 0) + payload
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
        bytes(int(x) for x in src[0].split(".")), bytes(int(x) for x in dst[0].split(".")),
    )  # fmt: skip
    return ip + udp


def pcap(records: list[tuple[float, bytes]], *, linktype: int = 101, nanos: bool = False) -> bytes:
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    out = [struct.pack("<IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)]
    for when, frame in records:
        sec = int(when)
        frac = round((when - sec) * (1e9 if nanos else 1e6))
        out.append(struct.pack("<IIII", sec, frac, len(frame), len(frame)) + frame)
    return b"".join(out)


def rtp(pt: int, seq: int, ts: int, ssrc: int, payload: bytes) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq, ts, ssrc) + payload


def stream(
    port: int, freq: float, *, start: float, seconds: float, pt: int, ssrc: int, ts0: int = 0
) -> list[tuple[float, bytes]]:
    encode = ulaw_encode if pt == 0 else alaw_encode
    audio = encode(tone_pcm(freq, seconds))
    records = []
    for k in range(len(audio) // 160):
        packet = rtp(pt, k, ts0 + 160 * k, ssrc, audio[160 * k : 160 * (k + 1)])
        frame = ipv4_udp(("127.0.0.1", 40000 + port % 7), ("127.0.0.1", port), packet)
        records.append((start + 0.02 * (k + 1), frame))
    return records


def channels(wav_bytes: bytes) -> tuple[list[float], list[float], float]:
    wav = parse_wav(wav_bytes)
    assert (wav.channels, wav.sample_rate, wav.bits_per_sample) == (2, 8000, 16)
    samples = [v * 32768 for v in wav.samples()]
    return samples[0::2], samples[1::2], wav.duration


def test_each_direction_to_its_channel_placed_by_time() -> None:
    records = stream(CALLER_PORT, 440, start=T0, seconds=1.0, pt=0, ssrc=1)
    # The operator answers half a second later, in A-law.
    records += stream(OPERATOR_PORT, 880, start=T0 + 0.5, seconds=0.5, pt=8, ssrc=2, ts0=777)
    records += stream(31000, 300, start=T0, seconds=0.5, pt=0, ssrc=3)  # another call: ignored
    records.sort()
    left, right, duration = channels(
        pcap_to_stereo_wav(pcap(records), left_port=CALLER_PORT, right_port=OPERATOR_PORT, start=T0)
    )
    assert duration == pytest.approx(1.0, abs=0.001)
    assert dominant(left, (300, 440, 880)) == 440
    assert dominant(right, (300, 440, 880)) == 880
    assert max(abs(v) for v in right[:3800]) == 0  # silence before the operator spoke
    assert max(abs(v) for v in right[4200:]) > 5000


def test_ssrc_change_and_timestamp_gap() -> None:
    first = stream(CALLER_PORT, 440, start=T0, seconds=0.3, pt=0, ssrc=10)
    # Same source resumes after 0.4 s of silence suppression: timestamps jump by 0.4 s.
    resumed = stream(CALLER_PORT, 440, start=T0 + 0.7, seconds=0.3, pt=0, ssrc=10, ts0=8000)
    # A new source (a transferred call) with unrelated timestamps.
    other = stream(CALLER_PORT, 660, start=T0 + 1.0, seconds=0.3, pt=0, ssrc=11, ts0=123456)
    wav = pcap_to_stereo_wav(
        pcap(first + resumed + other), left_port=CALLER_PORT, right_port=OPERATOR_PORT, start=T0
    )
    left, _right, duration = channels(wav)
    assert duration == pytest.approx(1.3, abs=0.001)
    assert max(abs(v) for v in left[2500:5500]) == 0  # the gap is silence
    assert dominant(left[8200:10300], (440, 660)) == 660


def test_link_types_and_timestamp_precision() -> None:
    records = stream(CALLER_PORT, 440, start=T0, seconds=0.1, pt=0, ssrc=1)
    ethernet = [(t, b"\x00" * 12 + b"\x08\x00" + frame) for t, frame in records]
    for data in (pcap(records, nanos=True), pcap(ethernet, linktype=1)):
        packets = list(read_pcap(data))
        assert len(packets) == 5
        assert packets[0].dst == ("127.0.0.1", CALLER_PORT)
        assert packets[0].time == pytest.approx(T0 + 0.02, abs=1e-6)


def test_truncated_capture_is_read_up_to_the_cut() -> None:
    data = pcap(stream(CALLER_PORT, 440, start=T0, seconds=0.2, pt=0, ssrc=1))
    assert len(list(read_pcap(data[:-50]))) == 9
    with pytest.raises(PcapError):
        list(read_pcap(b"\x0a\x0d\x0d\x0a" + bytes(40)))  # pcapng
    with pytest.raises(PcapError):
        list(read_pcap(b"short"))


def test_big_endian_capture() -> None:
    records = stream(CALLER_PORT, 440, start=T0, seconds=0.1, pt=0, ssrc=1)
    header = struct.pack(">IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101)
    body = b"".join(
        struct.pack(">IIII", int(t), round((t - int(t)) * 1e6), len(f), len(f)) + f
        for t, f in records
    )
    assert len(list(read_pcap(header + body))) == 5
    wav = pcap_to_stereo_wav(header + body, left_port=CALLER_PORT, right_port=OPERATOR_PORT)
    left, _right, _duration = channels(wav)
    assert dominant(left, (440, 880)) == 440
