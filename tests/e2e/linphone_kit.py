"""A headless linphonec for the end-to-end drivers (shared/peers/README.md): its configuration,
its start under a HOME of its own, and driving it through its stdin. Drivers run inside
``unshare -n``. The configuration is always a file of the test's: linphonec writes it back on
exit, whatever path it was given."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.sip.peers.harness import SIPP, UNSHARE, have_root

__all__ = [
    "NETNS_PEERS",
    "Linphone",
    "logged_messages",
    "start_linphone",
    "until",
    "write_linphonerc",
]

LINPHONEC = shutil.which("linphonec")

# The pytestmark of a test whose driver runs linphonec, SIPp and the PBX in ``unshare -n``.
NETNS_PEERS = [
    pytest.mark.peer,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
    pytest.mark.skipif(LINPHONEC is None, reason="linphonec not installed (linphone-cli)"),
    pytest.mark.skipif(UNSHARE is None or not have_root(), reason="needs root and unshare -n"),
]


def write_linphonerc(
    path: Path,
    *,
    sip: Sequence[str],
    proxy: str | None,
    identity: str = "",
    username: str = "",
    password: str = "",
    realm: str = "",
    rtp: Sequence[str] = (),
) -> None:
    """linphonec's configuration: ``sip`` lines of its [sip] section (ports, TLS, media
    encryption), ``rtp`` lines of its [rtp] section, one account at ``proxy`` (also its route)
    as ``identity`` (``proxy`` None: no account, as a carrier that calls us directly), no
    sound card."""
    lines = "\n".join(sip)
    rtp_lines = "".join(f"{line}\n" for line in rtp)
    common = f"""[sip]
{lines}
{"default_proxy=0" if proxy else "default_proxy=-1"}
register_only_when_network_is_up=0
[rtp]
audio_rtp_port=17000
{rtp_lines}[net]
firewall_policy=0
[sound]
echocancellation=0
"""
    if proxy is None:
        path.write_text(common)
        return
    path.write_text(
        common
        + f"""[proxy_0]
reg_proxy=<{proxy}>
reg_route=<{proxy};lr>
reg_identity={identity}
reg_expires=600
reg_sendregister=1
publish=0
[auth_info_0]
username={username}
passwd={password}
realm={realm}
domain={realm}
"""
    )


def logged_messages(log: str, way: str) -> list[str]:
    """The SIP messages linphonec's debug log (read as text) says it ``sent`` or
    ``received``, in order: each from the line after its log line to the next timestamped
    line."""
    marker = {"sent": "message sent to ", "received": " new bytes from "}[way]
    return [m.split("\n", 1)[-1].split("\n20", 1)[0] for m in log.split(marker)[1:]]


async def until(check: Any, within: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


class Linphone:
    """linphonec driven through its stdin; its output collected for the report."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        assert proc.stdout is not None
        self._reader = asyncio.ensure_future(self._read(proc.stdout))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.lines.append(line.decode(errors="replace").rstrip())

    async def saw(self, *parts: str, what: str, within: float = 10) -> None:
        """Wait for an output line of linphonec holding all ``parts``."""
        await until(lambda: any(all(p in line for p in parts) for line in self.lines), within, what)

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.send("quit")
        try:
            await asyncio.wait_for(self.proc.wait(), 5)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        self._reader.cancel()


async def start_linphone(workdir: Path, rc: Path, log: Path) -> Linphone:
    """linphonec on ``rc``, auto-answering, debug log to ``log``, HOME under ``workdir`` (it
    keeps its database and logs there)."""
    home = workdir / "home"
    (home / ".local" / "share" / "linphone").mkdir(parents=True)
    proc = await asyncio.create_subprocess_exec(
        "linphonec", "-c", str(rc), "-a", "-S", "-d", "6", "-l", str(log),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    return Linphone(proc)
