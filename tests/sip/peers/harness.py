"""Helpers for the real-peer tests: free ports, bounded SIPp runs, SIPp's stat CSV, digest
REGISTER scenarios, waiting for a peer to bind, drivers run in a private network namespace.

Shared by tests/sip/peers, tests/e2e, tests/pbx and bench/bench_b2bua.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.support.workers import port_slice

SIPP = shutil.which("sipp")
BARESIP = shutil.which("baresip")
UNSHARE = shutil.which("unshare")
SCENARIOS = Path(__file__).parent / "scenarios"
ROOT = Path(__file__).resolve().parents[3]  # the repository (cwd of `python -m tests...`)


# Ports handed out for peers and listeners: below the kernel's ephemeral range (32768+), so a
# socket bound to port 0 between our check and the peer's bind — the PBX's own RTP legs in the
# tests, any client socket — cannot take it (seen: SIPp "Unable to bind main socket"), and
# below the demo RTP range (20000-20999). Each process starts at its own offset and walks up,
# so a port comes back only after the whole range went round. Under xdist each worker walks
# its own slice of the range (tests/support/workers.py): two workers never race for a port.
_PORT_FIRST, _PORT_LAST = port_slice(10000, 19999)
_port_next = _PORT_FIRST + (os.getpid() * 7) % (_PORT_LAST - _PORT_FIRST)


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on `host` right now (SIP uses both, §18)."""
    global _port_next
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(_PORT_LAST - _PORT_FIRST + 1):
        port = _port_next
        _port_next = port + 1 if port < _PORT_LAST else _PORT_FIRST
        try:
            with (
                socket.socket(family, socket.SOCK_DGRAM) as udp,
                socket.socket(family, socket.SOCK_STREAM) as tcp,
            ):
                udp.bind((host, port))
                tcp.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port found")


