"""Digest access authentication for SIP, sans-IO (RFC 3261 §22, RFC 7616, RFC 8760).

Server: `DigestChallenger` issues stateless HMAC-signed nonces and checks (Proxy-)Authorization
against stored HA1s → `Authorized` / `Challenge` / `Failed`. Client: `client_auth_flow`, a
generator shaped like httpx's `Auth.auth_flow` (yields requests, is sent responses, no I/O).
MD5, SHA-256, SHA-512-256 (RFC 8760 §2.1; "-sess" variants client-side only), qop=auth
(auth-int client-side when it is the only qop offered).

This module is the server side and the package's face: the digest computations live in
`auth_digest`, the client side in `auth_client`; both are re-exported here.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import math
import os
import re
import struct
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from zvonar.sip.auth_client import ClientCredentials, DigestClient, client_auth_flow
from zvonar.sip.auth_digest import (
    ALGORITHMS,
    SERVER_ALGORITHMS,
    base_algorithm,
    canonical_algorithm,
    compute_ha1,
    compute_response,
    digest_hash,
    server_algorithms,
)
from zvonar.sip.errors import AuthError, SipError
from zvonar.sip.headers import parse_auth_params, quote_string
from zvonar.sip.message import SipRequest, SipResponse, make_response
from zvonar.sip.uri import parse_uri, uri_equal

__all__ = [
    "ALGORITHMS",
    "SERVER_ALGORITHMS",
    "AuthResult",
    "Authorized",
    "Challenge",
    "ClientCredentials",
    "CredentialStore",
    "Credentials",
    "DigestChallenger",
    "DigestClient",
    "Failed",
    "FailureReason",
    "InMemoryCredentialStore",
    "auth_response",
    "client_auth_flow",
    "compute_ha1",
    "compute_response",
    "digest_hash",
]


# --------------------------------------------------------------------------------------------
# Server side
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """One account's stored secrets: HA1 per hash family, never the password itself."""

    username: str
    realm: str
    ha1: tuple[tuple[str, str], ...]  # (algorithm family, hex HA1)

    @classmethod
    def from_password(
        cls,
        username: str,
        realm: str,
        password: str,
        algorithms: Iterable[str] = ("SHA-512-256", "SHA-256", "MD5"),
    ) -> Credentials:
        fams = dict.fromkeys(base_algorithm(a) for a in algorithms)
        return cls(
            username, realm, tuple((f, compute_ha1(f, username, realm, password)) for f in fams)
        )

    def ha1_for(self, algorithm: str) -> str | None:
        base = base_algorithm(algorithm)
        return next((h for f, h in self.ha1 if f == base), None)


class CredentialStore(Protocol):
    """Where the challenger looks accounts up; the platform backs it with its user table."""

    def get_credentials(self, username: str, realm: str) -> Credentials | None: ...


class InMemoryCredentialStore:
    """A dict-backed `CredentialStore` for tests and small fixed deployments."""

    def __init__(self, credentials: Iterable[Credentials] = ()) -> None:
        self._by_key: dict[tuple[str, str], Credentials] = {}
        for c in credentials:
            self.add(c)

    def add(self, credentials: Credentials) -> None:
        self._by_key[(credentials.username, credentials.realm)] = credentials

    def add_password(self, username: str, realm: str, password: str) -> None:
        self.add(Credentials.from_password(username, realm, password))

    def get_credentials(self, username: str, realm: str) -> Credentials | None:
        return self._by_key.get((username, realm))


class FailureReason(enum.Enum):
    """Why credentials were refused: for logs and the blocker only, never sent on the wire."""

    MALFORMED = "malformed"
    UNSUPPORTED = "unsupported"  # algorithm or qop we did not offer
    URI_MISMATCH = "uri_mismatch"
    UNKNOWN_USER = "unknown_user"
    BAD_RESPONSE = "bad_response"
    REPLAY = "replay"  # nonce-count not above the highest seen (RFC 7616 §3.4.5)


@dataclass(frozen=True)
class Authorized:
    username: str
    realm: str
    algorithm: str


@dataclass(frozen=True)
class Challenge:
    """Send `status` (401/407) with `headers`; `stale` means the password was right (§22.4)."""

    status: int
    headers: tuple[tuple[str, str], ...]
    stale: bool = False


