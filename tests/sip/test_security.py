"""Edge security: failed-auth blocker, scanner filter, rate limiter and the policy facade."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zvonar.sip.auth import DigestChallenger, Failed, InMemoryCredentialStore
from zvonar.sip.message import SipRequest, parse_message
from zvonar.sip.security import (
    Allow,
    BlockerConfig,
    Drop,
    DropReason,
    FailedAuthBlocker,
    RateLimit,
    RateLimiter,
    Reject,
    ScannerFilter,
    ScannerMatch,
    SecurityConfig,
    SecurityEvent,
    SecurityEventKind,
    SecurityPolicy,
)

K = SecurityEventKind


def req(
    method: str = "REGISTER", ua: str | None = "Yealink SIP-T46S", display: str = ""
) -> SipRequest:
    lines = [
        f"{method} sip:pbx.example.com SIP/2.0",
        "Via: SIP/2.0/UDP 198.51.100.9:5060;branch=z9hG4bKx",
        f"From: {display}<sip:100@pbx.example.com>;tag=1",
        "To: <sip:100@pbx.example.com>",
        "Call-ID: c1",
        f"CSeq: 1 {method}",
    ]
    if ua is not None:
        lines.append(f"User-Agent: {ua}")
    msg = parse_message(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode())
    assert isinstance(msg, SipRequest)
    return msg


# -- blocker -------------------------------------------------------------------------------


def test_five_failures_in_window_block_until_exact_time() -> None:
    b = FailedAuthBlocker(BlockerConfig(max_failures=5, window=60.0, block_for=900.0))
    for t in (0.0, 10.0, 20.0, 30.0):
        b.record_failure("192.0.2.1", "100", t)
        assert not b.is_blocked("192.0.2.1", t)
    b.record_failure("192.0.2.1", "100", 40.0)
    assert b.events() == [
        SecurityEvent(
            K.BLOCKED, 40.0, "192.0.2.1", "100", 940.0, "5 failed authentications within 60s"
        ),
    ]
    assert b.is_blocked("192.0.2.1", 939.999) and b.blocked_until("192.0.2.1", 500.0) == 940.0
    assert not b.is_blocked("192.0.2.2", 100.0)
    assert b.next_deadline() == 940.0
    assert not b.is_blocked("192.0.2.1", 940.0)
    assert b.events() == [SecurityEvent(K.UNBLOCKED, 940.0, "192.0.2.1", reason="expired")]
    assert b.next_deadline() is None


def test_window_slides() -> None:
    b = FailedAuthBlocker(BlockerConfig(max_failures=5, window=60.0))
    for t in (0.0, 15.0, 30.0, 45.0, 60.0):  # the first has left the window at t=60
        b.record_failure("192.0.2.1", None, t)
    assert not b.is_blocked("192.0.2.1", 60.0)
    b.record_failure("192.0.2.1", None, 61.0)
    assert b.is_blocked("192.0.2.1", 61.0)


def test_distributed_guessing_of_one_account_is_caught() -> None:
    cfg = BlockerConfig(
        max_failures=5, account_max_failures=10, account_window=300.0, account_guard_for=600.0
    )
    b = FailedAuthBlocker(cfg)
    for i in range(10):  # ten botnet IPs, one guess each
        b.record_failure(f"203.0.113.{i}", "101", float(i))
    assert not any(b.is_blocked(f"203.0.113.{i}", 10.0) for i in range(9))
    guard, tenth = b.events()  # the guess that tripped the guard already counts against it
    assert (tenth.kind, tenth.source, tenth.account) == (K.BLOCKED, "203.0.113.9", "101")
    assert guard == SecurityEvent(
        K.BLOCKED, 9.0, None, "101", 609.0, "10 failed authentications for the account within 300s"
    )
    assert b.is_guarded("101", 10.0) and not b.is_account_locked("101", 10.0)
    b.record_failure("203.0.113.50", "101", 20.0)  # one more guess: blocked at once
    assert b.is_blocked("203.0.113.50", 20.0)
    b.record_failure("203.0.113.51", "102", 21.0)  # other accounts are unaffected
    assert not b.is_blocked("203.0.113.51", 21.0)
    b.handle_timer(609.0)
    assert SecurityEvent(K.UNBLOCKED, 609.0, None, "101", reason="expired") in b.events()
    assert not b.is_guarded("101", 609.0)


def test_account_lockout_option_and_policy_reject() -> None:
    cfg = SecurityConfig(blocker=BlockerConfig(account_max_failures=2, account_lockout=True))
    p = SecurityPolicy(cfg)
    p.record_auth_failure(("198.51.100.1", 5060), "100", 0.0)
    assert p.check_account("100", 0.0) == Allow()
    p.record_auth_failure(("198.51.100.2", 5060), "100", 1.0)
    assert p.check_account("100", 1.0) == Reject(403, "Forbidden")
    assert p.check_account("100", 1.0 + 900.0) == Allow()


def test_manual_block_extend_unblock_and_bounded_memory() -> None:
    b = FailedAuthBlocker(BlockerConfig(max_blocked=2, max_tracked=2, max_failures=2))
    b.block("a", 0.0, 100.0, reason="x")
    b.block("a", 10.0, 50.0)  # shorter: ignored
    assert b.blocked_until("a", 10.0) == 100.0
    b.block("b", 0.0, 200.0)
    b.block("c", 0.0, 300.0)  # evicts "a", the soonest to expire
    assert not b.is_blocked("a", 1.0) and b.is_blocked("c", 1.0)
    b.unblock("c", 2.0)
    kinds = [(e.kind, e.source, e.reason) for e in b.events()]
    assert (K.UNBLOCKED, "a", "evicted") in kinds and (K.UNBLOCKED, "c", "manual") in kinds
    for ip in ("d", "e", "f"):  # histories are LRU-bounded: "d" is forgotten
        b.record_failure(ip, None, 3.0)
    b.record_failure("d", None, 4.0)
    assert not b.is_blocked("d", 4.0)
    b.record_failure("f", None, 4.0)
    assert b.is_blocked("f", 4.0)


# -- scanners ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ua", "sig"),
    [
        ("friendly-scanner", "friendly-scanner"),
        ("sipvicious 0.3.4", "sipvicious"),
        ("sipcli/v1.8", "sipcli"),
        ("VaxSIPUserAgent/3.1", "vaxsipuseragent"),
        ("pplsip", "pplsip"),
        ("smap 0.6.0", "smap"),
        ("Sip-Scan", "sip-scan"),
        ("sundayddr", "sundayddr"),
        ("iWar", "iwar"),
        ("SIVuS Scanner", "sivus"),
    ],
)
def test_scanner_user_agents(ua: str, sig: str) -> None:
    f = ScannerFilter()
    assert f.match(req(ua=ua)) == ScannerMatch(sig, "User-Agent")
    assert f.hits == {sig: 1}


@pytest.mark.parametrize(
    "ua", ["Yealink SIP-T46S", "Asmapro 1.0", "bigsmap 2", "sipclient 2", "Linphone", None]
)
def test_ordinary_user_agents_pass(ua: str | None) -> None:
    assert ScannerFilter().match(req(ua=ua)) is None


def test_scanner_in_from_display_name() -> None:
    f = ScannerFilter()
    assert f.match(req(ua=None, display='"sipvicious" ')) == ScannerMatch("sipvicious", "From")
    assert ScannerFilter([]).match(req(ua="friendly-scanner")) is None


# -- rate limiter --------------------------------------------------------------------------


def test_token_bucket_exact_refill() -> None:
    r = RateLimiter({"REGISTER": RateLimit(rate=2.0, burst=3.0)})
    assert [r.allow("a", "REGISTER", 0.0) for _ in range(4)] == [True, True, True, False]
    assert not r.allow("a", "REGISTER", 0.49)
    assert r.allow("a", "REGISTER", 0.5)  # 0.5 s × 2/s = one token, counted from t=0.49
    assert not r.allow("a", "REGISTER", 0.5)
    assert r.allow("b", "REGISTER", 0.5)  # per source
    assert all(r.allow("a", "OPTIONS", 0.5) for _ in range(100))  # no "*": unlimited
    assert r.allow("a", "REGISTER", 100.0) and r.allow("a", "REGISTER", 100.0)
    assert r.allow("a", "REGISTER", 100.0) and not r.allow("a", "REGISTER", 100.0)  # burst cap


def test_rate_limiter_classes_and_bounded_memory() -> None:
    limits = {"INVITE": RateLimit(1.0, 1.0), "*": RateLimit(1.0, 2.0)}
    r = RateLimiter(limits, max_sources=3)
    assert r.allow("a", "INVITE", 0.0) and not r.allow("a", "INVITE", 0.0)
    assert r.allow("a", "OPTIONS", 0.0) and r.allow("a", "NOTIFY", 0.0)  # share "*"
    assert not r.allow("a", "SUBSCRIBE", 0.0)
    for i in range(10):
        r.allow(f"x{i}", "INVITE", 1.0)
    assert len(r) == 3


def test_refill_in_small_steps_adds_up_to_a_token() -> None:
    r = RateLimiter({"INVITE": RateLimit(rate=0.1, burst=1.0)})  # one INVITE per 10 s
    assert r.allow("a", "INVITE", 0.0)
    # ten refills of 1 s x 0.1/s sum to 0.9999999999999999 in floats: still one whole token
    assert [r.allow("a", "INVITE", float(t)) for t in range(1, 11)] == [False] * 9 + [True]


# -- facade --------------------------------------------------------------------------------


def test_policy_drops_scanner_and_blocks_its_ip() -> None:
    p = SecurityPolicy(SecurityConfig(block_scanners_for=3600.0))
    src = ("192.0.2.66", 5060)
    assert p.check_request(req(ua="friendly-scanner"), src, 0.0) == Drop(
        DropReason.SCANNER, "friendly-scanner"
    )
    assert p.check_request(req(), src, 1.0) == Drop(DropReason.BLOCKED)
    assert p.check_source(src, 1.0) == Drop(DropReason.BLOCKED)
    assert p.check_source(src, 3600.0) == Allow()
    events = p.events()
    assert [e.kind for e in events] == [K.SCANNER, K.BLOCKED, K.UNBLOCKED]
    assert events[0].reason == "User-Agent matches 'friendly-scanner'"
    assert events[1].until == 3600.0
    assert p.counters == {"allowed": 0, "blocked": 2, "scanner": 1, "flood": 0}


def test_policy_flood_drop_or_reject_with_one_event_per_interval() -> None:
    cfg = SecurityConfig(rate_limits={"*": RateLimit(1.0, 1.0)}, event_interval=60.0)
    p = SecurityPolicy(cfg)
    src = ("192.0.2.7", 1000)
    assert p.check_request(req("OPTIONS"), src, 0.0) == Allow()
    for t in (0.1, 0.2, 0.3):
        assert p.check_request(req("OPTIONS"), src, t) == Drop(DropReason.FLOOD, "OPTIONS")
    assert [e.kind for e in p.events()] == [K.FLOOD]
    p.check_request(req("OPTIONS"), src, 60.05)  # allowed (refilled)
    p.check_request(req("OPTIONS"), src, 60.1)  # dropped, 60 s after the first event
    assert [(e.kind, e.at) for e in p.events()] == [(K.FLOOD, 60.1)]
    rej = SecurityPolicy(SecurityConfig(rate_limits={"*": RateLimit(1.0, 1.0)}, flood_status=503))
    rej.check_request(req("OPTIONS"), src, 0.0)
    assert rej.check_request(req("OPTIONS"), src, 0.0) == Reject(
        503, "rate limited", (("Retry-After", "30"),)
    )


def test_trusted_networks_skip_every_check() -> None:
    cfg = SecurityConfig(
        trusted=("198.51.100.0/24", "2001:db8::/32"), rate_limits={"*": RateLimit(1.0, 1.0)}
    )
    p = SecurityPolicy(cfg)
    for _ in range(3):
        assert (
            p.check_request(req("OPTIONS", ua="friendly-scanner"), ("198.51.100.4", 1), 0)
            == Allow()
        )
    for _ in range(10):
        p.record_auth_failure(("[2001:db8::1]", 5060), "100", 0.0)
    assert p.check_source(("[2001:db8::1]", 5060), 0.0) == Allow()
    assert p.blocker.is_guarded("100", 0.0)  # still counted against the account
    assert not p.is_trusted("not-an-ip")


def test_digest_failures_feed_the_blocker() -> None:
    store = InMemoryCredentialStore()
    store.add_password("100", "pbx", "right")
    server = DigestChallenger("pbx", b"0123456789abcdef", store)
    policy = SecurityPolicy(SecurityConfig(blocker=BlockerConfig(max_failures=3)))
    src = ("192.0.2.200", 5060)
    value = (
        'Digest username="100", realm="pbx", nonce="{n}", uri="sip:pbx.example.com", '
        'response="00", qop=auth, nc=00000001, cnonce="c", algorithm=MD5'
    )
    for t in range(3):
        attempt = req().with_header("Authorization", value.format(n=server.make_nonce(float(t))))
        assert policy.check_request(attempt, src, float(t)) == Allow()
        result = server.check(attempt, float(t))
        assert isinstance(result, Failed)
        policy.record_auth_failure(src, result.username, float(t))
    assert policy.check_request(req(), src, 3.0) == Drop(DropReason.BLOCKED)
    (ev,) = policy.events()
    assert (ev.kind, ev.source, ev.account) == (K.BLOCKED, "192.0.2.200", "100")


@settings(max_examples=100, deadline=None)
@given(
    gaps=st.lists(st.floats(min_value=0.0, max_value=5.0), min_size=1, max_size=200),
    rate=st.floats(min_value=0.1, max_value=20.0),
    burst=st.integers(min_value=1, max_value=20),
)
def test_token_bucket_never_exceeds_burst_plus_rate(
    gaps: list[float], rate: float, burst: int
) -> None:
    r = RateLimiter({"*": RateLimit(rate, float(burst))})
    now, allowed = 0.0, 0
    for gap in gaps:
        now += gap
        allowed += r.allow("a", "OPTIONS", now)
        assert allowed <= burst + rate * now + 1e-6
    # and an idle source always gets at least one request through after 1/rate seconds
    assert r.allow("a", "OPTIONS", now + 1.0 / rate)


def test_many_blocks_expire_in_order() -> None:
    b = FailedAuthBlocker()
    for i in range(1000):
        b.block(f"10.0.{i // 256}.{i % 256}", 0.0, float(1000 - i))
    b.block("10.0.0.0", 0.0, 5000.0)  # extended: its old expiry (1000) no longer counts
    b.unblock("10.0.3.231", 0.0)  # i=999, would expire first at t=1
    b.events()
    assert b.next_deadline() == 2.0
    b.handle_timer(500.0)
    expired = {e.source for e in b.events()}
    assert len(expired) == 499 and "10.0.3.230" in expired and "10.0.1.244" in expired
    assert "10.0.1.243" not in expired  # i=499 expires at 501
    assert b.next_deadline() == 501.0
    b.handle_timer(1000.0)
    assert b.next_deadline() == 5000.0 and b.is_blocked("10.0.0.0", 4999.0)


def test_blocker_config_is_validated() -> None:
    with pytest.raises(ValueError):
        BlockerConfig(max_failures=0)
    with pytest.raises(ValueError):
        BlockerConfig(window=0.0)
