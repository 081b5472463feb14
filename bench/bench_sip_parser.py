"""Throughput of the SIP message parser (zvonar.sip.message) on one core.

Run: .venv/bin/python bench/bench_sip_parser.py [--seconds 2.0] [--rounds 5]

Measures, for a carrier-style INVITE with SDP and a 200 OK:
  * parse_message + the accessors a transaction layer reads
    (call_id, cseq, top_via.branch, from_.tag, to.tag);
  * classify_datagram (parse + full validation, what the UDP transport runs);
  * serialize() of a freshly built (uncached) message.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import replace

from zvonar.sip.message import SipMessage, SipRequest, classify_datagram, parse_message

SDP = (
    b"v=0\r\n"
    b"o=- 3849204718 3849204718 IN IP4 203.0.113.17\r\n"
    b"s=-\r\n"
    b"c=IN IP4 203.0.113.17\r\n"
    b"t=0 0\r\n"
    b"m=audio 31842 RTP/AVP 8 0 18 101\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:18 G729/8000\r\n"
    b"a=fmtp:18 annexb=no\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-15\r\n"
    b"a=ptime:20\r\n"
    b"a=sendrecv\r\n"
)

INVITE = (
    "INVITE sip:+74951234567@pbx.example.ru:5060;user=phone SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 198.51.100.23:5060;branch=z9hG4bK1f3c9a7e-24b1-4b8d;rport\r\n"
    "Max-Forwards: 69\r\n"
    'From: "+79161234567" <sip:+79161234567@198.51.100.23;user=phone>;tag=as5f2c1a7d\r\n'
    "To: <sip:+74951234567@pbx.example.ru;user=phone>\r\n"
    "Call-ID: 6a8b2f1e4c3d11ef9b7e0242ac120002@198.51.100.23\r\n"
    "CSeq: 102 INVITE\r\n"
    "Contact: <sip:+79161234567@198.51.100.23:5060;transport=udp>\r\n"
    "Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, INFO, UPDATE, PRACK\r\n"
    "Supported: replaces, timer, 100rel\r\n"
    "Session-Expires: 1800;refresher=uac\r\n"
    "P-Asserted-Identity: <sip:+79161234567@198.51.100.23;user=phone>\r\n"
    "User-Agent: CarrierSBC 4.2\r\n"
    "Content-Type: application/sdp\r\n"
    f"Content-Length: {len(SDP)}\r\n"
    "\r\n"
).encode() + SDP

OK200 = (
    "SIP/2.0 200 OK\r\n"
    "Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK776asdhds;received=203.0.113.5;rport=5060\r\n"
    'From: "Operator" <sip:101@pbx.example.ru>;tag=1928301774\r\n'
    "To: <sip:+79161234567@carrier.example.net>;tag=a6c85cf\r\n"
    "Call-ID: a84b4c76e66710@pbx.example.ru\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Contact: <sip:+79161234567@198.51.100.23:5060>\r\n"
    "Allow: INVITE, ACK, CANCEL, OPTIONS, BYE\r\n"
    "Supported: timer\r\n"
    "Server: CarrierSBC 4.2\r\n"
    "Content-Type: application/sdp\r\n"
    f"Content-Length: {len(SDP)}\r\n"
    "\r\n"
).encode() + SDP


def transaction_view(data: bytes) -> None:
    msg = parse_message(data)
    _ = (msg.call_id, msg.cseq, msg.top_via.branch, msg.from_.tag, msg.to.tag)


def rate(fn: Callable[[], object], seconds: float, rounds: int) -> float:
    """Best of `rounds` timed runs (other processes on the machine only ever slow us down)."""
    best = 0.0
    batch = 200
    for _ in range(rounds):
        n = 0
        start = time.perf_counter()
        deadline = start + seconds / rounds
        while True:
            for _ in range(batch):
                fn()
            n += batch
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, n / (now - start))
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.0, help="time per case")
    ap.add_argument("--rounds", type=int, default=5, help="report the best of N runs")
    args = ap.parse_args()
    invite = parse_message(INVITE)
    assert isinstance(invite, SipRequest)
    ok = parse_message(OK200)
    print(f"INVITE: {len(INVITE)} bytes, {len(invite.headers)} headers; 200 OK: {len(OK200)} bytes")

    def serialize_fresh(msg: SipMessage) -> Callable[[], object]:
        # A new object each time so the cached wire form is not reused.
        return lambda: replace(msg).serialize()

    cases: list[tuple[str, Callable[[], object]]] = [
        ("INVITE parse + txn accessors", lambda: transaction_view(INVITE)),
        ("200 OK parse + txn accessors", lambda: transaction_view(OK200)),
        ("INVITE classify_datagram", lambda: classify_datagram(INVITE)),
        ("200 OK classify_datagram", lambda: classify_datagram(OK200)),
        ("INVITE serialize", serialize_fresh(invite)),
        ("200 OK serialize", serialize_fresh(ok)),
    ]
    for label, fn in cases:
        print(f"{label:32s} {rate(fn, args.seconds, args.rounds):>10,.0f} msg/s")


if __name__ == "__main__":
    main()
