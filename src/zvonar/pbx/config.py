"""Settings of the PBX runtime, one frozen dataclass the lead maps from ``zvonar.settings``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["PbxConfig", "parse_dns_servers"]


def parse_dns_servers(text: str) -> tuple[tuple[str, int], ...]:
    """``"127.0.0.1:5353, [::1]:53, 10.0.0.1"`` → ((host, port), …); ValueError if malformed."""
    out: list[tuple[str, int]] = []
    for raw in (part.strip() for part in text.split(",")):
        if not raw:
            continue
        if raw.startswith("["):
            host, _, rest = raw[1:].partition("]")
            port_text = rest.removeprefix(":") or "53"
        elif raw.count(":") == 1:
            host, port_text = raw.split(":")
        else:
            host, port_text = raw, "53"
        try:
            port = int(port_text)
        except ValueError:
            port = 0
        if not host or not 0 < port < 65536:
            raise ValueError(f"not a DNS server address: {raw!r}")
        out.append((host, port))
    return tuple(out)


@dataclass(frozen=True)
class PbxConfig:
    """Where the PBX listens and how it behaves.

    ``sip_advertise`` / ``media_advertise``: the address peers must reach (NAT, 0.0.0.0 binds);
    None means the bind address. ``default_region``: how a dialed national number is read when
    neither the INVITE nor a trunk tells the country (ISO 3166-1 alpha-2).
    """

    sip_host: str = "127.0.0.1"
    sip_port: int = 5060
    sip_tcp: bool = True
    sip_advertise: str | None = None
    rtp_host: str = "127.0.0.1"
    rtp_ports: tuple[int, int] | None = None  # (first, last) inclusive; None: any free port
    media_advertise: str | None = None
    media_timeout: float = 30.0  # seconds without RTP before a call is hung up; 0: never
    # SRTP (SDES, RFC 4568): phones over TLS are offered SRTP only, and RTP/SAVP offers are
    # answered. False: plain RTP everywhere (an RTP/SAVP offer gets 488).
    media_srtp: bool = True
    # RFC 4028: the shortest session timer a peer may ask for (422 below it). The RFC's floor
    # is 90 s; tests set less to see a session expire in seconds.
    min_session_expires: int = 90
    default_region: str = "RU"
    registration_min_expires: int = 60
    registration_max_expires: int = 3600
    # Digest challenges, in order of preference (RFC 8760 §2.4). Some phones (and SIPp 3.6)
    # answer only the first challenge and only know MD5: list "MD5" alone for them.
    digest_algorithms: tuple[str, ...] = ("SHA-256", "MD5")
    resolve_timeout: float = 5.0
    location_flush_interval: float = 0.2  # write-behind delay of the SQL location store
    # Overload control (calls/overload.py): new INVITEs get 503 + Retry-After while the event
    # loop runs more than max_loop_lag late or max_calls calls are in progress.
    max_calls: int = 5000
    max_loop_lag: float = 0.2
    # How often other processes' writes (the CLI's config apply, other nodes) are read from
    # the database's event outbox and published here (store/outbox.py); 0: never.
    event_relay_interval: float = 1.0
    # DNS servers for RFC 3263 lookups (NAPTR/SRV/A/AAAA of trunks and SIP URI targets);
    # empty: the system's (resolv.conf for NAPTR/SRV, getaddrinfo for addresses).
    dns_servers: tuple[tuple[str, int], ...] = ()
    # SIP over TLS (RFC 3261 §26.2; sip/io/tls.py): on when a certificate is given. Carriers
    # reached over TLS are checked against ``sip_tls_ca`` (None: the system's store) unless
    # ``sip_tls_verify`` is off.
    sip_tls_cert: Path | None = None
    sip_tls_key: Path | None = None
    sip_tls_port: int = 5061
    sip_tls_ca: Path | None = None
    sip_tls_verify: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.sip_port <= 65535:
            raise ValueError("sip_port must be 0..65535")
        if not 0 <= self.sip_tls_port <= 65535:
            raise ValueError("sip_tls_port must be 0..65535")
        if self.rtp_ports is not None:
            first, last = self.rtp_ports
            if not 1024 <= first < last <= 65535:
                raise ValueError("rtp_ports must be (first, last) with 1024 <= first < last")
        if not self.digest_algorithms:
            raise ValueError("digest_algorithms must name at least one algorithm")
        if len(self.default_region) != 2:
            raise ValueError("default_region must be an ISO 3166-1 alpha-2 code")
