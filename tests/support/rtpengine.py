"""A private userspace rtpengine on loopback, one per test session (skipped without it).

The fixture lives here and is exposed by the root conftest, so every test package that needs it
(tests/media/rtpengine, tests/e2e) shares the one instance.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.procs import stop_process
from tests.support.workers import port_slice


@dataclass(frozen=True)
class Daemon:
    ng_port: int
    dtmf_port: int
    recording_dir: Path
    log: Path


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ping(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        try:
            sock.sendto(b"probe d7:command4:pinge", ("127.0.0.1", port))
            return b"pong" in sock.recv(1024)
        except OSError:
            return False


@pytest.fixture(scope="session")
def rtpengine_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    binary = shutil.which("rtpengine")
    if binary is None:
        pytest.skip("rtpengine not installed (Debian package rtpengine-daemon)")
    base = tmp_path_factory.mktemp("rtpengine")
    recording_dir = base / "recordings"
    recording_dir.mkdir()
    daemon = Daemon(_free_udp_port(), _free_udp_port(), recording_dir, base / "rtpengine.log")
    first, last = port_slice(40000, 59199, align=2)  # one daemon per xdist worker
    low = random.randrange(first, last - 199, 2)
    command = [
        binary,
        # Not the Debian config file: it binds fixed CLI/HTTP ports and "interface = any".
        "--config-file=none",
        "--table=-1",  # userspace only: the kernel module cannot load here
        "--interface=127.0.0.1",
        f"--listen-ng=127.0.0.1:{daemon.ng_port}",
        "--foreground",
        f"--port-min={low}",
        f"--port-max={low + 199}",
        "--log-stderr",
        "--log-level=6",
        "--no-log-timestamps",
        f"--recording-dir={recording_dir}",
        "--recording-method=pcap",
        f"--dtmf-log-dest=127.0.0.1:{daemon.dtmf_port}",
        "--delete-delay=0",
    ]
    with daemon.log.open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not _ping(daemon.ng_port):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"rtpengine did not start:\n{daemon.log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield daemon
    finally:
        stop_process(proc)
