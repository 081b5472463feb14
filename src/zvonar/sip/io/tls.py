"""TLS for SIP (RFC 3261 §26.2, RFC 5922, BCP 195): the contexts the stream transport uses.

SIP over TLS is the TCP transport with each connection wrapped (``TcpTransport`` with
``tls=``): the same framing, connection reuse, limits and idle sweep; only the handshake
differs. What this module decides:

* **versions**: TLS 1.2 and 1.3 only (RFC 8996 retires 1.0/1.1); OpenSSL's default
  ciphers for those versions;
* **the listener** presents the PBX's certificate chain and does not ask phones for one:
  phones authenticate with digest, as over UDP (RFC 3261 §22, §26.3.2.1), and few softphones
  carry a client certificate;
* **connections we open** (a carrier, a SIP URI target) verify the server's certificate
  against the system's trust store or a CA file, and its name against the SIP domain we were
  asked to reach: the trunk's domain, not the SRV target, as RFC 5922 §4 says (a domain's
  servers present the domain's certificate). A target named by IP is checked against the
  certificate's IP addresses. ``verify=False`` turns both checks off for carriers with
  self-signed certificates: the link is encrypted then, but not authenticated;
* the same certificate is offered to servers that ask for one (mutual TLS, some carriers'
  way of knowing their customer).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "HANDSHAKE_FAILURES",
    "TlsConfig",
    "TlsError",
    "client_context",
    "handshake_failure",
    "server_context",
]


class TlsError(ValueError):
    """A certificate, key or CA file that cannot be loaded; ``reason`` says which and why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class TlsConfig:
    """What a TLS transport needs: ``server`` for the listener (None: connect out only),
    ``client`` for connections it opens."""

    client: ssl.SSLContext
    server: ssl.SSLContext | None = None
    handshake_timeout: float = 5.0


def _base(purpose: ssl.Purpose) -> ssl.SSLContext:
    ctx = ssl.create_default_context(purpose)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def _load_chain(ctx: ssl.SSLContext, cert: Path, key: Path | None) -> None:
    try:
        ctx.load_cert_chain(str(cert), str(key) if key is not None else None)
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(f"cannot load the certificate {cert} (key {key}): {exc}") from exc


def server_context(cert: Path, key: Path | None = None) -> ssl.SSLContext:
    """The listener's context: ``cert`` is a PEM chain (leaf first), ``key`` its private key
    (None: in the same file). Clients are not asked for a certificate."""
    ctx = _base(ssl.Purpose.CLIENT_AUTH)
    ctx.verify_mode = ssl.CERT_NONE
    _load_chain(ctx, cert, key)
    return ctx


def client_context(
    *,
    ca: Path | None = None,
    verify: bool = True,
    cert: Path | None = None,
    key: Path | None = None,
) -> ssl.SSLContext:
    """The context of connections we open: servers verified against ``ca`` (a PEM bundle;
    None: the system's store) unless ``verify`` is False; ``cert``/``key`` offered when a
    server asks for a client certificate."""
    ctx = _base(ssl.Purpose.SERVER_AUTH)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif ca is not None:
        try:
            ctx.load_verify_locations(cafile=str(ca))
        except (OSError, ssl.SSLError) as exc:
            raise TlsError(f"cannot load the CA file {ca}: {exc}") from exc
    if cert is not None:
        _load_chain(ctx, cert, key)
    return ctx


# Why a handshake on the listener failed, as an administrator acts on it (the metric's label):
# "not_tls" (plain SIP or HTTP on the TLS port: a phone set to the wrong transport),
# "certificate" (the phone refused our certificate: its CA list, the name it expects, an
# expired chain), "protocol" (no TLS version or cipher in common: an old phone), "timeout",
# "closed" (the peer went away mid-handshake), "other".
HANDSHAKE_FAILURES = ("not_tls", "certificate", "protocol", "timeout", "closed", "other")

# OpenSSL's reason codes (``ssl.SSLError.reason``) by what they tell the administrator.
_NOT_TLS = frozenset(
    {
        "WRONG_VERSION_NUMBER",
        "HTTP_REQUEST",
        "HTTPS_PROXY_REQUEST",
        "UNKNOWN_PROTOCOL",
        "PACKET_LENGTH_TOO_LONG",
        "RECORD_LENGTH_MISMATCH",
    }
)
_PROTOCOL = frozenset(
    {
        "UNSUPPORTED_PROTOCOL",
        "NO_PROTOCOLS_AVAILABLE",
        "VERSION_TOO_LOW",
        "VERSION_TOO_HIGH",
        "NO_SHARED_CIPHER",
        "NO_CIPHERS_AVAILABLE",
        "NO_SUITABLE_SIGNATURE_ALGORITHM",
        "NO_SHARED_SIGNATURE_ALGORITHMS",
        "TLSV1_ALERT_PROTOCOL_VERSION",
        "TLSV1_ALERT_INSUFFICIENT_SECURITY",
        "SSLV3_ALERT_HANDSHAKE_FAILURE",
    }
)


def handshake_failure(exc: BaseException, *, overran: bool = False) -> str:
    """The ``HANDSHAKE_FAILURES`` label of what ``connect_accepted_socket`` raised; ``overran``:
    it came once the handshake timeout had run out (asyncio and uvloop abort the connection
    then with a ConnectionAbortedError, which is otherwise a peer's doing)."""
    if isinstance(exc, TimeoutError) or (overran and isinstance(exc, ConnectionAbortedError)):
        return "timeout"
    if isinstance(exc, ssl.SSLCertVerificationError):  # a client certificate we refused
        return "certificate"
    if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError | ConnectionError):
        return "closed"
    reason = getattr(exc, "reason", None) if isinstance(exc, ssl.SSLError) else None
    if not isinstance(reason, str):
        return "other"
    if reason in _NOT_TLS:
        return "not_tls"
    if reason in _PROTOCOL:
        return "protocol"
    if "CERTIFICATE" in reason or reason.endswith("UNKNOWN_CA"):
        return "certificate"
    if reason == "UNEXPECTED_EOF_WHILE_READING":
        return "closed"
    return "other"
