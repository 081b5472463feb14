"""Calls/s of the sans-IO SIP core on one core: parse → transaction → dialog → serialize.

No sockets and no event loop: the `UserAgent` and the `EchoPbx` application (exactly what
`python -m zvonar.sip.io.server --no-security` runs) are fed SIPp-style INVITE, ACK and BYE
datagrams as bytes, on a virtual clock that advances 1/rate s per call, so transactions
and timers (Timer J/L after 32 s, the 2xx retransmission stopped by the ACK) live as long
as on a real server at that rate. What the core wants sent is taken and the 200 OK's To
tag read back for the ACK and BYE, as SIPp does. The figure depends only on the CPU, not
on what else the machine runs (it is the ceiling of bench_sip_uas.py, which adds the
sockets and the loop).

    .venv/bin/python bench/bench_sip_core.py                 # SIPp-style and rport calls
    .venv/bin/python bench/bench_sip_core.py --calls 20000 --profile core.prof
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable

from zvonar.sip.io.server import tune_gc
from zvonar.sip.io.testserver import EchoPbx
from zvonar.sip.location import LocationService
from zvonar.sip.registrar import Registrar
from zvonar.sip.security import SecurityConfig, SecurityPolicy
from zvonar.sip.ua import Flow, UserAgent

SERVER = ("127.0.0.1", 5060)
_TO_TAG = re.compile(rb"\r\nTo:[^\r]*;tag=([^;\r]+)")

SDP = (
    "v=0\r\n"
    "o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n"
    "s=-\r\n"
    "c=IN IP4 127.0.0.1\r\n"
    "t=0 0\r\n"
    "m=audio 6000 RTP/AVP 0\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
)


def _message(start: str, via: str, n: int, cseq: str, to_tag: str, body: str = "") -> bytes:
    """One request as SIPp's built-in `uac` scenario writes it."""
    ctype = "Content-Type: application/sdp\r\n" if body else ""
    return (
        f"{start}\r\n"
        f"Via: {via}\r\n"
        f"From: sipp <sip:sipp@127.0.0.1:5061>;tag=4242SIPpTag00{n}\r\n"
        f"To: answer <sip:answer@127.0.0.1:5060>{to_tag}\r\n"
        f"Call-ID: {n}-4242@127.0.0.1\r\n"
        f"CSeq: {cseq}\r\n"
        "Contact: sip:sipp@127.0.0.1:5061\r\n"
        "Max-Forwards: 70\r\n"
        "Subject: Performance Test\r\n"
        f"{ctype}"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
        f"{body}"
    ).encode()


class Core:
    """The UA core + EchoPbx, driven the way sip/io/runner.py drives them."""

    def __init__(self, security: bool) -> None:
        self.ua = UserAgent(
            security=SecurityPolicy(SecurityConfig()) if security else None,
            registrar=Registrar(LocationService()),
        )
        self.ua.set_local_address("UDP", *SERVER)
        self.pbx = EchoPbx(self.ua)
        self.sent = 0

    def feed(self, data: bytes, flow: Flow, now: float) -> list[bytes]:
        ua = self.ua
        ua.receive(data, flow, now)
        return self._pump(now)

    def _pump(self, now: float) -> list[bytes]:
        ua = self.ua
        while True:
            events = ua.events()
            if not events:
                break
            for event in events:
                self.pbx.handle_event(event, now)
        out = [data for data, _flow in ua.datagrams_to_send(now)]
        self.sent += len(out)
        return out

    def tick(self, now: float) -> None:
        deadline = self.ua.next_deadline()
        if deadline is not None and deadline <= now:
            self.ua.handle_timer(now)
            self._pump(now)


def run_calls(core: Core, calls: int, rate: float, rport: bool, start: int = 0) -> float:
    """Feed `calls` INVITE/ACK/BYE sequences; returns the CPU seconds it took."""
    # A phone behind NAT: rport asked, sent-by a private address (received= and rport= are
    # added, RFC 3581). SIPp: sent-by is the source, no rport (the Via is left alone).
    flow = Flow("UDP", "127.0.0.1", 5061)
    sent_by = "192.168.1.20:5061" if rport else "127.0.0.1:5061"
    suffix = ";rport" if rport else ""
    ruri = "sip:answer@127.0.0.1:5060"
    step = 1.0 / rate
    now = 1000.0 + start * step
    begin = time.process_time()
    for n in range(start, start + calls):
        via = f"SIP/2.0/UDP {sent_by};branch=z9hG4bK-{n}-1{suffix}"
        out = core.feed(_message(f"INVITE {ruri} SIP/2.0", via, n, "1 INVITE", "", SDP), flow, now)
        m = None
        for data in out:
            if data.startswith(b"SIP/2.0 200"):
                m = _TO_TAG.search(data)
        if m is None:
            raise RuntimeError(f"call {n}: no 200 OK with a To tag in {out!r}")
        tag = ";tag=" + m.group(1).decode()
        via = f"SIP/2.0/UDP {sent_by};branch=z9hG4bK-{n}-2{suffix}"
        core.feed(_message(f"ACK {ruri} SIP/2.0", via, n, "1 ACK", tag), flow, now)
        via = f"SIP/2.0/UDP {sent_by};branch=z9hG4bK-{n}-3{suffix}"
        out = core.feed(_message(f"BYE {ruri} SIP/2.0", via, n, "2 BYE", tag), flow, now)
        if not out or not out[-1].startswith(b"SIP/2.0 200"):
            raise RuntimeError(f"call {n}: BYE not answered 200: {out!r}")
        now += step
        core.tick(now)
    return time.process_time() - begin


def measure(label: str, calls: int, rate: float, rport: bool, security: bool, rounds: int,
            profile: Callable[[Callable[[], object]], object] | None = None) -> float:  # fmt: skip
    """Best of `rounds` runs of calls/rounds calls each (a busy machine only slows us)."""
    core = Core(security)
    # Warm up to the steady state: a full Timer J/L window (32 s) of live transactions.
    done = int(rate * 34)
    run_calls(core, done, rate, rport)
    if profile is not None:
        profile(lambda: run_calls(core, calls, rate, rport, start=done))
        return 0.0
    per_round = max(calls // rounds, 1)
    best = float("inf")
    for _ in range(rounds):
        best = min(best, run_calls(core, per_round, rate, rport, start=done) / per_round)
        done += per_round
    print(f"{label:34s} {1 / best:8,.0f} calls/s  ({best * 1e6:6.1f} us CPU per call)")
    return 1 / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--calls", type=int, default=20_000, help="measured calls per case")
    ap.add_argument("--rate", type=float, default=2000.0, help="virtual calls/s (timer load)")
    ap.add_argument("--rounds", type=int, default=5, help="report the best of N runs")
    ap.add_argument("--security", action="store_true", help="with the default SecurityPolicy")
    ap.add_argument("--profile", default=None, help="cProfile the rport case into FILE")
    args = ap.parse_args()
    tune_gc()  # as the server does
    if args.profile:
        import cProfile

        prof = cProfile.Profile()
        measure("profile", args.calls, args.rate, True, args.security, 1,
                lambda fn: prof.runcall(fn))  # fmt: skip
        prof.dump_stats(args.profile)
        print(f"profile written to {args.profile}")
        return
    sec = " +security" if args.security else ""
    measure(f"SIPp uac (no rport){sec}", args.calls, args.rate, False, args.security, args.rounds)
    measure(
        f"NAT phone (rport, received){sec}", args.calls, args.rate, True, args.security, args.rounds
    )


if __name__ == "__main__":
    main()
