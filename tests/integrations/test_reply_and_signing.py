"""Reply parsing, signatures and the SSRF address rules, without the network."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime

import pytest

from zvonar.integrations.http_route import (
    BadReply,
    CallFacts,
    RouteDecision,
    TargetKind,
    build_route_request,
    parse_route_reply,
)
from zvonar.integrations.signing import SIGNATURE_HEADER, sign, verify
from zvonar.integrations.ssrf import UnsafeTarget, check_url, refusal

UID = "0b7e4c9a-3f0e-4a53-9d1b-2c6f3f1f6a10"


@pytest.mark.parametrize(
    ("reply", "decision"),
    [
        (f'{{"scheme": "{UID}"}}', RouteDecision(TargetKind.scheme, UID)),
        (f'{{"group": "{UID.upper()}"}}', RouteDecision(TargetKind.group, UID)),
        ('{"employee": "101"}', RouteDecision(TargetKind.employee, "101")),
        (f'{{"employee": "{UID}"}}', RouteDecision(TargetKind.employee, UID)),
        ('{"number": "+7 916 123-45-67"}', RouteDecision(TargetKind.number, "+79161234567")),
        ('{"action": "voicemail"}', RouteDecision(TargetKind.action, "voicemail")),
        ('{"action": "hangup"}', RouteDecision(TargetKind.action, "hangup")),
    ],
)
def test_valid_replies(reply: str, decision: RouteDecision) -> None:
    assert parse_route_reply(reply.encode()) == decision


@pytest.mark.parametrize(
    "reply",
    [
        b"",
        b"null",
        b"[]",
        b"{}",
        b'{"action": "transfer"}',
        b'{"group": "sales"}',
        b'{"employee": "1"}',
        b'{"number": "89161234567"}',
        b'{"number": "+7000"}',
        b'{"action": "hangup", "group": "' + UID.encode() + b'"}',
        b'{"action": null}',
        b'{"grup": "x"}',
        b"\xff\xfe",
    ],
)
def test_anything_else_is_a_bad_reply(reply: bytes) -> None:
    with pytest.raises(BadReply):
        parse_route_reply(reply)


def test_signature_round_trip_tolerance_and_rotation() -> None:
    body = b'{"call_id":"x"}'
    header = sign(body, "k1", 1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    assert verify(header, body, "k1", 1_700_000_100)
    assert not verify(header, body + b" ", "k1", 1_700_000_100)
    assert not verify(header, body, "k1", 1_700_000_000 + 301)
    assert not verify("v1=abc", body, "k1", 1_700_000_000)
    rotated = header + "," + sign(body, "k2", 1_700_000_000).split(",")[1]
    assert verify(rotated, body, "k2", 1_700_000_000)


def test_build_route_request_signs_the_exact_body() -> None:
    facts = CallFacts("c", None, "+74951112233", None, datetime(2025, 1, 1, tzinfo=UTC))
    body, headers = build_route_request(facts, "k", 1_700_000_000)
    assert verify(headers[SIGNATURE_HEADER], body, "k", 1_700_000_000)
    assert b'"caller":null' in body and b"tracking" not in body


@pytest.mark.parametrize(
    ("addr", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("172.16.5.5", "private"),
        ("169.254.169.254", "link_local"),
        ("fe80::1", "link_local"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("100.64.0.1", "cgnat"),
        ("fd00::1", "private"),
        ("::ffff:127.0.0.1", "ipv4_mapped"),
        ("2002:7f00:1::1", "tunnel_address"),
        ("240.0.0.1", "private"),
        ("198.18.0.1", "private"),
        ("8.8.8.8", None),
        ("2001:4860:4860::8888", None),
    ],
)
def test_address_rules(addr: str, reason: str | None) -> None:
    assert refusal(ipaddress.ip_address(addr)) == reason


async def test_check_url_rules() -> None:
    async def mixed(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.0.0.5"]

    for bad in ("ftp://x.example/", "http:///nohost", "http://u:p@x.example/", "http://x:99999/"):
        with pytest.raises(UnsafeTarget) as info:
            await check_url(bad)
        assert info.value.reason == "invalid_url"
    with pytest.raises(UnsafeTarget) as info:
        await check_url("https://rebind.example/hook", resolver=mixed)
    assert info.value.reason == "private"
    target = await check_url("https://[2001:4860:4860::8888]:8443/r?a=1")
    assert target.pinned_url == "https://[2001:4860:4860::8888]:8443/r?a=1"
    assert target.host_header == "[2001:4860:4860::8888]:8443"