@dataclass(frozen=True)
class Failed:
    """Credentials were presented and refused. `status`/`headers` are a fresh challenge whose
    shape does not depend on `reason`, so unknown users and wrong passwords look the same."""

    reason: FailureReason
    username: str | None  # as claimed by the client: untrusted, for per-account accounting
    status: int
    headers: tuple[tuple[str, str], ...]


AuthResult = Authorized | Challenge | Failed

_NONCE_LEN = 8 + 12 + 16  # timestamp (ms) + random + truncated HMAC-SHA256
_NC = re.compile(r"[0-9a-fA-F]{8}")  # nc-value = 8LHEX (RFC 7616 §3.4)


class DigestChallenger:
    """Server side of digest auth for one realm. Stateless nonces, bounded replay memory.

    A nonce is base64url(ts_ms ‖ random ‖ HMAC(secret, realm ‖ ts_ms ‖ random)): any node that
    shares `secret` verifies it without storage. Replays are caught by remembering the highest
    nonce-count per nonce in an LRU of `nc_cache_size`; a nonce evicted from it (or older than
    one that was) gets a stale=true re-challenge, so eviction never reopens a replay window.
    `now` must be on one time base for issue and check (monotonic seconds per the contract).
    """

    def __init__(
        self,
        realm: str,
        secret: bytes,
        credentials: CredentialStore,
        *,
        nonce_ttl: float = 300.0,
        algorithms: Sequence[str] = SERVER_ALGORITHMS,
        require_qop: bool = True,
        check_uri: bool = True,
        nc_cache_size: int = 65536,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("the nonce secret needs at least 16 bytes")
        self.realm = realm
        self.nonce_ttl = nonce_ttl
        self.algorithms = server_algorithms(algorithms)
        self.require_qop = require_qop
        self.check_uri = check_uri
        self._secret = secret
        self._store = credentials
        self._random = random_bytes
        self._nc: OrderedDict[str, int] = OrderedDict()
        self._nc_cap = nc_cache_size
        self._evicted_floor = -math.inf  # newest issue time among evicted nonces
        self._opaque = self._mac(b"opaque").hex()
        # Unknown users are hashed against this so their verification costs the same.
        self._dummy = {a: digest_hash(a, self._random(32)) for a in self.algorithms}

    def _mac(self, head: bytes) -> bytes:
        msg = b"nonce\0" + self.realm.encode() + b"\0" + head
        return hmac.new(self._secret, msg, hashlib.sha256).digest()[:16]

    def make_nonce(self, now: float) -> str:
        head = struct.pack(">q", int(now * 1000)) + self._random(12)
        return base64.urlsafe_b64encode(head + self._mac(head)).decode("ascii")

    def nonce_issued_at(self, nonce: str) -> float | None:
        """Issue time of a nonce we signed, or None for anything else."""
        try:
            raw = base64.urlsafe_b64decode(nonce.encode("ascii"))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            return None
        if len(raw) != _NONCE_LEN or not hmac.compare_digest(raw[20:], self._mac(raw[:20])):
            return None
        (ms,) = struct.unpack(">q", raw[:8])
        return float(ms) / 1000.0

    def challenge(
        self, request: SipRequest, now: float, *, stale: bool = False, proxy: bool | None = None
    ) -> Challenge:
        """A 401 (WWW-Authenticate) or 407 (Proxy-Authenticate) with one header per algorithm."""
        status, name = self._kind(request, proxy)
        nonce = self.make_nonce(now)
        head = f"Digest realm={quote_string(self.realm)}, nonce={quote_string(nonce)}, "
        tail = f', qop="auth", opaque={quote_string(self._opaque)}' + (
            ", stale=true" if stale else ""
        )
        values = tuple((name, f"{head}algorithm={alg}{tail}") for alg in self.algorithms)
        return Challenge(status, values, stale)

    @staticmethod
    def _kind(request: SipRequest, proxy: bool | None) -> tuple[int, str]:
        # A registrar answers 401 (§10.3 step 3); calls routed through us get 407 (§22.3).
        if proxy is None:
            proxy = request.method != "REGISTER"
        return (407, "Proxy-Authenticate") if proxy else (401, "WWW-Authenticate")

    def check(self, request: SipRequest, now: float, *, proxy: bool | None = None) -> AuthResult:
        """Verify the request's credentials for our realm (RFC 3261 §22.3, RFC 7616 §3.4)."""
        status, _ = self._kind(request, proxy)
        header = "Proxy-Authorization" if status == 407 else "Authorization"
        params: dict[str, str] | None = None
        for value in request.header_values(header):
            try:
                scheme, p = parse_auth_params(value)
            except SipError:
                continue
            if scheme.lower() == "digest" and p.get("realm") == self.realm:
                params = p
                break
        if params is None:  # no credentials for us: first contact (§22.1)
            return self.challenge(request, now, proxy=proxy)

        username = params.get("username")

        def fail(reason: FailureReason) -> Failed:
            fresh = self.challenge(request, now, proxy=proxy)
            return Failed(reason, username, fresh.status, fresh.headers)

        nonce, uri, response = params.get("nonce"), params.get("uri"), params.get("response")
        if username is None or nonce is None or uri is None or response is None:
            return fail(FailureReason.MALFORMED)
        try:
            algorithm = canonical_algorithm(params.get("algorithm", "MD5"))
        except AuthError:
            return fail(FailureReason.UNSUPPORTED)
        if algorithm not in self.algorithms:
            return fail(FailureReason.UNSUPPORTED)
        qop, nc, cnonce = params.get("qop"), params.get("nc"), params.get("cnonce")
        nc_value = 0
        if qop is not None:
            if qop.lower() != "auth":
                return fail(FailureReason.UNSUPPORTED)
            if nc is None or cnonce is None or not _NC.fullmatch(nc):
                return fail(FailureReason.MALFORMED)
            nc_value = int(nc, 16)
        elif self.require_qop:
            return fail(FailureReason.UNSUPPORTED)
        # opaque is not checked: the nonce itself is authenticated, and some UAs drop it.
        if self.check_uri and not self._uri_matches(uri, request):
            return fail(FailureReason.URI_MISMATCH)

        issued = self.nonce_issued_at(nonce)
        if issued is None:
            # Not our nonce (another secret, a restart with a new one, garbage): checking the
            # response would prove nothing, so just challenge without counting a failure.
            return self.challenge(request, now, proxy=proxy)

        creds = self._store.get_credentials(username, self.realm)
        ha1 = creds.ha1_for(algorithm) if creds is not None else None
        known = ha1 is not None
        expected = compute_response(
            algorithm=algorithm,
            ha1=ha1 if ha1 is not None else self._dummy[algorithm],
            nonce=nonce,
            method=request.method,
            uri=uri,
            qop="auth" if qop is not None else None,
            nc=nc,
            cnonce=cnonce,
        )
        matches = hmac.compare_digest(expected.encode(), response.lower().encode())
        if not known:
            return fail(FailureReason.UNKNOWN_USER)
        if not matches:
            return fail(FailureReason.BAD_RESPONSE)

        # Right password from here on.
        age = now - issued
        if age > self.nonce_ttl or age < 0 or self._forgotten(nonce, issued):
            return self.challenge(request, now, stale=True, proxy=proxy)
        if qop is not None:
            last = self._nc.get(nonce)
            if last is not None and nc_value <= last:
                return fail(FailureReason.REPLAY)
            self._remember(nonce, nc_value)
        return Authorized(username, self.realm, algorithm)

    @staticmethod
    def _uri_matches(uri: str, request: SipRequest) -> bool:
        # RFC 7616 §3.4.6: the digest-uri must name the Request-URI; compare per §19.1.4.
        if uri == str(request.uri):
            return True
        try:
            return uri_equal(parse_uri(uri), request.uri)
        except SipError:
            return False

    def _forgotten(self, nonce: str, issued: float) -> bool:
        return nonce not in self._nc and issued <= self._evicted_floor

    def _remember(self, nonce: str, nc: int) -> None:
        self._nc[nonce] = nc
        self._nc.move_to_end(nonce)
        while len(self._nc) > self._nc_cap:
            old, _ = self._nc.popitem(last=False)
            issued = self.nonce_issued_at(old)
            if issued is not None:
                self._evicted_floor = max(self._evicted_floor, issued)


def auth_response(request: SipRequest, result: Challenge | Failed, *, to_tag: str) -> SipResponse:
    """The 401/407 carrying `result`'s challenge headers (§8.2.6: the UAS adds a To tag)."""
    return make_response(request, result.status, to_tag=to_tag, headers=result.headers)
