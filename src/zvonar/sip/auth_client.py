"""Client side of SIP digest auth (RFC 3261 §22.2-22.3, RFC 7616, RFC 8760): `DigestClient`
builds (Proxy-)Authorization for challenges, `client_auth_flow` answers 401/407 for one
request, shaped like httpx's `Auth.auth_flow` (yields requests, is sent responses, no I/O).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field

from zvonar.sip.auth_digest import (
    ALGORITHMS,
    canonical_algorithm,
    compute_ha1,
    compute_response,
    digest_hash,
)
from zvonar.sip.errors import SipError
from zvonar.sip.headers import (
    canonical_name,
    parse_auth_params,
    parse_via_list,
    quote_string,
    split_comma_list,
)
from zvonar.sip.message import SipRequest, SipResponse

__all__ = ["ClientCredentials", "DigestClient", "client_auth_flow"]


@dataclass(frozen=True)
class ClientCredentials:
    username: str
    password: str = field(repr=False)
    realm: str | None = None  # None: answer a challenge from any realm


_RANK = {alg: len(ALGORITHMS) - i for i, alg in enumerate(ALGORITHMS)}


@dataclass(frozen=True)
class _Offer:
    header: str  # "Authorization" or "Proxy-Authorization"
    realm: str
    algorithm: str
    params: Mapping[str, str]


class DigestClient:
    """Builds credentials for challenges; keeps the nonce-count per nonce (RFC 7616 §3.4)."""

    def __init__(
        self,
        credentials: ClientCredentials | Sequence[ClientCredentials],
        *,
        cnonce_factory: Callable[[], str] | None = None,
        algorithms: Sequence[str] = ALGORITHMS,
    ) -> None:
        self._creds = (
            (credentials,) if isinstance(credentials, ClientCredentials) else tuple(credentials)
        )
        self._cnonce = cnonce_factory or (lambda: secrets.token_hex(16))
        self._algorithms = {canonical_algorithm(a) for a in algorithms}
        self._nc: dict[str, int] = {}

    def offers(self, response: SipResponse) -> list[_Offer]:
        """The strongest usable challenge per realm in a 401/407, in header order."""
        if response.status == 401:
            source, header = "WWW-Authenticate", "Authorization"
        elif response.status == 407:
            source, header = "Proxy-Authenticate", "Proxy-Authorization"
        else:
            return []
        best: dict[str, _Offer] = {}
        for value in response.header_values(source):
            try:
                scheme, p = parse_auth_params(value)
                alg = canonical_algorithm(p.get("algorithm", "MD5"))
            except SipError:
                continue
            realm = p.get("realm")
            if scheme.lower() != "digest" or realm is None or "nonce" not in p:
                continue
            if alg not in self._algorithms or self._qop(p) == "":
                continue
            if realm not in best or _RANK[alg] > _RANK[best[realm].algorithm]:
                best[realm] = _Offer(header, realm, alg, p)
        return list(best.values())

    def credentials_for(self, realm: str) -> ClientCredentials | None:
        exact = next((c for c in self._creds if c.realm == realm), None)
        return exact or next((c for c in self._creds if c.realm is None), None)

    @staticmethod
    def _qop(params: Mapping[str, str]) -> str | None:
        """Chosen qop: auth over auth-int; None if not offered; "" if none we support."""
        if "qop" not in params:
            return None
        offered = {q.strip().lower() for q in params["qop"].split(",")}
        return "auth" if "auth" in offered else "auth-int" if "auth-int" in offered else ""

    def credentials_header(self, request: SipRequest, offer: _Offer) -> tuple[str, str] | None:
        """(header name, value) answering `offer` for `request`, or None without credentials."""
        creds = self.credentials_for(offer.realm)
        if creds is None:
            return None
        p, alg, nonce = offer.params, offer.algorithm, offer.params["nonce"]
        qop = self._qop(p)
        uri = str(request.uri)
        nc = cnonce = None
        if qop is not None or alg.endswith("-sess"):
            cnonce = self._cnonce()
        if qop is not None:
            self._nc[nonce] = self._nc.get(nonce, 0) + 1
            nc = f"{self._nc[nonce]:08x}"
        response = compute_response(
            algorithm=alg,
            ha1=compute_ha1(alg, creds.username, offer.realm, creds.password),
            nonce=nonce,
            method=request.method,
            uri=uri,
            qop=qop,
            nc=nc,
            cnonce=cnonce,
            body=request.body,
        )
        userhash = p.get("userhash", "").lower() == "true"  # RFC 7616 §3.4.4
        username = (
            digest_hash(alg, f"{creds.username}:{offer.realm}") if userhash else creds.username
        )
        parts = [
            f"Digest username={quote_string(username)}",
            f"realm={quote_string(offer.realm)}",
            f"nonce={quote_string(nonce)}",
            f"uri={quote_string(uri)}",
            f"response={quote_string(response)}",
            f"algorithm={alg}",
        ]
        if cnonce is not None:
            parts.append(f"cnonce={quote_string(cnonce)}")
        if "opaque" in p:
            parts.append(f"opaque={quote_string(p['opaque'])}")
        if qop is not None:
            parts += [f"qop={qop}", f"nc={nc}"]
        if userhash:
            parts.append("userhash=true")
        return offer.header, ", ".join(parts)


def _retry(
    request: SipRequest, seq: int, branch: str, auth: Mapping[tuple[str, str], str]
) -> SipRequest:
    """A new transaction for the same request: CSeq `seq`, fresh top Via branch, credentials."""
    out = request.without_header("Authorization").without_header("Proxy-Authorization")
    out = out.with_header("CSeq", f"{seq} {request.method}")
    headers = list(out.headers)
    for i, (name, value) in enumerate(headers):
        if canonical_name(name) == "Via":
            items = split_comma_list(value)
            top = parse_via_list(items[0])[0]
            items[0] = str(top.with_params(branch=branch))
            headers[i] = (name, ", ".join(items))
            break
    out = SipRequest(out.method, out.uri, tuple(headers), out.body, out.version)
    for (name, _realm), value in auth.items():
        out = out.adding_header(name, value)
    return out


def client_auth_flow(
    request: SipRequest,
    credentials: ClientCredentials | Sequence[ClientCredentials],
    *,
    cnonce_factory: Callable[[], str] | None = None,
    branch_factory: Callable[[], str] | None = None,
    max_rounds: int = 4,
) -> Generator[SipRequest, SipResponse, None]:
    """Answer 401/407 challenges for `request`, like httpx's `Auth.auth_flow`.

    Usage: `req = next(flow)`; send it; `req = flow.send(response)` while it keeps yielding;
    `StopIteration` means the last response is final (success, or a refusal the flow gives up on).

    Each retry is a new transaction (§22.2): the flow increments the CSeq by one per retry and
    puts a fresh branch on the top Via; the caller must adopt the yielded CSeq as its local
    sequence (e.g. a dialog's local CSeq) and must not renumber the request itself.
    A realm that challenges again after being answered means the credentials were refused and
    the flow stops, except once when the new challenge says stale=true (RFC 7616 §3.3).
    A challenge for a realm we have no credentials for stops the flow too.
    """
    client = DigestClient(credentials, cnonce_factory=cnonce_factory)
    new_branch = branch_factory or (lambda: "z9hG4bK" + secrets.token_hex(10))
    auth: dict[tuple[str, str], str] = {}
    stale_used: set[str] = set()
    seq = request.cseq.seq
    response = yield request
    for _ in range(max_rounds):
        offers = client.offers(response)
        if not offers:
            return
        for offer in offers:
            key = (offer.header, offer.realm)
            if key in auth:
                stale = offer.params.get("stale", "").lower() == "true"
                if not stale or offer.realm in stale_used:
                    return  # refused: the same credentials will not start working (§22.2)
                stale_used.add(offer.realm)
            built = client.credentials_header(request, offer)
            if built is None:
                return
            auth[key] = built[1]
        seq += 1
        response = yield _retry(request, seq, new_branch(), auth)
