"""A headless baresip for the end-to-end drivers (shared/peers/README.md): its config, its
start with a bounded lifetime, and its stop. Drivers run inside ``unshare -n``."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import pytest

from tests.sip.peers.harness import BARESIP, SIPP, UNSHARE, have_root

__all__ = [
    "NETNS_PEERS",
    "phone_account",
    "start_baresip",
    "stop_baresip",
    "write_config",
]

# The pytestmark of a test whose driver runs baresip, SIPp and the PBX in ``unshare -n``.
NETNS_PEERS = [
    pytest.mark.peer,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
    pytest.mark.skipif(BARESIP is None, reason="baresip not installed (Debian package baresip)"),
    pytest.mark.skipif(UNSHARE is None or not have_root(), reason="needs root and unshare -n"),
]


def phone_account(ext: str, slug: str, password: str, pbx_port: int, extra: str = "") -> str:
    """baresip's ``accounts`` line for employee ``ext`` of account ``slug``: the AOR is theirs
    (``<ext>@<slug>.zvonar``), every request goes to the PBX as outbound proxy; ``extra``:
    more parameters (``;answermode=auto``)."""
    return (
        f"<sip:{ext}@{slug}.zvonar;transport=udp>;auth_pass={password};"
        f'outbound="sip:127.0.0.1:{pbx_port};transport=udp";regint=120{extra}\n'
    )


def write_config(
    conf: Path,
    accounts: str,
    *,
    port: int,
    rtp_ports: str,
    extra: Sequence[str] = (),
    source: str = "aubridge,null_a",
) -> None:
    """baresip's ``config`` (SIP on 127.0.0.1:``port``, its TLS listener on port + 1; G.711;
    silent audio unless ``source`` says otherwise, e.g. ``aufile,<wav>``; ``extra`` lines
    such as ``sip_cafile`` or more modules) and its ``accounts`` file."""
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "config").write_text(
        "\n".join(
            [
                "poll_method epoll",
                f"sip_listen 127.0.0.1:{port}",
                *extra,
                "net_interface 127.0.0.1",
                f"rtp_ports {rtp_ports}",
                f"audio_source {source}",
                "audio_player aubridge,null_a",
                "audio_alert aubridge,null_a",
                "module_path /usr/lib/baresip/modules",
                "module g711.so",
                "module aubridge.so",
                "module_tmp uuid.so",
                "module_tmp account.so",
                "",
            ]
        )
    )
    (conf / "accounts").write_text(accounts)


async def start_baresip(
    conf: Path, log: IO[bytes], seconds: int = 40
) -> asyncio.subprocess.Process:
    """baresip on ``conf``, quitting by itself after ``seconds`` (-t), output to ``log``."""
    return await asyncio.create_subprocess_exec(
        "baresip", "-f", str(conf), "-t", str(seconds),
        stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
    )  # fmt: skip


async def stop_baresip(proc: asyncio.subprocess.Process, within: float = 3.0) -> None:
    """SIGTERM, then SIGKILL if it is still there after ``within`` seconds; always reaped."""
    proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), within)
    except TimeoutError:
        proc.kill()
        await proc.wait()
