"""Helpers for the real-peer tests: free ports, bounded SIPp runs, SIPp's stat CSV."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

SIPP = shutil.which("sipp")
BARESIP = shutil.which("baresip")
UNSHARE = shutil.which("unshare")
SCENARIOS = Path(__file__).parent / "scenarios"


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on `host` right now (SIP uses both, §18)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(50):
        with socket.socket(family, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = udp.getsockname()[1]
            with socket.socket(family, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
            return int(port)
    raise RuntimeError("no free port found")


@dataclass(frozen=True)
class SippStats:
    """The last row of a `-trace_stat` CSV (cumulative columns)."""

    row: dict[str, str]

    def count(self, name: str) -> int:
        return int(self.row.get(f"{name}(C)", "0") or 0)

    @property
    def successful(self) -> int:
        return self.count("SuccessfulCall")

    @property
    def failed(self) -> int:
        return self.count("FailedCall")

    @property
    def retransmissions(self) -> int:
        return self.count("Retransmissions")

    @property
    def elapsed(self) -> float:
        """Seconds from start to the last dump (the CSV's epoch columns have microseconds)."""

        def epoch(col: str) -> float:
            return float(self.row[col].split("\t")[-1])

        return epoch("CurrentTime") - epoch("StartTime")


def parse_stat_csv(path: Path) -> SippStats:
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    if len(lines) < 2:
        raise ValueError(f"{path} has no statistics row")
    header = lines[0].rstrip(";").split(";")
    values = lines[-1].rstrip(";").split(";")
    return SippStats(dict(zip(header, values, strict=False)))


@dataclass(frozen=True)
class SippRun:
    returncode: int
    stats: SippStats
    errors: str
    command: list[str]

    def describe(self) -> str:
        return (
            f"sipp exit {self.returncode}, successful {self.stats.successful}, failed "
            f"{self.stats.failed}, retransmissions {self.stats.retransmissions}\n"
            f"command: {' '.join(self.command)}\nerrors:\n{self.errors[-3000:]}"
        )


def sipp_command(
    remote: str,
    *,
    workdir: Path,
    local_ip: str = "127.0.0.1",
    local_port: int,
    calls: int,
    timeout: float = 20.0,
    scenario: str | None = None,
    builtin: str | None = None,
    extra: tuple[str, ...] = (),
    name: str = "sipp",
) -> list[str]:
    """A bounded SIPp command line (-m, -timeout + -timeout_error, -nostdin, stats CSV)."""
    assert SIPP is not None
    what = ["-sf", str(SCENARIOS / scenario)] if scenario else ["-sn", builtin or "uac"]
    cmd = [SIPP]
    if remote:
        cmd.append(remote)
    cmd += what
    cmd += ["-i", local_ip, "-p", str(local_port), "-m", str(calls), "-nostdin"]
    cmd += ["-timeout", f"{timeout:g}s", "-timeout_error"]
    cmd += ["-trace_stat", "-stf", str(workdir / f"{name}.csv"), "-fd", "1"]
    cmd += ["-trace_err", "-error_file", str(workdir / f"{name}_errors.log")]
    cmd += list(extra)
    return cmd


async def run_sipp(cmd: list[str], *, workdir: Path, name: str = "sipp") -> SippRun:
    """Run SIPp to completion (it is bounded by its own -timeout) and read its results."""
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        cwd=workdir,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(proc.communicate(), timeout=90)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    return collect(cmd, proc.returncode or 0, stderr, workdir, name)


def collect(cmd: list[str], returncode: int, stderr: bytes, workdir: Path, name: str) -> SippRun:
    errors = stderr.decode(errors="replace")
    err_file = workdir / f"{name}_errors.log"
    if err_file.exists():
        errors += err_file.read_text(errors="replace")
    stats = parse_stat_csv(workdir / f"{name}.csv")
    return SippRun(returncode, stats, errors, cmd)


async def start_sipp(cmd: list[str], *, workdir: Path) -> asyncio.subprocess.Process:
    """Start a SIPp (e.g. a UAS) that the test talks to; finish it with `finish_sipp`."""
    return await asyncio.create_subprocess_exec(
        *cmd,
        cwd=workdir,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish_sipp(
    proc: asyncio.subprocess.Process, cmd: list[str], *, workdir: Path, name: str, wait: float = 30
) -> SippRun:
    try:
        _, stderr = await asyncio.wait_for(proc.communicate(), timeout=wait)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        _, stderr = await proc.communicate()
    return collect(cmd, proc.returncode or 0, stderr, workdir, name)


def have_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0
