"""The process's open-file limit, raised to what a PBX needs.

Every media leg holds two UDP sockets (RTP and RTCP, media/io/sockets.py) and every phone on
TCP or TLS one connection, so a few hundred calls need more descriptors than the soft limit
many service managers start a process with (1024 under systemd). Past it, ``socket()`` fails
with EMFILE and calls fail at random. Like other servers (nginx's ``worker_rlimit_nofile``,
Asterisk's start script) the PBX raises its soft limit to the hard one at start; only the hard
limit, the administrator's, can stop it.
"""

from __future__ import annotations

import logging
import resource

__all__ = ["raise_open_files_limit", "sockets_needed"]

log = logging.getLogger(__name__)

_CEILING = 1 << 20  # an "unlimited" hard limit still needs a number
_HEADROOM = 256  # SIP connections, the database, log files, the HTTP server


def sockets_needed(rtp_ports: tuple[int, int] | None) -> int | None:
    """Descriptors the media range can take at its fullest (two per RTP/RTCP pair), plus
    headroom; None without a range (the kernel picks ports: no bound to check)."""
    if rtp_ports is None:
        return None
    first, last = rtp_ports
    pairs = len(range(first + (first & 1), last, 2))
    return 2 * pairs + _HEADROOM


def raise_open_files_limit(needed: int | None = None) -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the soft limit now in force.
    Warn when it stays below ``needed``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _CEILING if hard == resource.RLIM_INFINITY else min(hard, _CEILING)
    if soft == resource.RLIM_INFINITY or soft >= target:
        target = soft
    else:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, target, exc)
            target = soft
    if needed is not None and target != resource.RLIM_INFINITY and target < needed:
        log.warning(
            "open-file limit %d is below the %d the RTP port range may need at its fullest;"
            " raise the hard limit (LimitNOFILE=, ulimit -Hn) or narrow the range",
            target,
            needed,
        )
    return target
