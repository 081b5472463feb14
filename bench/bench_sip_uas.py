"""SIP UAS throughput: our server answering SIPp's calls, on one pinned CPU core.

The server (`python -m zvonar.sip.io.server`) runs pinned to one CPU with
`os.sched_setaffinity` (its --cpu flag); SIPp (`-sn uac`, user "answer") runs pinned to
another. The "answer" endpoint replies INVITE → 200 (no 180: see shared/peers/README.md),
ACK, BYE → 200. Each rate is a bounded run (-m = rate × seconds, -timeout); a rate counts
only with 0 failed calls. Reported per rate: calls/s achieved (SIPp's successful calls over
its elapsed time), SIPp retransmissions, and the server's CPU time per call (read from
/proc, so it holds even on a busy machine).

    .venv/bin/python bench/bench_sip_uas.py                  # default loop and uvloop
    .venv/bin/python bench/bench_sip_uas.py --rates 1000,2000 --loops uvloop --profile out.prof
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat (fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def last_stats(csv: Path) -> dict[str, str]:
    lines = [ln for ln in csv.read_text().splitlines() if ln.strip()]
    return dict(
        zip(lines[0].rstrip(";").split(";"), lines[-1].rstrip(";").split(";"), strict=False)
    )


def epoch(value: str) -> float:
    return float(value.split("\t")[-1])


@dataclass
class Result:
    loop: str
    rate: int
    calls: int
    successful: int
    failed: int
    retransmissions: int
    achieved: float
    cpu_us_per_call: float

    @property
    def clean(self) -> bool:
        return self.failed == 0 and self.successful == self.calls


def start_server(loop: str, port: int, cpu: int, profile: str | None) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "zvonar.sip.io.server", "--listen", f"127.0.0.1:{port}",
           "--no-security", "--cpu", str(cpu), "--log-level", "WARNING"]  # fmt: skip
    if loop == "uvloop":
        cmd.append("--uvloop")
    if profile:
        cmd += ["--profile", profile]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("listening"):
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    return proc


def run_rate(server: subprocess.Popen[str], port: int, rate: int, seconds: float, cpu: int,
             workdir: Path, loop: str) -> Result:  # fmt: skip
    calls = int(rate * seconds)
    csv = workdir / f"{loop}-{rate}.csv"
    cmd = ["sipp", f"127.0.0.1:{port}", "-sn", "uac", "-s", "answer", "-i", "127.0.0.1",
           "-p", str(free_port()), "-r", str(rate), "-m", str(calls), "-nostdin",
           "-timeout", f"{seconds * 3 + 10:g}s", "-timeout_error", "-buff_size", "4194304",
           "-trace_stat", "-stf", str(csv), "-fd", "1"]  # fmt: skip
    before = cpu_seconds(server.pid)
    subprocess.run(cmd, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   preexec_fn=lambda: os.sched_setaffinity(0, {cpu}), check=False)  # fmt: skip
    time.sleep(0.3)  # let the server finish the last BYE
    used = cpu_seconds(server.pid) - before
    row = last_stats(csv)
    ok = int(row["SuccessfulCall(C)"])
    elapsed = epoch(row["CurrentTime"]) - epoch(row["StartTime"])
    return Result(loop, rate, calls, ok, int(row["FailedCall(C)"]),
                  int(row["Retransmissions(C)"]), ok / elapsed if elapsed > 0 else 0.0,
                  used / max(ok, 1) * 1e6)  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rates", default="500,1000,2000,3000")
    ap.add_argument("--seconds", type=float, default=5.0, help="duration of each rate step")
    ap.add_argument("--loops", default="asyncio,uvloop")
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--sipp-cpu", type=int, default=1)
    ap.add_argument("--profile", default=None, help="cProfile the server (last loop) into FILE")
    args = ap.parse_args()
    if shutil.which("sipp") is None:
        print("sipp not installed (Debian package sip-tester)")
        return 2
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        for loop in args.loops.split(","):
            port = free_port()
            server = start_server(loop, port, args.server_cpu, args.profile)
            try:
                for rate in (int(r) for r in args.rates.split(",")):
                    res = run_rate(server, port, rate, args.seconds, args.sipp_cpu, Path(tmp), loop)
                    results.append(res)
                    flag = "" if res.clean else "  <- NOT CLEAN"
                    print(
                        f"{loop:8} target {rate:5d} cps: achieved {res.achieved:7.1f} cps, "
                        f"{res.successful}/{res.calls} ok, {res.failed} failed, "
                        f"{res.retransmissions} retrans, "
                        f"server CPU {res.cpu_us_per_call:.0f} us/call{flag}",
                        flush=True,
                    )
            finally:
                server.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    server.wait(10)
                if server.poll() is None:
                    server.kill()
    print("\nbest clean rate per loop (0 failed calls):")
    for loop in args.loops.split(","):
        clean = [r for r in results if r.loop == loop and r.clean]
        best = max(clean, key=lambda r: r.achieved, default=None)
        if best is None:
            print(f"  {loop}: no clean run")
        else:
            print(f"  {loop}: {best.achieved:.0f} calls/s at target {best.rate} "
                  f"({best.cpu_us_per_call:.0f} us CPU per call)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
