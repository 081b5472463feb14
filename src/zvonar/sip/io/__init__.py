"""The SIP stack's I/O: asyncio UDP/TCP transports, the runner, and a runnable server.

The only part of `zvonar.sip` that owns sockets and `loop.call_at`; everything below it is
sans-IO (see docs/sip-contract.md). The server lives in `zvonar.sip.io.server` (kept out of
this namespace so that `python -m zvonar.sip.io.server` runs cleanly).
"""

from zvonar.sip.io.runner import SipApplication, SipRunner
from zvonar.sip.io.stats import TransportStats
from zvonar.sip.io.tcp import TcpLimits, TcpTransport
from zvonar.sip.io.udp import UdpTransport

__all__ = [
    "SipApplication",
    "SipRunner",
    "TcpLimits",
    "TcpTransport",
    "TransportStats",
    "UdpTransport",
]
