"""What RTCP costs the embedded media engine per report (media/rtcp_session.py, io/srtp.py).

Run: .venv/bin/python bench/bench_rtcp.py [--reports 50000]

One leg's RTCP as a relayed call runs it: writing our compound report (SR with a block about
the peer's stream, SDES CNAME), and reading the peer's (RR with a block about ours, the round
trip from LSR/DLSR) — in clear and as SRTCP (libsrtp's protect/unprotect added). Each leg
reports about every 4 s (RFC 3550 §6.3.1 with the 5 s minimum) and hears one report as often,
so the last column is a call's share of one core for its two legs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from zvonar.media.io.srtp import SrtpStreams
from zvonar.media.rtcp import ReceiverReport, ReportBlock, ntp_from_unix, ntp_middle, serialize_rtcp
from zvonar.media.rtcp_session import MIN_INTERVAL, RtcpSession
from zvonar.media.sdes import CryptoSuite, SrtpParams, new_master_key
from zvonar.media.stats import ReceiverStats

OURS, THEIRS = 0x1111, 0x2222
COMPENSATED = MIN_INTERVAL / 1.21828  # the mean interval of §6.3.1's draw


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reports", type=int, default=50_000)
    args = ap.parse_args()
    n = args.reports
    receiver = ReceiverStats(THEIRS, 8000)
    for k in range(250):
        receiver.update(k, 160 * k, k * 0.02)
    wall = time.time()
    theirs = serialize_rtcp(
        [
            ReceiverReport(
                THEIRS,
                (ReportBlock(OURS, 0, 0, 250, 10, lsr=ntp_middle(ntp_from_unix(wall)), dlsr=6553),),
            )
        ]
    )
    print(f"{'path':<8} {'write ours':>11} {'read theirs':>12} {'per call (2 legs)':>18}")
    for secure in (False, True):
        session = RtcpSession(OURS)
        streams = peer = None
        if secure:
            ours_key, their_key = new_master_key(), new_master_key()
            suite = CryptoSuite.AES_CM_128_HMAC_SHA1_80
            streams = SrtpStreams(SrtpParams(suite, ours_key, their_key))
            peer = SrtpStreams(SrtpParams(suite, their_key, ours_key))
        t0 = time.perf_counter()
        for k in range(n):
            packet = session.report(
                wall=wall, now=5.0, rtp_timestamp=160 * k, sent_packets=250 + k,
                sent_bytes=172 * (250 + k), receiver=receiver,
            )  # fmt: skip
            if streams is not None:
                streams.protect_rtcp(packet)
        t1 = time.perf_counter()
        incoming = [theirs] * n
        if peer is not None:
            incoming = [w for w in (peer.protect_rtcp(theirs) for _ in range(n)) if w is not None]
        t2 = time.perf_counter()
        for data in incoming:
            if streams is not None:
                clear = streams.unprotect_rtcp(data)
                assert clear is not None
                data = clear
            session.receive(data, wall=wall + 0.1, now=5.0, receiver=receiver, sent_packets=250)
        t3 = time.perf_counter()
        assert session.peer is not None and session.rtt is not None
        write_us = (t1 - t0) / n * 1e6
        read_us = (t3 - t2) / len(incoming) * 1e6
        share = 2 * (write_us + read_us) / COMPENSATED / 1e6 * 100
        name = "SRTCP" if secure else "RTCP"
        print(f"{name:<8} {write_us:>9.2f}us {read_us:>10.2f}us {share:>17.4f}%")


if __name__ == "__main__":
    main()