# SIPp's -mp base: it binds base..base+3 (audio and video RTP/RTCP). Taken below the
# kernel's ephemeral range (32768+), so no socket bound to port 0 meanwhile — the PBX's own
# RTP legs in the tests — can take base+2 between our check and SIPp's bind; above the demo
# RTP range (20000-20999). Each process starts at its own offset and walks up (in its
# worker's slice under xdist).
_MEDIA_FIRST, _MEDIA_LAST = port_slice(24000, 32760, align=4)
# Bases stay aligned to 4 (RTP on an even port, as RFC 3550 §11 asks; two RTP/RTCP pairs).
_media_next = _MEDIA_FIRST + os.getpid() % ((_MEDIA_LAST - _MEDIA_FIRST - 3) // 4) * 4


def sipp_media_port(host: str = "127.0.0.1") -> int:
    """A base for SIPp's ``-mp`` whose four UDP ports are all free right now."""
    global _media_next
    for _ in range((_MEDIA_LAST - _MEDIA_FIRST) // 4):
        base = _media_next
        _media_next = base + 4 if base + 8 <= _MEDIA_LAST else _MEDIA_FIRST
        try:
            with contextlib.ExitStack() as held:
                for port in range(base, base + 4):
                    sock = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
                    sock.bind((host, port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free SIPp media ports")


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
    scenario_file: Path | None = None,
    builtin: str | None = None,
    extra: tuple[str, ...] = (),
    name: str = "sipp",
) -> list[str]:
    """A bounded SIPp command line (-m, -timeout + -timeout_error, -nostdin, stats CSV).

    The scenario: `scenario_file` (a path), else `scenario` (a name under SCENARIOS), else the
    built-in `builtin` (SIPp's "uac" by default).
    """
    assert SIPP is not None
    if scenario_file is not None:
        what = ["-sf", str(scenario_file)]
    elif scenario:
        what = ["-sf", str(SCENARIOS / scenario)]
    else:
        what = ["-sn", builtin or "uac"]
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


class PeerStartError(RuntimeError):
    """A peer process ended before it bound its port (SIPp: a fatal error at start-up)."""


def _udp_bound(port: int, host: str) -> bool | None:
    """Whether a socket is bound to UDP ``port`` (of ``host``'s family), as the kernel lists
    them in /proc/net/udp[6]; None where there is no such list (not Linux)."""
    try:
        table = Path("/proc/net/udp6" if ":" in host else "/proc/net/udp").read_text()
    except OSError:
        return None
    want = f":{port:04X}"
    return any(line.split()[1].endswith(want) for line in table.splitlines()[1:] if line.strip())


def _bind_probe(port: int, host: str) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


async def wait_bound(
    port: int, host: str = "127.0.0.1", *, proc: asyncio.subprocess.Process | None = None
) -> None:
    """Wait until a peer process has bound its UDP port. Up to 15 s: once in a full run on
    the loaded 2-core machine a SIPp took longer than 5 s. With ``proc``: a peer that exits
    first raises PeerStartError with what it printed, at once.

    On Linux the kernel's socket table is read: probing by binding the port ourselves held
    it for an instant every 20 ms, and a SIPp binding in that instant failed ("Unable to
    bind main socket") and never bound — a full run lost a test to it now and then."""
    for _ in range(750):
        bound = _udp_bound(port, host)
        if bound is None:
            bound = _bind_probe(port, host)
        if bound:
            return
        if proc is not None and proc.returncode is not None:
            said = await proc.stderr.read() if proc.stderr is not None else b""
            raise PeerStartError(
                f"peer exited with {proc.returncode} before binding UDP {host}:{port}: "
                f"{said.decode(errors='replace').strip()[-2000:]!r}"
            )
        await asyncio.sleep(0.02)
    alive = "" if proc is None else f" (peer {'running' if proc.returncode is None else 'ended'})"
    raise TimeoutError(f"nothing bound UDP {host}:{port}{alive}")


async def start_sipp_bound(
    cmd: list[str], *, workdir: Path, port: int, attempts: int = 2
) -> asyncio.subprocess.Process:
    """`start_sipp`, then wait for it to bind `port`. A SIPp that dies at start-up (in a full
    run, rarely: a port taken between our check and its bind) is started again, with a fresh
    ``-mp`` base when it has one; what it printed is kept in the error if it never binds."""
    for _ in range(attempts - 1):
        proc = await start_sipp(cmd, workdir=workdir)
        try:
            await wait_bound(port, proc=proc)
            return proc
        except PeerStartError:
            if "-mp" in cmd:
                cmd[cmd.index("-mp") + 1] = str(sipp_media_port())
    proc = await start_sipp(cmd, workdir=workdir)
    await wait_bound(port, proc=proc)  # the last attempt: its error is the caller's
    return proc


def register_scenario(user: str, realm: str, *, expires: int = 600) -> str:
    """SIPp scenario: REGISTER `user`@`realm`, answer the 401 with digest, expect 200.

    Run it with ``-au USER -ap PASSWORD -auth_uri REALM``: SIPp's digest uri defaults to
    remote_ip:port, ours checks it against the Request-URI (RFC 7616 §3.4.6). SIPp 3.6
    answers only the first challenge and knows only MD5 of the digest algorithms.
    """

    authorization = "\n      [authentication]"  # SIPp fills in the answer to the 401

    def register(cseq: int, auth: str) -> str:
        return f"""<send retrans="500"><![CDATA[

      REGISTER sip:{realm} SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:{user}@{realm}>;tag=[pid]R[call_number]
      To: <sip:{user}@{realm}>
      Call-ID: [call_id]
      CSeq: {cseq} REGISTER
      Contact: <sip:{user}@[local_ip]:[local_port];transport=[transport]>{auth}
      Expires: {expires}
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>"""

    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="register {user}@{realm} with digest">
  {register(1, "")}
  <recv response="401" auth="true"/>
  {register(2, authorization)}
  <recv response="200"/>
</scenario>
"""


async def run_in_netns(
    module: str, workdir: Path, *, wait: float, args: tuple[str, ...] = ()
) -> tuple[Path, str]:
    """Run ``python -m module REPORT WORKDIR [ARGS…]`` in `unshare -n` with loopback up.

    For peers (baresip) that open sockets beyond loopback. Returns the JSON report's path
    (the driver writes it; it may be missing) and the driver's output followed by
    WORKDIR/baresip.log, for assertion messages.
    """
    out = workdir / "report.json"
    extra = "".join(f" {shlex.quote(a)}" for a in args)
    inner = f"ip link set lo up && exec {sys.executable} -m {module} {out} {workdir}{extra}"
    proc = await asyncio.create_subprocess_exec(
        UNSHARE or "unshare", "-n", "sh", "-c", inner,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        output, _ = await asyncio.wait_for(proc.communicate(), timeout=wait)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        raise
    log = workdir / "baresip.log"
    context = output.decode(errors="replace") + (
        log.read_text(errors="replace") if log.exists() else ""
    )
    return out, context
