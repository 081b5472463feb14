"""Digest authentication: published test vectors, challenger rules, client flow round trips."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Generator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zvonar.sip import auth_digest
from zvonar.sip.auth import (
    Authorized,
    Challenge,
    ClientCredentials,
    Credentials,
    DigestChallenger,
    DigestClient,
    Failed,
    FailureReason,
    InMemoryCredentialStore,
    auth_response,
    client_auth_flow,
    compute_ha1,
    compute_response,
    digest_hash,
)
from zvonar.sip.errors import AuthError
from zvonar.sip.headers import parse_auth_params
from zvonar.sip.message import SipRequest, SipResponse, make_response, parse_message
from zvonar.sip.uri import parse_uri

REALM = "pbx.example.com"
SECRET = b"0123456789abcdef-test-secret"


def request(
    method: str = "REGISTER",
    uri: str = "sip:pbx.example.com",
    cseq: int = 1,
    branch: str = "z9hG4bKaaa",
    extra: str = "",
) -> SipRequest:
    text = (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.0.2.10:5060;branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:100@pbx.example.com>;tag=f1\r\n"
        "To: <sip:100@pbx.example.com>\r\n"
        "Call-ID: call-1@192.0.2.10\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "Contact: <sip:100@192.0.2.10:5060>\r\n"
        f"{extra}"
        "Content-Length: 0\r\n\r\n"
    )
    msg = parse_message(text.encode())
    assert isinstance(msg, SipRequest)
    return msg


def store() -> InMemoryCredentialStore:
    s = InMemoryCredentialStore()
    s.add_password("100", REALM, "s3cret")
    return s


def challenger(**kwargs: object) -> DigestChallenger:
    counter = itertools.count()
    rnd = lambda n: next(counter).to_bytes(n, "big")  # noqa: E731 - distinct, deterministic
    return DigestChallenger(REALM, SECRET, store(), random_bytes=rnd, **kwargs)  # type: ignore[arg-type]


def answer(server: DigestChallenger, req: SipRequest, now: float) -> SipResponse:
    result = server.check(req, now)
    if isinstance(result, Authorized):
        return make_response(req, 200, to_tag="t")
    return auth_response(req, result, to_tag="t")


def drive(
    flow: Generator[SipRequest, SipResponse, None], server: DigestChallenger, now: float
) -> tuple[list[SipRequest], list[SipResponse]]:
    sent, got = [next(flow)], []
    while True:
        got.append(answer(server, sent[-1], now))
        try:
            sent.append(flow.send(got[-1]))
        except StopIteration:
            return sent, got


def cnonces() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"cn{next(counter)}"


# -- published vectors ---------------------------------------------------------------------

RFC7616 = {
    "username": "Mufasa",
    "realm": "http-auth@example.org",
    "password": "Circle of Life",
    "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
    "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
}


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_section_3_9_1_vectors(algorithm: str, expected: str) -> None:
    v = RFC7616
    ha1 = compute_ha1(algorithm, v["username"], v["realm"], v["password"])
    got = compute_response(
        algorithm=algorithm,
        ha1=ha1,
        nonce=v["nonce"],
        method="GET",
        uri="/dir/index.html",
        qop="auth",
        nc="00000001",
        cnonce=v["cnonce"],
    )
    assert got == expected


def test_rfc2617_section_3_5_vector() -> None:
    ha1 = compute_ha1("MD5", "Mufasa", "testrealm@host.com", "Circle Of Life")
    got = compute_response(
        algorithm="MD5",
        ha1=ha1,
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        method="GET",
        uri="/dir/index.html",
        qop="auth",
        nc="00000001",
        cnonce="0a4f113b",
    )
    assert got == "6629fae49393a05397450978507c4ef1"


def test_sha512_256_is_the_fips_180_4_truncated_hash() -> None:
    # FIPS 180-4 example "abc" for SHA-512/256 — not SHA-512 cut short.
    assert digest_hash("SHA-512-256", "abc") == (
        "53048e2681941ef99b2e29b76b4c7dabe4c2d0c634fc6d46e0e2f13107e7af23"
    )


def test_sess_and_auth_int_formulas() -> None:
    ha1 = compute_ha1("MD5", "u", "r", "p")
    sess = compute_response(
        algorithm="MD5-sess",
        ha1=ha1,
        nonce="n",
        method="M",
        uri="sip:x",
        qop="auth",
        nc="00000001",
        cnonce="c",
    )

    def h(data: str | bytes) -> str:
        return digest_hash("MD5", data)

    assert sess == h(f"{h(f'{ha1}:n:c')}:n:00000001:c:auth:{h('M:sip:x')}")
    body_digest = compute_response(
        algorithm="MD5",
        ha1=ha1,
        nonce="n",
        method="M",
        uri="sip:x",
        qop="auth-int",
        nc="00000001",
        cnonce="c",
        body=b"v=0",
    )
    assert body_digest == h(f"{ha1}:n:00000001:c:auth-int:{h('M:sip:x:' + h(b'v=0'))}")
    legacy = compute_response(algorithm="MD5", ha1=ha1, nonce="n", method="M", uri="sip:x")
    assert legacy == h(f"{ha1}:n:{h('M:sip:x')}")
    with pytest.raises(AuthError):
        digest_hash("SHA-1", "x")


# -- challenges ----------------------------------------------------------------------------


def test_register_gets_401_with_sha256_then_md5() -> None:
    ch = challenger().check(request(), now=100.0)
    assert isinstance(ch, Challenge)
    assert ch.status == 401 and not ch.stale
    assert [name for name, _ in ch.headers] == ["WWW-Authenticate", "WWW-Authenticate"]
    parsed = [parse_auth_params(v) for _, v in ch.headers]
    assert [p["algorithm"] for _, p in parsed] == ["SHA-256", "MD5"]
    for scheme, p in parsed:
        assert scheme == "Digest" and p["realm"] == REALM and p["qop"] == "auth"
        assert "stale" not in p and p["opaque"]
    assert parsed[0][1]["nonce"] == parsed[1][1]["nonce"]  # one nonce, two algorithms
    resp = auth_response(request(), ch, to_tag="abc")
    assert resp.status == 401 and resp.to.tag == "abc"
    assert len(resp.header_values("WWW-Authenticate")) == 2


def test_invite_gets_407_and_proxy_override() -> None:
    server = challenger()
    ch = server.check(request("INVITE", "sip:200@pbx.example.com"), 0.0)
    assert isinstance(ch, Challenge) and ch.status == 407
    assert {n for n, _ in ch.headers} == {"Proxy-Authenticate"}
    ch2 = server.check(request("INVITE", "sip:200@pbx.example.com"), 0.0, proxy=False)
    assert isinstance(ch2, Challenge) and ch2.status == 401


def test_nonce_is_signed_and_carries_its_issue_time() -> None:
    server = challenger()
    nonce = server.make_nonce(1234.5)
    assert server.nonce_issued_at(nonce) == 1234.5
    other = DigestChallenger(REALM, b"another-secret-of-16+", store())
    assert other.nonce_issued_at(nonce) is None
    tampered = nonce[:-2] + ("AA" if nonce[-2:] != "AA" else "BB")
    assert server.nonce_issued_at(tampered) is None
    assert server.nonce_issued_at("not base64 ***") is None


def test_constructor_validation() -> None:
    with pytest.raises(ValueError):
        DigestChallenger(REALM, b"short", store())
    with pytest.raises(ValueError):
        DigestChallenger(REALM, SECRET, store(), algorithms=("MD5-sess",))
    with pytest.raises(AuthError):
        DigestChallenger(REALM, SECRET, store(), algorithms=("SHA-1",))


# -- round trips ---------------------------------------------------------------------------


def test_round_trip_register_sha256() -> None:
    server = challenger()
    flow = client_auth_flow(
        request(cseq=7),
        ClientCredentials("100", "s3cret"),
        cnonce_factory=cnonces(),
        branch_factory=lambda: "z9hG4bKretry",
    )
    sent, got = drive(flow, server, now=50.0)
    assert [r.status for r in got] == [401, 200]
    retry = sent[1]
    assert retry.cseq.seq == 8 and retry.cseq.method == "REGISTER"
    assert retry.top_via.branch == "z9hG4bKretry" and retry.top_via.host == "192.0.2.10"
    _, p = parse_auth_params(retry.header("Authorization") or "")
    assert p["algorithm"] == "SHA-256" and p["qop"] == "auth" and p["nc"] == "00000001"
    assert p["cnonce"] == "cn1" and p["uri"] == "sip:pbx.example.com"
    assert p["opaque"]  # echoed from the challenge
    result = challenger().check(retry, 50.0)  # a second node with the same secret agrees
    assert result == Authorized("100", REALM, "SHA-256")


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [(("MD5",), "MD5"), (("MD5", "SHA-512-256", "SHA-256"), "SHA-512-256")],
)
def test_client_picks_strongest_offered(offered: tuple[str, ...], chosen: str) -> None:
    server = challenger(algorithms=offered)
    sent, got = drive(client_auth_flow(request(), ClientCredentials("100", "s3cret")), server, 0.0)
    assert got[-1].status == 200
    assert parse_auth_params(sent[-1].header("Authorization") or "")[1]["algorithm"] == chosen


def test_invite_round_trip_uses_proxy_authorization() -> None:
    server = challenger()
    inv = request("INVITE", "sip:200@pbx.example.com")
    sent, got = drive(client_auth_flow(inv, ClientCredentials("100", "s3cret", REALM)), server, 0)
    assert [r.status for r in got] == [407, 200]
    assert sent[1].has_header("Proxy-Authorization") and not sent[1].has_header("Authorization")


def test_ha1_only_store_never_needs_the_password() -> None:
    ha1 = compute_ha1("SHA-256", "100", REALM, "s3cret")
    creds = Credentials("100", REALM, (("SHA-256", ha1),))
    server = DigestChallenger(
        REALM, SECRET, InMemoryCredentialStore([creds]), algorithms=["SHA-256"]
    )
    _, got = drive(client_auth_flow(request(), ClientCredentials("100", "s3cret")), server, 0)
    assert got[-1].status == 200
    assert "s3cret" not in repr(Credentials.from_password("100", REALM, "s3cret"))


# -- refusals ------------------------------------------------------------------------------


def _authorized_request(
    server: DigestChallenger, now: float, password: str = "s3cret", req: SipRequest | None = None
) -> SipRequest:
    req = req or request()
    flow = client_auth_flow(req, ClientCredentials("100", password), cnonce_factory=cnonces())
    next(flow)
    return flow.send(answer(server, req, now))


def test_wrong_password_and_unknown_user_look_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    server = challenger()
    wrong = _authorized_request(server, 10.0, password="guess")
    unknown_flow = client_auth_flow(request(), ClientCredentials("999", "guess"))
    next(unknown_flow)
    unknown = unknown_flow.send(answer(server, request(), 10.0))

    calls: list[str] = []
    real = auth_digest.digest_hash

    def counting(algorithm: str, data: str | bytes) -> str:
        calls.append(algorithm)
        return real(algorithm, data)

    # The challenger hashes through compute_response, which lives in auth_digest.
    monkeypatch.setattr(auth_digest, "digest_hash", counting)
    r1 = server.check(wrong, 10.0)
    work_wrong = list(calls)
    calls.clear()
    r2 = server.check(unknown, 10.0)
    assert calls == work_wrong  # the same hashing work for an unknown user
    assert isinstance(r1, Failed) and isinstance(r2, Failed)
    assert (r1.reason, r2.reason) == (FailureReason.BAD_RESPONSE, FailureReason.UNKNOWN_USER)
    assert (r1.username, r2.username) == ("100", "999")

    def shape(f: Failed) -> list[tuple[str, list[str]]]:
        return [(n, sorted(parse_auth_params(v)[1])) for n, v in f.headers]

    assert r1.status == r2.status == 401
    assert shape(r1) == shape(r2)
    w1, w2 = auth_response(wrong, r1, to_tag="t"), auth_response(unknown, r2, to_tag="t")
    assert (w1.status, w1.reason) == (w2.status, w2.reason)


def test_expired_nonce_with_right_password_is_stale_exactly_after_ttl() -> None:
    server = challenger(nonce_ttl=30.0)
    req = _authorized_request(server, now=100.0)
    assert isinstance(server.check(req, 130.0), Authorized)  # age == ttl still valid
    late = _authorized_request(server, now=100.0)
    stale = server.check(late, 130.001)
    assert isinstance(stale, Challenge) and stale.stale and stale.status == 401
    assert all(parse_auth_params(v)[1]["stale"] == "true" for _, v in stale.headers)
    wrong = _authorized_request(server, now=100.0, password="nope")
    result = server.check(wrong, 200.0)
    assert isinstance(result, Failed) and result.reason is FailureReason.BAD_RESPONSE


def test_nonce_count_replay_is_rejected_and_higher_count_accepted() -> None:
    server = challenger()
    req = request()
    ch = server.check(req, 0.0)
    assert isinstance(ch, Challenge)
    client = DigestClient(ClientCredentials("100", "s3cret"), cnonce_factory=cnonces())
    (offer,) = client.offers(auth_response(req, ch, to_tag="t"))
    first = client.credentials_header(req, offer)
    second = client.credentials_header(req, offer)
    assert first is not None and second is not None
    assert parse_auth_params(second[1])[1]["nc"] == "00000002"
    r1 = req.with_header(*first)
    assert isinstance(server.check(r1, 1.0), Authorized)
    replay = server.check(r1, 2.0)
    assert isinstance(replay, Failed) and replay.reason is FailureReason.REPLAY
    assert isinstance(server.check(req.with_header(*second), 3.0), Authorized)
    assert isinstance(server.check(req.with_header(*second), 4.0), Failed)


def test_evicted_nonce_is_stale_not_replayable() -> None:
    server = challenger(nc_cache_size=2)
    reqs = [_authorized_request(server, now=float(t)) for t in range(3)]
    for r in reqs:
        assert isinstance(server.check(r, 5.0), Authorized)
    # The first nonce fell out of the LRU: its replay must not be authorized again.
    result = server.check(reqs[0], 6.0)
    assert isinstance(result, Challenge) and result.stale


def test_foreign_nonce_is_just_rechallenged() -> None:
    other = DigestChallenger(REALM, b"another-secret-of-16+", store())
    req = _authorized_request(other, 0.0)
    result = challenger().check(req, 0.0)
    assert isinstance(result, Challenge) and not result.stale


def test_uri_must_match_request_uri_by_rfc3261_comparison() -> None:
    server = challenger()
    req = _authorized_request(server, 0.0, req=request(uri="sip:pbx.example.com;transport=udp;lr"))
    # Same URI by §19.1.4 (parameter order is irrelevant), different text: accepted.
    same = SipRequest("REGISTER", parse_uri("sip:pbx.example.com;lr;transport=UDP"), req.headers)
    moved = SipRequest("REGISTER", parse_uri("sip:other.example.com"), req.headers)
    assert isinstance(server.check(same, 1.0), Authorized)
    bad = server.check(moved, 1.0)
    assert isinstance(bad, Failed) and bad.reason is FailureReason.URI_MISMATCH


def test_credentials_for_other_realm_or_wrong_header_get_a_challenge() -> None:
    server = challenger()
    req = _authorized_request(server, 0.0)
    value = req.header("Authorization") or ""
    other_realm = req.with_header("Authorization", value.replace(REALM, "elsewhere"))
    assert isinstance(server.check(other_realm, 1.0), Challenge)
    as_proxy = req.without_header("Authorization").with_header("Proxy-Authorization", value)
    assert isinstance(server.check(as_proxy, 1.0), Challenge)


def test_legacy_client_without_qop() -> None:
    strict, lenient = challenger(), challenger(require_qop=False)
    nonce = lenient.make_nonce(0.0)
    ha1 = compute_ha1("MD5", "100", REALM, "s3cret")
    resp = compute_response(
        algorithm="MD5", ha1=ha1, nonce=nonce, method="REGISTER", uri="sip:pbx.example.com"
    )
    value = (
        f'Digest username="100", realm="{REALM}", nonce="{nonce}", '
        f'uri="sip:pbx.example.com", response="{resp}"'
    )
    req = request().with_header("Authorization", value)
    assert lenient.check(req, 1.0) == Authorized("100", REALM, "MD5")
    refused = strict.check(req, 1.0)
    assert isinstance(refused, Failed) and refused.reason is FailureReason.UNSUPPORTED


@pytest.mark.parametrize(
    "mutation",
    [
        lambda v: v.replace("username=", "user="),
        lambda v: v.replace("nc=00000001", "nc=1"),
        lambda v: v.replace("nc=00000001", "nc=0000000g"),
        lambda v: v.replace("qop=auth", "qop=auth-int"),
        lambda v: v.replace("algorithm=SHA-256", "algorithm=SHA-1"),
    ],
)
def test_malformed_or_unsupported_credentials_fail(mutation: object) -> None:
    server = challenger()
    req = _authorized_request(server, 0.0)
    bad = req.with_header("Authorization", mutation(req.header("Authorization")))  # type: ignore[operator]
    result = server.check(bad, 1.0)
    assert isinstance(result, Failed)
    assert result.reason in {FailureReason.MALFORMED, FailureReason.UNSUPPORTED}


# -- client flow ---------------------------------------------------------------------------


def test_flow_stops_after_second_refusal() -> None:
    server = challenger()
    sent, got = drive(client_auth_flow(request(), ClientCredentials("100", "bad")), server, 0.0)
    assert [r.status for r in got] == [401, 401]
    assert [r.cseq.seq for r in sent] == [1, 2]


def test_flow_retries_once_on_stale() -> None:
    server = challenger(nonce_ttl=10.0)
    req = request()
    flow = client_auth_flow(req, ClientCredentials("100", "s3cret"))
    first = next(flow)
    retry = flow.send(answer(server, first, 0.0))
    stale = answer(server, retry, 20.0)  # the nonce aged out in flight
    assert stale.status == 401 and "stale=true" in (stale.header("WWW-Authenticate") or "")
    again = flow.send(stale)
    assert again.cseq.seq == 3
    with pytest.raises(StopIteration):
        flow.send(answer(server, again, 20.0))
    assert isinstance(server.check(again, 20.0), Failed)  # (already used: replay)
    # A second stale in a row is not retried.
    flow2 = client_auth_flow(req, ClientCredentials("100", "s3cret"))
    r = flow2.send(answer(server, next(flow2), 0.0))
    r = flow2.send(answer(server, r, 20.0))
    with pytest.raises(StopIteration):
        flow2.send(answer(server, r, 40.0))


def test_flow_without_matching_credentials_or_challenge_stops() -> None:
    server = challenger()
    flow = client_auth_flow(request(), ClientCredentials("100", "s3cret", realm="other"))
    first = next(flow)
    with pytest.raises(StopIteration):
        flow.send(answer(server, first, 0.0))
    ok = client_auth_flow(request(), ClientCredentials("100", "s3cret"))
    with pytest.raises(StopIteration):
        ok.send(make_response(next(ok), 200, to_tag="t"))


def test_flow_answers_two_proxies_realms() -> None:
    a = DigestChallenger(
        "a.example",
        SECRET,
        InMemoryCredentialStore([Credentials.from_password("100", "a.example", "pa")]),
    )
    b = DigestChallenger(
        "b.example",
        SECRET,
        InMemoryCredentialStore([Credentials.from_password("100", "b.example", "pb")]),
    )
    creds = [
        ClientCredentials("100", "pa", "a.example"),
        ClientCredentials("100", "pb", "b.example"),
    ]
    inv = request("INVITE", "sip:200@b.example")
    flow = client_auth_flow(inv, creds)
    r1 = next(flow)
    r2 = flow.send(auth_response(r1, a.check(r1, 0.0), to_tag="t"))  # type: ignore[arg-type]
    assert isinstance(a.check(r2, 0.0), Authorized)
    ch_b = b.check(r2, 0.0)
    assert isinstance(ch_b, Challenge)
    r3 = flow.send(auth_response(r2, ch_b, to_tag="t"))
    assert len(r3.header_values("Proxy-Authorization")) == 2
    assert isinstance(b.check(r3, 0.0), Authorized)
    assert r3.cseq.seq == 3


def test_client_auth_int_sess_and_userhash() -> None:
    req = request("MESSAGE", "sip:200@x.example").with_body(b"hello", "text/plain")
    challenge = (
        'Digest realm="x.example", nonce="abc", algorithm=MD5-sess, qop="auth-int", userhash=true'
    )
    resp = make_response(req, 401, to_tag="t", headers=[("WWW-Authenticate", challenge)])
    client = DigestClient(ClientCredentials("100", "pw"), cnonce_factory=lambda: "cc")
    (offer,) = client.offers(resp)
    built = client.credentials_header(req, offer)
    assert built is not None
    _, p = parse_auth_params(built[1])
    assert p["qop"] == "auth-int" and p["algorithm"] == "MD5-sess" and p["userhash"] == "true"
    assert p["username"] == digest_hash("MD5", "100:x.example")
    expected = compute_response(
        algorithm="MD5-sess",
        ha1=compute_ha1("MD5", "100", "x.example", "pw"),
        nonce="abc",
        method="MESSAGE",
        uri="sip:200@x.example",
        qop="auth-int",
        nc="00000001",
        cnonce="cc",
        body=b"hello",
    )
    assert p["response"] == expected


def test_client_ignores_unusable_challenges() -> None:
    req = request()
    values = [
        'Basic realm="x"',
        'Digest realm="x", nonce="n", algorithm=SHA-1',
        'Digest realm="x", nonce="n", qop="auth-conf"',
        'Digest nonce="n"',
    ]
    resp = make_response(req, 401, to_tag="t", headers=[("WWW-Authenticate", v) for v in values])
    assert DigestClient(ClientCredentials("u", "p")).offers(resp) == []


_text = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=0x24F, blacklist_characters="\x7f"),
    min_size=1,
    max_size=20,
)


@settings(max_examples=60, deadline=None)
@given(username=_text, password=_text, realm=_text, algorithm=st.sampled_from(["MD5", "SHA-256"]))
def test_round_trip_any_credentials(
    username: str, password: str, realm: str, algorithm: str
) -> None:
    # Quotes, backslashes, commas and non-ASCII must survive quoting on both sides.
    server = DigestChallenger(
        realm,
        SECRET,
        InMemoryCredentialStore([Credentials.from_password(username, realm, password)]),
        algorithms=[algorithm],
    )
    flow = client_auth_flow(request(), ClientCredentials(username, password))
    sent, got = drive(flow, server, 0.0)
    assert [r.status for r in got] == [401, 200]
    assert server.check(sent[-1], 0.0) != Authorized(username, realm, algorithm)  # replay now
