"""What SRTP costs the embedded media engine per packet (media/io/srtp.py over libsrtp).

Run: .venv/bin/python bench/bench_srtp.py [--packets 200000]

One leg's two directions, as a phone over TLS uses them: protect (what the leg sends) and
unprotect (what it receives, tag checked, replay window updated) of 172-byte PCMU packets
(12-byte header, 20 ms of G.711), for both SDES suites, against the cost of the Python
``bytes`` copies the leg makes anyway. A relayed call with one SRTP side does 50 of each per
second; the last column is that call's SRTP share of one core.
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from zvonar.media.io.srtp import SrtpStreams
from zvonar.media.sdes import CryptoSuite, SrtpParams, new_master_key


def packets(n: int) -> list[bytes]:
    payload = bytes(range(160))
    return [struct.pack("!BBHII", 0x80, 0, k & 0xFFFF, 160 * k, 0x1234) + payload for k in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, default=200_000)
    args = ap.parse_args()
    clear = packets(args.packets)
    print(f"{'suite':<26} {'protect':>10} {'unprotect':>10} {'per SRTP call':>14}")
    for suite in CryptoSuite:
        ours, theirs = new_master_key(), new_master_key()
        sender = SrtpStreams(SrtpParams(suite, ours, theirs))
        receiver = SrtpStreams(SrtpParams(suite, theirs, ours))
        t0 = time.perf_counter()
        wire = [sender.protect(p) for p in clear]
        t1 = time.perf_counter()
        back = [receiver.unprotect(w) for w in wire if w is not None]
        t2 = time.perf_counter()
        assert back == clear, "a packet did not survive the round trip"
        protect_us = (t1 - t0) / len(clear) * 1e6
        unprotect_us = (t2 - t1) / len(clear) * 1e6
        share = 50 * (protect_us + unprotect_us) / 1e6 * 100
        print(f"{suite.value:<26} {protect_us:>8.2f}us {unprotect_us:>8.2f}us {share:>13.3f}%")


if __name__ == "__main__":
    main()
