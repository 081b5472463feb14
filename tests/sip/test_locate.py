"""Locating a SIP server: RFC 3263 §4.1/§4.2 (which queries) and RFC 2782 (SRV ordering)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator

import pytest

from zvonar.sip.locate import (
    DEFAULT_PORTS,
    Destination,
    LookupPlan,
    Naptr,
    Srv,
    after_naptr,
    from_srv,
    order_srv,
    plan_lookup,
)

ALL = ("UDP", "TCP", "TLS")


def scripted(*values: int) -> tuple[Callable[[int], int], list[int]]:
    """A draw that returns ``values`` in turn and records the bound it was asked for."""
    asked: list[int] = []
    it: Iterator[int] = iter(values)

    def draw(n: int) -> int:
        asked.append(n)
        return next(it)

    return draw, asked


def seeded(seed: int) -> Callable[[int], int]:
    rng = random.Random(seed)
    return lambda n: rng.randint(0, n)


# --- plan_lookup: §4.1 transport selection, §4.2 port and address -----------------------------


def test_default_ports_are_5060_and_5061_for_tls() -> None:
    assert DEFAULT_PORTS == {"UDP": 5060, "TCP": 5060, "TLS": 5061}


@pytest.mark.parametrize(
    ("host", "port", "transport", "secure", "expected"),
    [
        ("192.0.2.1", None, None, False, Destination("UDP", "192.0.2.1", 5060)),
        ("192.0.2.1", 5080, None, False, Destination("UDP", "192.0.2.1", 5080)),
        ("192.0.2.1", None, "tcp", False, Destination("TCP", "192.0.2.1", 5060)),
        ("192.0.2.1", None, "TLS", False, Destination("TLS", "192.0.2.1", 5061)),
        # §4.1: a sips URI to a numeric address goes over TLS, at TLS's default port.
        ("192.0.2.1", None, None, True, Destination("TLS", "192.0.2.1", 5061)),
        ("192.0.2.1", 5071, None, True, Destination("TLS", "192.0.2.1", 5071)),
        ("[2001:db8::1]", None, None, False, Destination("UDP", "2001:db8::1", 5060)),
        ("[2001:db8::1]", 5090, "tcp", False, Destination("TCP", "2001:db8::1", 5090)),
        ("[2001:db8::1]", None, None, True, Destination("TLS", "2001:db8::1", 5061)),
    ],
)
def test_ip_literal_is_its_own_destination(
    host: str, port: int | None, transport: str | None, secure: bool, expected: Destination
) -> None:
    # An IP literal needs no DNS at all: no NAPTR, no SRV, nothing to fall back to.
    assert plan_lookup(host, port, transport, secure=secure) == LookupPlan(direct=expected)


def test_ip_literal_skips_naptr_even_when_tls_is_supported() -> None:
    plan = plan_lookup("198.51.100.7", None, None, supported=ALL)
    assert plan == LookupPlan(direct=Destination("UDP", "198.51.100.7", 5060))


@pytest.mark.parametrize(
    ("transport", "secure", "expected_transport"),
    [(None, False, "UDP"), ("tcp", False, "TCP"), ("tls", False, "TLS"), (None, True, "TLS")],
)
def test_name_with_explicit_port_is_direct_and_keeps_the_port(
    transport: str | None, secure: bool, expected_transport: str
) -> None:
    # §4.2: an explicit port means A/AAAA of the name at that port; SRV would override the port.
    plan = plan_lookup("SIP.Example.COM.", 5070, transport, secure=secure, supported=ALL)
    assert plan == LookupPlan(direct=Destination(expected_transport, "sip.example.com", 5070))
    assert plan.naptr is None and plan.srv == () and plan.fallback == ()


@pytest.mark.parametrize(
    ("transport", "srv_name", "proto", "port"),
    [
        ("udp", "_sip._udp.example.com", "UDP", 5060),
        ("TCP", "_sip._tcp.example.com", "TCP", 5060),
        # §4.2: TLS for a sip URI still uses the "_sips" service identifier.
        ("tls", "_sips._tcp.example.com", "TLS", 5061),
    ],
)
def test_transport_param_without_port_queries_srv_for_that_transport_only(
    transport: str, srv_name: str, proto: str, port: int
) -> None:
    plan = plan_lookup("Example.COM.", None, transport, supported=ALL)
    assert plan == LookupPlan(
        srv=((proto, srv_name),), fallback=(Destination(proto, "example.com", port),)
    )


def test_sips_with_transport_param_uses_sips_srv_and_tls_port() -> None:
    # transport=tcp on a sips URI is TLS over TCP: "_sips._tcp" and 5061, never plain TCP.
    plan = plan_lookup("example.com", None, "tcp", secure=True)
    assert plan == LookupPlan(
        srv=(("TLS", "_sips._tcp.example.com"),),
        fallback=(Destination("TLS", "example.com", 5061),),
    )


def test_name_alone_starts_with_naptr_then_srv_per_transport_then_udp_5060() -> None:
    plan = plan_lookup("Example.COM.", None, None)
    assert plan == LookupPlan(
        naptr="example.com",
        srv=(("UDP", "_sip._udp.example.com"), ("TCP", "_sip._tcp.example.com")),
        fallback=(Destination("UDP", "example.com", 5060),),
    )
    assert plan.direct is None


def test_name_alone_srv_names_follow_our_preference_and_skip_unknown_transports() -> None:
    plan = plan_lookup("example.com", None, None, supported=("TLS", "SCTP", "TCP", "UDP"))
    assert plan.srv == (
        ("TLS", "_sips._tcp.example.com"),
        ("TCP", "_sip._tcp.example.com"),
        ("UDP", "_sip._udp.example.com"),
    )
    # §4.1: with neither NAPTR nor SRV, a sip URI goes over UDP whatever our preference.
    assert plan.fallback == (Destination("UDP", "example.com", 5060),)


def test_sips_name_alone_stays_on_tls_throughout() -> None:
    plan = plan_lookup("example.com", None, None, secure=True, supported=ALL)
    assert plan.direct is None
    assert plan.srv == (("TLS", "_sips._tcp.example.com"),)
    assert plan.fallback == (Destination("TLS", "example.com", 5061),)


def test_sips_name_alone_still_queries_naptr() -> None:
    # §4.1: with no transport and no port the client SHOULD query NAPTR, for a sips URI too (it
    # then keeps only the SIPS services, which is what after_naptr(secure=True) is for).
    plan = plan_lookup("Example.COM", None, None, secure=True, supported=ALL)
    assert plan.naptr == "example.com"


# --- after_naptr: §4.1 NAPTR filtering and ordering -----------------------------------------


def naptr(order: int, pref: int, service: str, replacement: str, flags: str = "s") -> Naptr:
    return Naptr(
        order=order, preference=pref, flags=flags, service=service, replacement=replacement
    )


def test_naptr_keeps_only_services_we_speak() -> None:
    records = [
        naptr(10, 10, "SIPS+D2T", "_sips._tcp.example.com"),
        naptr(20, 10, "SIP+D2T", "_sip._tcp.example.com"),
        naptr(30, 10, "SIP+D2U", "_sip._udp.example.com"),
        naptr(5, 10, "SIP+D2S", "_sip._sctp.example.com"),
        naptr(1, 10, "E2U+sip", "_sip._udp.enum.example.com"),
    ]
    assert after_naptr(records) == (
        ("TCP", "_sip._tcp.example.com"),
        ("UDP", "_sip._udp.example.com"),
    )
    # §4.1: a client resolving a sip URI keeps SIPS records when it speaks TLS.
    assert after_naptr(records, supported=ALL) == (
        ("TLS", "_sips._tcp.example.com"),
        ("TCP", "_sip._tcp.example.com"),
        ("UDP", "_sip._udp.example.com"),
    )
    assert after_naptr(records, supported=("TCP",)) == (("TCP", "_sip._tcp.example.com"),)


@pytest.mark.parametrize("flags", ["", "a", "u", "p"])
def test_naptr_drops_non_terminal_s_records(flags: str) -> None:
    records = [
        naptr(10, 10, "SIP+D2U", "_sip._udp.other.example.com", flags=flags),
        naptr(20, 10, "SIP+D2T", "_sip._tcp.example.com"),
    ]
    assert after_naptr(records) == (("TCP", "_sip._tcp.example.com"),)


@pytest.mark.parametrize("replacement", ["", "."])
def test_naptr_drops_records_without_a_replacement(replacement: str) -> None:
    records = [naptr(10, 10, "SIP+D2U", replacement), naptr(20, 10, "SIP+D2T", "tcp.example.com")]
    assert after_naptr(records) == (("TCP", "tcp.example.com"),)


def test_naptr_service_and_flags_are_case_insensitive() -> None:
    records = [
        naptr(10, 10, "sip+d2u", "_sip._udp.example.com", flags="S"),
        naptr(20, 10, "Sips+D2t", "_sips._tcp.example.com", flags="s"),
    ]
    assert after_naptr(records, supported=ALL) == (
        ("UDP", "_sip._udp.example.com"),
        ("TLS", "_sips._tcp.example.com"),
    )


def test_naptr_orders_by_order_then_preference_not_input_order() -> None:
    records = [
        naptr(20, 1, "SIP+D2U", "d.example.com"),
        naptr(10, 50, "SIP+D2U", "b.example.com"),
        naptr(10, 100, "SIP+D2T", "c.example.com"),
        naptr(10, 5, "SIP+D2T", "a.example.com"),
    ]
    # order dominates preference: d (order 20) comes last despite the lowest preference.
    assert after_naptr(records) == (
        ("TCP", "a.example.com"),
        ("UDP", "b.example.com"),
        ("TCP", "c.example.com"),
        ("UDP", "d.example.com"),
    )


def test_naptr_replacement_is_normalized_and_duplicates_collapse_to_the_best() -> None:
    records = [
        naptr(30, 10, "SIP+D2U", "_sip._udp.example.com"),
        naptr(10, 10, "SIP+D2U", "_SIP._UDP.Example.COM."),
        naptr(20, 10, "SIP+D2T", "_sip._udp.example.com"),
    ]
    # Same name under another transport is a different destination, so it stays.
    assert after_naptr(records) == (
        ("UDP", "_sip._udp.example.com"),
        ("TCP", "_sip._udp.example.com"),
    )


def test_naptr_for_sips_keeps_only_sips_services() -> None:
    records = [
        naptr(10, 10, "SIP+D2U", "_sip._udp.example.com"),
        naptr(20, 10, "SIPS+D2T", "_sips._tcp.example.com"),
        naptr(30, 10, "SIP+D2T", "_sip._tcp.example.com"),
    ]
    assert after_naptr(records, secure=True, supported=ALL) == (("TLS", "_sips._tcp.example.com"),)
    assert after_naptr(records[:1] + records[2:], secure=True, supported=ALL) == ()


def test_naptr_nothing_in_nothing_out() -> None:
    assert after_naptr([]) == ()


# --- order_srv: RFC 2782 ----------------------------------------------------------------------


def test_srv_lower_priority_first_whatever_the_weights() -> None:
    records = [
        Srv(20, 1000, 5060, "c.example.com"),
        Srv(10, 1, 5060, "a.example.com"),
        Srv(30, 1000, 5060, "d.example.com"),
        Srv(10, 1, 5060, "b.example.com"),
    ]
    for seed in range(50):
        ordered = order_srv(records, seeded(seed))
        assert [r.priority for r in ordered] == [10, 10, 20, 30]
        assert {r.target for r in ordered[:2]} == {"a.example.com", "b.example.com"}


def test_srv_priority_zero_is_a_priority_like_any_other() -> None:
    records = [Srv(1, 0, 5060, "b.example.com"), Srv(0, 0, 5060, "a.example.com")]
    assert [r.target for r in order_srv(records, lambda n: 0)] == [
        "a.example.com",
        "b.example.com",
    ]


def test_srv_lone_dot_target_means_service_not_available() -> None:
    assert order_srv([Srv(0, 0, 0, ".")], lambda n: 0) == []


def test_srv_dot_records_among_others_are_dropped() -> None:
    real = Srv(20, 0, 5060, "sip.example.com")
    assert order_srv([Srv(10, 0, 0, "."), real], lambda n: 0) == [real]


def test_srv_no_records_no_destinations() -> None:
    assert order_srv([], lambda n: 0) == []


def test_srv_draw_of_zero_picks_zero_weight_records_first() -> None:
    a, z, b = (
        Srv(10, 10, 5060, "a.example.com"),
        Srv(10, 0, 5060, "z.example.com"),
        Srv(10, 5, 5060, "b.example.com"),
    )
    # RFC 2782 puts weight-0 records at the head of the running sum; 0 >= 0 selects them.
    assert order_srv([a, z, b], lambda n: 0) == [z, a, b]


def test_srv_draw_of_the_total_picks_the_last_in_running_sum() -> None:
    a, b, c, z = (
        Srv(10, 10, 5060, "a.example.com"),
        Srv(10, 5, 5060, "b.example.com"),
        Srv(10, 1, 5060, "c.example.com"),
        Srv(10, 0, 5060, "z.example.com"),
    )
    # The maximal draw only reaches the end of the running sum; weight 0 comes out last.
    assert order_srv([a, b, c, z], lambda n: n) == [c, b, a, z]


def test_srv_draw_selects_the_first_running_sum_at_or_above_it() -> None:
    a, b = Srv(10, 10, 5060, "a.example.com"), Srv(10, 5, 5060, "b.example.com")
    # Running sums are a=10, b=15: a draw of 10 is still a's, 11 already b's.
    draw, _ = scripted(10, 0)
    assert order_srv([a, b], draw) == [a, b]
    draw, _ = scripted(11, 0)
    assert order_srv([a, b], draw) == [b, a]


def test_srv_draw_is_bounded_by_the_weights_not_yet_ordered() -> None:
    records = [
        Srv(10, 10, 5060, "a.example.com"),
        Srv(10, 5, 5060, "b.example.com"),
        Srv(10, 1, 5060, "c.example.com"),
        Srv(20, 7, 5060, "d.example.com"),
        Srv(20, 3, 5060, "e.example.com"),
    ]
    draw, asked = scripted(0, 0, 0, 0, 0)
    order_srv(records, draw)
    # One draw per record; each priority has its own sum (16, then 10), shrinking as picked.
    assert asked == [16, 6, 1, 10, 3]


@pytest.mark.parametrize(("out_of_range", "expected"), [(10**6, "bac"), (-1, "abc")])
def test_srv_draw_out_of_range_still_orders_every_record_once(
    out_of_range: int, expected: str
) -> None:
    records = [
        Srv(10, 10, 5060, "a.example.com"),
        Srv(10, 5, 5060, "b.example.com"),
        Srv(20, 0, 5060, "c.example.com"),
    ]
    # The call returning at all is the point (no retry loop on a bad draw); a draw past the
    # total takes the end of the running sum, one below zero its head.
    ordered = order_srv(records, lambda n: out_of_range)
    assert "".join(r.target[0] for r in ordered) == expected
    assert Counter(ordered) == Counter(records)


def test_srv_every_record_comes_out_exactly_once() -> None:
    rng = random.Random(7)
    records = [
        Srv(rng.randint(0, 3), rng.choice([0, 0, 1, 5, 60]), 5060 + i, f"h{i}.example.com")
        for i in range(25)
    ]
    for seed in range(20):
        ordered = order_srv(records, seeded(seed))
        assert Counter(ordered) == Counter(records)
        assert [r.priority for r in ordered] == sorted(r.priority for r in records)


def test_srv_weighted_first_pick_shares_match_the_weights() -> None:
    heavy = Srv(10, 60, 5060, "heavy.example.com")
    light1 = Srv(10, 20, 5060, "light1.example.com")
    light2 = Srv(10, 20, 5060, "light2.example.com")
    trials = 20_000
    draw = seeded(2782)
    firsts = Counter(order_srv([light1, heavy, light2], draw)[0] for _ in range(trials))
    # A draw in 0..100 inclusive gives 61/101, 20/101, 20/101 (RFC 2782's rule as written).
    # One standard error is about 0.0035, so ±0.02 never trips on sampling noise yet catches
    # a uniform order (1/3 each) or an inverted one (heavy at 0.2).
    assert firsts[heavy] / trials == pytest.approx(0.6, abs=0.02)
    assert firsts[light1] / trials == pytest.approx(0.2, abs=0.02)
    assert firsts[light2] / trials == pytest.approx(0.2, abs=0.02)


def test_srv_zero_weight_is_rarely_but_sometimes_first_against_a_weighted_record() -> None:
    zero = Srv(10, 0, 5060, "zero.example.com")
    full = Srv(10, 100, 5060, "full.example.com")
    trials = 20_000
    draw = seeded(3263)
    zero_first = sum(order_srv([full, zero], draw)[0] == zero for _ in range(trials))
    # Only a draw of exactly 0 (1 in 101) lands on the zero-weight record at the head.
    assert 0.005 < zero_first / trials < 0.015


# --- from_srv -----------------------------------------------------------------------------------


def test_from_srv_keeps_order_and_ports_and_normalizes_names() -> None:
    ordered = [Srv(10, 5, 5070, "SIP1.Example.COM."), Srv(20, 0, 5080, "sip2.example.com")]
    assert from_srv("TCP", ordered) == [
        Destination("TCP", "sip1.example.com", 5070),
        Destination("TCP", "sip2.example.com", 5080),
    ]
    assert from_srv("TLS", ordered[1:]) == [Destination("TLS", "sip2.example.com", 5080)]
    assert from_srv("UDP", []) == []


# --- the pieces together ------------------------------------------------------------------------


def test_rfc3263_style_walk_from_uri_to_destinations() -> None:
    # The shape of RFC 3263's example: NAPTR prefers TLS, then TCP, then UDP. A client without
    # TLS ends up on TCP, with the SRV answer's own port and the lower priority first.
    naptrs = [
        naptr(50, 50, "SIPS+D2T", "_sips._tcp.example.com"),
        naptr(90, 50, "SIP+D2T", "_sip._tcp.example.com"),
        naptr(100, 50, "SIP+D2U", "_sip._udp.example.com"),
    ]
    srvs = {
        "_sip._tcp.example.com": [
            Srv(1, 0, 5070, "backup.example.com"),
            Srv(0, 0, 5060, "Server1.Example.COM."),
        ],
    }
    plan = plan_lookup("example.com", None, None)
    assert plan.naptr == "example.com"
    transport, name = after_naptr(naptrs)[0]
    assert (transport, name) == ("TCP", "_sip._tcp.example.com")
    dests = from_srv(transport, order_srv(srvs[name], lambda n: 0))
    assert dests == [
        Destination("TCP", "server1.example.com", 5060),
        Destination("TCP", "backup.example.com", 5070),
    ]
