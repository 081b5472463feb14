"""Counters kept by the SIP transports and the runner (one object per server)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["TransportStats"]


@dataclass(slots=True)
class TransportStats:
    """Plain counters, cheap to bump on the hot path; `as_dict()` for logs and tests.

    `received`/`sent` count SIP messages (a datagram, or one framed message on a stream);
    keep-alives are counted apart. The `dropped_*` counters are inputs discarded without a
    response, `rejected_4xx`/`rejected_5xx` inputs answered statelessly with an error.
    """

    received: int = 0
    sent: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0
    keepalives_received: int = 0
    pongs_sent: int = 0
    dropped_malformed: int = 0
    dropped_oversize: int = 0
    rejected_4xx: int = 0
    rejected_5xx: int = 0
    blocked: int = 0
    send_errors: int = 0
    internal_errors: int = 0
    tcp_accepted: int = 0
    tcp_connected: int = 0
    tcp_refused: int = 0
    tcp_closed: int = 0
    tcp_idle_closed: int = 0
    tcp_framing_errors: int = 0
    tls_handshake_failures: int = 0  # connections to a TLS listener that never got through
    # ... by why (tls.handshake_failure): they add up to tls_handshake_failures.
    tls_failed_not_tls: int = 0
    tls_failed_certificate: int = 0
    tls_failed_protocol: int = 0
    tls_failed_timeout: int = 0
    tls_failed_closed: int = 0
    tls_failed_other: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def handshake_failed(self, reason: str) -> None:
        """A TLS handshake on the listener failed for ``reason`` (tls.HANDSHAKE_FAILURES)."""
        self.tls_handshake_failures += 1
        name = f"tls_failed_{reason}"
        setattr(self, name, getattr(self, name) + 1)
