"""Stopping a peer process a test started."""

from __future__ import annotations

import subprocess

__all__ = ["stop_process"]


def stop_process(proc: subprocess.Popen[bytes], within: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if it is still there after ``within`` seconds; always reaped."""
    proc.terminate()
    try:
        proc.wait(within)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
