"""Pure helpers: number normalization, digest HA1, field rules. No database."""

from __future__ import annotations

import hashlib

import pytest

from zvonar.core.errors import InvalidInput
from zvonar.directory import phone, rules
from zvonar.directory.phone import NumberKind


@pytest.mark.parametrize(
    ("raw", "region", "e164", "kind", "country", "place"),
    [
        ("8 (495) 123-45-67", "RU", "+74951234567", NumberKind.local, "RU", "Moscow"),
        ("+7 495 123 45 67", "RU", "+74951234567", NumberKind.local, "RU", "Moscow"),
        ("+7 495 123 45 67", "UA", "+74951234567", NumberKind.local, "RU", "Moscow"),
        ("8 812 123-45-67", "RU", "+78121234567", NumberKind.local, "RU", "St Petersburg"),
        ("8-800-555-35-35", "RU", "+78005553535", NumberKind.toll_free, "RU", None),
        ("8 916 123-45-67", "RU", "+79161234567", NumberKind.mobile, "RU", "Russia"),
        ("044 123 4567", "UA", "+380441234567", NumberKind.local, "UA", "Kyiv city"),
        ("+380 44 123 4567", "RU", "+380441234567", NumberKind.local, "UA", "Kyiv city"),
        ("+1 800 555 0100", "RU", "+18005550100", NumberKind.toll_free, "US", None),
    ],
)
def test_describe(
    raw: str, region: str, e164: str, kind: NumberKind, country: str, place: str | None
) -> None:
    info = phone.describe(raw, region)
    assert (info.e164, info.kind, info.country, info.region) == (e164, kind, country, place)
    assert phone.normalize(raw, region) == e164


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("", "RU"),
        ("hello", "RU"),
        ("8 (495) 123-45-67", "UA"),  # a Russian national number is not Ukrainian
        ("044 123 4567", "RU"),
        ("+7 495 123", "RU"),  # too short
        ("1" * 60, "RU"),
        ("495 123 45 67", None),  # national without a default region
    ],
)
def test_invalid_numbers(raw: str, region: str | None) -> None:
    with pytest.raises(InvalidInput) as err:
        phone.normalize(raw, region, field="mobile_numbers[0]")
    assert err.value.code == "invalid_phone_number"
    assert err.value.details["field"] == "mobile_numbers[0]"


def test_ha1_matches_rfc_7616_examples() -> None:
    """RFC 7616 §3.9.1 gives full responses for user Mufasa; recompute them from our HA1."""
    realm, nonce = "http-auth@example.org", "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
    cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
    for algorithm, hash_name, expected in [
        ("MD5", "md5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "sha256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ]:

        def h(s: str, name: str = hash_name) -> str:
            return hashlib.new(name, s.encode()).hexdigest()

        ha1 = phone.ha1("Mufasa", realm, "Circle of Life", algorithm)
        response = h(f"{ha1}:{nonce}:00000001:{cnonce}:auth:{h('GET:/dir/index.html')}")
        assert response == expected, algorithm
    with pytest.raises(ValueError):
        phone.ha1("a", "b", "c", "SHA-512-256")


def test_realm_and_generated_passwords() -> None:
    assert phone.sip_realm("alpha") == "alpha.zvonar"
    passwords = {phone.generate_password() for _ in range(50)}
    assert len(passwords) == 50
    assert all(len(p) == 20 and p.isalnum() for p in passwords)


def test_time_zone() -> None:
    assert rules.time_zone("Europe/Moscow") == "Europe/Moscow"
    assert rules.time_zone("UTC") == "UTC"
    for bad in ["Mars/Olympus", "localtime", "../etc/passwd", "europe/moscow", ""]:
        with pytest.raises(InvalidInput) as err:
            rules.time_zone(bad)
        assert err.value.code == "invalid_time_zone"


def test_host() -> None:
    assert rules.host("SIP.Example.COM.") == "sip.example.com"
    assert rules.host("192.0.2.10") == "192.0.2.10"
    assert rules.host("[2001:DB8::1]") == "2001:db8::1"
    for bad in ["-bad.example", "a..b", "exa mple.com", "x" * 64 + ".com", "bad_host.com"]:
        with pytest.raises(InvalidInput) as err:
            rules.host(bad)
        assert err.value.code == "invalid_host"


def test_networks() -> None:
    assert rules.networks(["192.0.2.1", "198.51.100.0/24", "192.0.2.1/32", "2001:db8::/32"]) == [
        "192.0.2.1/32",
        "198.51.100.0/24",
        "2001:db8::/32",
    ]
    for bad in ["10.0.0.1/24", "300.1.1.1", "example.com", "10.0.0.0/33"]:
        with pytest.raises(InvalidInput) as err:
            rules.networks(["10.0.0.0/8", bad])
        assert err.value.code == "invalid_ip_network"
        assert err.value.details["field"] == "allowed_sources[1]"


def test_email() -> None:
    assert rules.email(" Ann@Example.COM ") == "ann@example.com"
    with pytest.raises(InvalidInput) as err:
        rules.email("not-an-email")
    assert err.value.code == "invalid_email"
