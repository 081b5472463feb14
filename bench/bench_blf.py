"""Busy lamp fields: what one extension's change of state costs with N phones watching it.

In process, no sockets: a real UA core and runner (``SipRunner.send`` collects datagrams),
the real ``Blf`` (pbx/blf.py), a stand-in credential store (N watchers, one watched
extension). Each round: the extension rings (``CallRinging``), one loop turn, every NOTIFY
answered 200 (parsed by the UA as a phone's answer would be); then it talks; then it is
idle again. Reported per N: NOTIFYs sent, CPU per NOTIFY (built, sent, its 200 taken) and
per state change for all N, the CPU of the BLF's loop turns, median and p99 (what a call's
signalling may wait: ``NOTIFY_PER_TURN`` bounds it), and the subscribe cost (SUBSCRIBE in,
200 and the first NOTIFY out).

    .venv/bin/python bench/bench_blf.py                 # N = 10, 100, 1000
    .venv/bin/python bench/bench_blf.py --watchers 2000 --rounds 20
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
import uuid
from datetime import UTC, datetime
from typing import cast

from zvonar.calls.events import (
    CallAnswered,
    CallEnded,
    CallRinging,
    Disposition,
    HangupSide,
    Target,
    TargetKind,
)
from zvonar.calls.talking import Talking
from zvonar.pbx.blf import Blf
from zvonar.pbx.credentials import DirectoryCredentialStore, SipIdentity
from zvonar.sip.auth import Authorized
from zvonar.sip.io.runner import SipRunner
from zvonar.sip.message import SipRequest, parse_message
from zvonar.sip.ua import Flow, UaEvent, UserAgent

ACCOUNT = uuid.uuid4()
REALM = "bench.zvonar"
WATCHED = SipIdentity(ACCOUNT, uuid.uuid4(), "101", "Anna", f"sip:101@{REALM}")
NOW = datetime(2026, 12, 7, tzinfo=UTC)


class _Credentials:
    def __init__(self, watchers: int) -> None:
        self.who = {
            str(1000 + i): SipIdentity(ACCOUNT, uuid.uuid4(), str(1000 + i), "w")
            for i in range(watchers)
        }

    def serves(self, realm: str) -> bool:
        return realm == REALM

    def identity(self, user: str, realm: str) -> SipIdentity | None:
        return self.who.get(user)

    def by_extension(self, account_id: uuid.UUID, extension: str) -> SipIdentity | None:
        return WATCHED if extension == "101" else None


class _FromUser:
    def check(self, request: SipRequest, now: float) -> Authorized:
        uri = request.from_.uri
        return Authorized(getattr(uri, "user", "") or "", REALM, "MD5")


class _NoCalls:
    def handle_event(self, event: UaEvent, now: float) -> None:
        pass


def _subscribe(i: int) -> bytes:
    user = 1000 + i
    return (
        f"SUBSCRIBE sip:101@{REALM} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{20000 + i};branch=z9hG4bK-b{i}\r\n"
        f"From: <sip:{user}@{REALM}>;tag=w{i}\r\nTo: <sip:101@{REALM}>\r\n"
        f"Call-ID: blf{i}@127.0.0.1\r\nCSeq: 1 SUBSCRIBE\r\n"
        f"Contact: <sip:{user}@127.0.0.1:{20000 + i}>\r\nEvent: dialog\r\n"
        "Accept: application/dialog-info+xml\r\nExpires: 3600\r\nMax-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def _ok(notify: SipRequest) -> bytes:
    return (
        f"SIP/2.0 200 OK\r\nVia: {notify.header('Via')}\r\nFrom: {notify.header('From')}\r\n"
        f"To: {notify.header('To')}\r\nCall-ID: {notify.call_id}\r\n"
        f"CSeq: {notify.cseq.seq} NOTIFY\r\nContent-Length: 0\r\n\r\n"
    ).encode()


async def run(watchers: int, rounds: int) -> None:
    ua = UserAgent(challenger=_FromUser(), allow=("INVITE", "ACK", "BYE", "SUBSCRIBE"))  # type: ignore[arg-type]
    ua.set_local_address("UDP", "127.0.0.1", 5060)
    runner = SipRunner(ua)
    sent: list[tuple[bytes, Flow]] = []

    def send(data: bytes, flow: Flow) -> bool:
        sent.append((data, flow))
        return True

    runner.send = send  # type: ignore[method-assign]
    talking = Talking()
    blf = Blf(
        runner,
        cast(DirectoryCredentialStore, _Credentials(watchers)),
        talking,
        max_per_account=watchers + 1,
    )
    runner.app = blf.front(_NoCalls())
    loop = asyncio.get_running_loop()
    turns: list[float] = []  # CPU of each of the BLF's loop turns (its _flush)
    flush = blf._flush

    def timed_flush() -> None:
        t = time.process_time()
        flush()
        turns.append(time.process_time() - t)

    blf._flush = timed_flush  # type: ignore[method-assign]

    def answer_all() -> int:
        out, sent[:] = list(sent), []
        notifies = 0
        for data, flow in out:
            msg = parse_message(data)
            if isinstance(msg, SipRequest) and msg.method == "NOTIFY":
                notifies += 1
                ua.receive(_ok(msg), flow, loop.time())
        runner.pump()
        return notifies

    start = time.process_time()
    for i in range(watchers):
        ua.receive(_subscribe(i), Flow("UDP", "127.0.0.1", 20000 + i), loop.time())
        runner.pump()
    subscribe_cpu = time.process_time() - start
    answer_all()
    assert blf.count == watchers, blf.count
    gc.collect()
    gc.freeze()  # as the PBX's heap policy does after start-up (pbx/heap.py)

    target = Target(TargetKind.employee, "Anna", WATCHED.employee_id)
    notifies, changes, cpu = 0, 0, 0.0
    turns.clear()
    for r in range(rounds):
        call = f"c{r}"
        ringing = CallRinging(
            account_id=ACCOUNT, call_id=call, leg_id=f"{call}.b", target=target, at=NOW
        )
        answered = CallAnswered(
            account_id=ACCOUNT, call_id=call, leg_id=f"{call}.b", at=NOW, by=WATCHED.employee_id
        )
        ended = CallEnded(
            account_id=ACCOUNT,
            call_id=call,
            disposition=Disposition.answered,
            ended_at=NOW,
            hangup=HangupSide.caller,
        )
        for event in (ringing, answered, ended):
            t0 = time.process_time()
            talking.apply(event)
            blf.lines.apply(event)
            while True:  # the BLF's turns (NOTIFY_PER_TURN each), each answered
                await asyncio.sleep(0)
                notifies += answer_all()
                if blf.settled:
                    break
            cpu += time.process_time() - t0
            changes += 1
    blf.close()
    print(
        f"watchers {watchers:5d}: subscribe {subscribe_cpu / watchers * 1e6:7.1f} us each; "
        f"{notifies} NOTIFYs over {changes} changes: {cpu / notifies * 1e6:6.1f} us per NOTIFY "
        f"(built, sent, 200 parsed), {cpu / changes * 1e3:7.2f} ms per change for all; "
        f"loop turns: median {_at(turns, 0.5) * 1e3:.2f} ms, p99 {_at(turns, 0.99) * 1e3:.2f} ms"
    )


def _at(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--watchers", default="10,100,1000")
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    for n in (int(x) for x in args.watchers.split(",")):
        asyncio.run(run(n, args.rounds))


if __name__ == "__main__":
    main()
