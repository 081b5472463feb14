"""Run our SIP server and baresip together and drive baresip over its control socket.

Meant to run inside a private network namespace (baresip opens DNS sockets on 0.0.0.0;
see shared/peers/README.md), started by test_baresip.py as

    unshare -n sh -c 'ip link set lo up; exec python -m tests.sip.peers.baresip_driver OUT DIR'

It writes a JSON report to OUT (what happened, with timings); the test asserts on it.
Everything is bounded: each wait has a timeout, baresip runs with -t.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import struct
import sys
import time
import wave
from pathlib import Path
from typing import Any

from zvonar.sip.io.server import SipServer, SipServerConfig, serve_sip
from zvonar.sip.registrar import RegistrarConfig
from zvonar.sip.security import SecurityConfig

SIP_PORT = 5060
BARESIP_SIP = 5081
CTRL_PORT = 4445
USER, PASSWORD = "bob", "bob-secret-42"
REGINT = 4  # seconds: short, so that baresip re-registers within the test


def write_tone(path: Path, freq: float = 440.0, seconds: float = 2.0, rate: int = 8000) -> None:
    """An 8 kHz mono 16-bit WAV with a sine tone (baresip's aufile audio source)."""
    frames = b"".join(
        struct.pack("<h", int(12000 * math.sin(2 * math.pi * freq * n / rate)))
        for n in range(int(seconds * rate))
    )
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)


def write_config(conf: Path, wav: Path, recordings: Path) -> None:
    conf.mkdir(parents=True, exist_ok=True)
    recordings.mkdir(parents=True, exist_ok=True)
    (conf / "config").write_text(
        "\n".join(
            [
                "poll_method epoll",
                f"sip_listen 127.0.0.1:{BARESIP_SIP}",
                "net_interface 127.0.0.1",
                "rtp_ports 20000-20019",
                f"audio_source aufile,{wav}",
                "audio_player aubridge,null_a",
                "audio_alert aubridge,null_a",
                "module_path /usr/lib/baresip/modules",
                "module g711.so",
                "module aufile.so",
                "module aubridge.so",
                "module sndfile.so",
                "module_tmp uuid.so",
                "module_tmp account.so",
                "module_app menu.so",
                "module_app ctrl_tcp.so",
                f"ctrl_tcp_listen 127.0.0.1:{CTRL_PORT}",
                f"snd_path {recordings}",
                "",
            ]
        )
    )
    (conf / "accounts").write_text(
        f"<sip:{USER}@127.0.0.1>;auth_pass={PASSWORD};regint={REGINT};answermode=auto\n"
    )


class Control:
    """baresip's ctrl_tcp: netstring-framed JSON commands, responses and events."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.events: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []
        self._new = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, deadline: float) -> Control:
        while True:
            try:
                r, w = await asyncio.open_connection("127.0.0.1", CTRL_PORT)
                return cls(r, w)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)

    async def _read(self) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, ValueError):
            while True:
                size = int((await self.reader.readuntil(b":"))[:-1])
                payload = await self.reader.readexactly(size + 1)  # the JSON and ","
                msg = json.loads(payload[:-1])
                msg["at"] = time.monotonic()
                (self.events if msg.get("event") else self.responses).append(msg)
                self._new.set()

    async def send(self, command: str, params: str = "", token: str = "") -> None:
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        self.writer.write(str(len(body)).encode() + b":" + body + b",")
        await self.writer.drain()

    async def wait_event(self, kind: str, count: int = 1, wait: float = 10.0) -> bool:
        deadline = time.monotonic() + wait
        while sum(e.get("type") == kind for e in self.events) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._new.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._new.wait(), left)
        return True

    async def close(self) -> None:
        self._task.cancel()
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


async def scenario(server: SipServer, ctl: Control, report: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    t0 = time.monotonic()
    # 1. Registration with digest, and at least one refresh within a few regints.
    report["registered"] = await ctl.wait_event("REGISTER_OK", 1, 10)
    report["reregistered"] = await ctl.wait_event("REGISTER_OK", 2, 3 * REGINT)
    bindings = server.ua.lookup(f"sip:{USER}@127.0.0.1", loop.time())
    report["bindings"] = [
        {"contact": b.contact, "source": list(b.source), "transport": b.transport} for b in bindings
    ]
    report["register_time"] = time.monotonic() - t0

    # 2. baresip calls our "answer" endpoint, then hangs up.
    await ctl.send("dial", "sip:answer@127.0.0.1", "dial1")
    report["out_established"] = await ctl.wait_event("CALL_ESTABLISHED", 1, 10)
    await asyncio.sleep(0.5)  # some audio flows
    await ctl.send("hangup", "", "hang1")
    report["out_closed"] = await ctl.wait_event("CALL_CLOSED", 1, 10)

    # 3. We call baresip (auto-answer) at its registered contact, then hang up.
    if bindings:
        b = bindings[0]
        leg = server.pbx.originate(b.contact, server.ua.binding_flow(b), loop.time())
        server.runner.pump()
        assert leg.answered is not None and leg.ended is not None
        try:
            report["in_status"] = await asyncio.wait_for(leg.answered, 10)
        except TimeoutError:
            report["in_status"] = None
        report["in_established"] = await ctl.wait_event("CALL_ESTABLISHED", 2, 10)
        await asyncio.sleep(0.5)
        server.pbx.hangup(leg, loop.time())
        server.runner.pump()
        try:
            report["in_ended"] = await asyncio.wait_for(leg.ended, 10)
        except TimeoutError:
            report["in_ended"] = None
        report["in_closed"] = await ctl.wait_event("CALL_CLOSED", 2, 10)


async def main(workdir: Path) -> dict[str, Any]:
    report: dict[str, Any] = {"ok": False}
    wav, conf = workdir / "tone-440.wav", workdir / "baresip"
    write_tone(wav)
    write_config(conf, wav, workdir / "recordings")
    server = await serve_sip(
        SipServerConfig(
            listen=(("127.0.0.1", SIP_PORT),),
            users={USER: PASSWORD},
            realm="zvonar.test",
            registrar=RegistrarConfig(min_expires=2),
            security=SecurityConfig(trusted=("127.0.0.0/8",)),
        )
    )
    log = (workdir / "baresip.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        "baresip", "-f", str(conf), "-t", "60",
        stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
    )  # fmt: skip
    ctl: Control | None = None
    try:
        ctl = await Control.connect(time.monotonic() + 10)
        await scenario(server, ctl, report)
        report["ok"] = True
    except Exception as exc:  # reported, not raised: the test shows the JSON
        report["error"] = repr(exc)
    finally:
        report["events"] = [e.get("type") for e in (ctl.events if ctl else [])]
        report["server_stats"] = server.stats()
        if ctl is not None:
            with contextlib.suppress(Exception):
                await ctl.send("quit")
            await ctl.close()
        try:
            await asyncio.wait_for(proc.wait(), 3)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        log.close()
        await server.close()
    return report


if __name__ == "__main__":
    result = asyncio.run(main(Path(sys.argv[2])))
    Path(sys.argv[1]).write_text(json.dumps(result, indent=1))
