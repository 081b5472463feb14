"""Throughput of the media protocol core on one core.

Run: .venv/bin/python bench/bench_media_codecs.py [seconds-per-case]

A frame is 20 ms of 8 kHz audio: 160 samples (320 bytes of int16 PCM, 160 bytes of G.711).
"""

from __future__ import annotations

import math
import random
import struct
import sys
import time
from collections.abc import Callable

from zvonar.media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode, ulaw_to_alaw
from zvonar.media.goertzel import DtmfDetector
from zvonar.media.rtcp import ReceiverReport, ReportBlock, parse_rtcp, serialize_rtcp
from zvonar.media.rtp import RtpPacket, parse_rtp


def rate(func: Callable[[], object], seconds: float) -> float:
    """Calls per second of ``func`` over about ``seconds``."""
    calls = 0
    batch = 1
    start = time.perf_counter()
    while True:
        for _ in range(batch):
            func()
        calls += batch
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return calls / elapsed
        batch = min(batch * 2, 4096)


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 0.5
    rng = random.Random(1)
    speech = [round(8000 * math.sin(i * 0.07) + rng.gauss(0, 2000)) for i in range(160)]
    pcm = struct.pack("<160h", *speech)
    ulaw = ulaw_encode(pcm)
    alaw = alaw_encode(pcm)
    packet = RtpPacket(0, 1234, 160000, 0xDEADBEEF, ulaw, marker=False).serialize()
    rtcp = serialize_rtcp([ReceiverReport(1, (ReportBlock(2, 3, 4, 5, 6, 7, 8),))])

    dtmf_audio = b"".join(
        struct.pack(
            "<160h",
            *(
                round(
                    8000 * math.sin(2 * math.pi * 770 * (n * 160 + i) / 8000)
                    + 8000 * math.sin(2 * math.pi * 1336 * (n * 160 + i) / 8000)
                    + rng.gauss(0, 500)
                )
                for i in range(160)
            ),
        )
        for n in range(50)
    )
    frames = [dtmf_audio[i : i + 320] for i in range(0, len(dtmf_audio), 320)]
    detector = DtmfDetector()
    index = [0]

    def detect_tone() -> None:
        detector.feed(frames[index[0] % len(frames)])
        index[0] += 1

    silent = bytes(320)
    quiet_detector = DtmfDetector()

    cases: list[tuple[str, str, Callable[[], object]]] = [
        ("RTP parse + serialize", "packets/s", lambda: parse_rtp(packet).serialize()),
        ("RTCP RR parse + serialize", "packets/s", lambda: serialize_rtcp(parse_rtcp(rtcp))),
        ("G.711 µ-law encode", "frames/s", lambda: ulaw_encode(pcm)),
        ("G.711 µ-law decode", "frames/s", lambda: ulaw_decode(ulaw)),
        ("G.711 A-law encode", "frames/s", lambda: alaw_encode(pcm)),
        ("G.711 A-law decode", "frames/s", lambda: alaw_decode(alaw)),
        ("µ-law -> A-law transcode", "frames/s", lambda: ulaw_to_alaw(ulaw)),
        ("Goertzel DTMF detect (tones + noise)", "frames/s", detect_tone),
        ("Goertzel DTMF detect (silence)", "frames/s", lambda: quiet_detector.feed(silent)),
    ]
    print(f"Python {sys.version.split()[0]}, {seconds:g} s per case; frame = 160 samples")
    for name, unit, func in cases:
        print(f"{name:<40} {rate(func, seconds):>14,.0f} {unit}")


if __name__ == "__main__":
    main()
