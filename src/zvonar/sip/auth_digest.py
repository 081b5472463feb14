"""Digest computations of RFC 7616 (RFC 2617 without qop) and RFC 8760's SHA-512-256:
the algorithm tokens, H(), HA1 and the request-digest. Shared by the server side
(`zvonar.sip.auth`) and the client side (`zvonar.sip.auth_client`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from zvonar.sip.errors import AuthError

__all__ = [
    "ALGORITHMS",
    "SERVER_ALGORITHMS",
    "base_algorithm",
    "canonical_algorithm",
    "compute_ha1",
    "compute_response",
    "digest_hash",
    "server_algorithms",
]

# RFC 7616 §3.2 / RFC 8760 §2.1: algorithm token -> hashlib name. The "-sess" variants hash
# the same way; only HA1 differs (RFC 7616 §3.4.2).
_HASHLIB: Mapping[str, str] = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}
# Every algorithm the client understands, strongest first (the order is its preference).
ALGORITHMS = ("SHA-512-256", "SHA-512-256-sess", "SHA-256", "SHA-256-sess", "MD5", "MD5-sess")

# Offered by default, SHA-256 first: RFC 8760 §2.4 puts the preferred challenge first.
SERVER_ALGORITHMS = ("SHA-256", "MD5")


def base_algorithm(algorithm: str) -> str:
    """Hash family of an algorithm token ("sha-256-SESS" -> "SHA-256"); AuthError if unknown."""
    alg = algorithm.upper()
    base = alg.removesuffix("-SESS")
    if base not in _HASHLIB:
        raise AuthError(f"unsupported digest algorithm {algorithm!r}")
    return base


def canonical_algorithm(algorithm: str) -> str:
    base = base_algorithm(algorithm)
    return base + "-sess" if algorithm.upper().endswith("-SESS") else base


def server_algorithms(algorithms: Iterable[str]) -> tuple[str, ...]:
    """What a server may challenge with, canonical and in order: ``ValueError`` for none or a
    "-sess" one (RFC 8760 §2.1: a server offers non-session algorithms), ``AuthError`` for
    one we do not know."""
    out: list[str] = []
    for given in algorithms:
        try:
            alg = canonical_algorithm(given)
        except AuthError:
            raise AuthError(f"{given}: not one of SHA-256, MD5, SHA-512-256") from None
        if alg.endswith("-sess"):
            raise ValueError(f"{given}: a server offers no -sess algorithm (RFC 8760 §2.1)")
        out.append(alg)
    if not out:
        raise ValueError("name at least one algorithm")
    return tuple(out)


def digest_hash(algorithm: str, data: str | bytes) -> str:
    """H(data) as lower-case hex for `algorithm` (RFC 7616 §3.4: strings are UTF-8)."""
    raw = data.encode() if isinstance(data, str) else data
    return hashlib.new(_HASHLIB[base_algorithm(algorithm)], raw).hexdigest()


def compute_ha1(algorithm: str, username: str, realm: str, password: str) -> str:
    """HA1 = H(username ":" realm ":" password) (RFC 7616 §3.4.2), the value a server stores."""
    return digest_hash(algorithm, f"{username}:{realm}:{password}")


def compute_response(
    *,
    algorithm: str,
    ha1: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The request-digest of RFC 7616 §3.4.1 (RFC 2617 §3.2.2.1 without qop).

    `ha1` is always H(user:realm:password); for a "-sess" algorithm the session HA1 is derived
    here with the nonce and cnonce (RFC 7616 §3.4.2).
    """
    if algorithm.upper().endswith("-SESS"):
        if cnonce is None:
            raise AuthError("-sess algorithms need a cnonce")
        ha1 = digest_hash(algorithm, f"{ha1}:{nonce}:{cnonce}")
    if qop == "auth-int":
        ha2 = digest_hash(algorithm, f"{method}:{uri}:{digest_hash(algorithm, body)}")
    else:
        ha2 = digest_hash(algorithm, f"{method}:{uri}")
    if qop is None:  # RFC 2069 compatibility (RFC 3261 §22.4 keeps it legal)
        return digest_hash(algorithm, f"{ha1}:{nonce}:{ha2}")
    if nc is None or cnonce is None:
        raise AuthError("qop needs nc and cnonce")
    return digest_hash(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
