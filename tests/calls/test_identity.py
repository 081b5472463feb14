"""Who is calling: From, or a trusted trunk's asserted identity (RFC 3325, Remote-Party-ID),
with the caller's privacy kept (RFC 3323)."""

from __future__ import annotations

import pytest

from zvonar.calls.identity import CallerIdentity, caller_identity
from zvonar.sip.message import SipRequest, parse_message


def invite(from_: str, *extra: str) -> SipRequest:
    headers = "".join(f"{h}\r\n" for h in extra)
    data = (
        "INVITE sip:+74951234567@pbx.example SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK1\r\n"
        f"From: {from_};tag=1\r\nTo: <sip:+74951234567@pbx.example>\r\n"
        "Call-ID: c1@192.0.2.10\r\nCSeq: 1 INVITE\r\nContact: <sip:gw@192.0.2.10>\r\n"
        f"Max-Forwards: 70\r\n{headers}Content-Length: 0\r\n\r\n"
    ).encode()
    msg = parse_message(data)
    assert isinstance(msg, SipRequest)
    return msg


ANON = '"Anonymous" <sip:anonymous@anonymous.invalid>'
PAI = "P-Asserted-Identity: <sip:+79161234567@carrier.example;user=phone>"


def test_from_alone() -> None:
    who = caller_identity(invite('"Ivan" <sip:+79161112233@carrier.example>'), trusted=True)
    assert who == CallerIdentity("+79161112233", "Ivan", "sip:+79161112233@carrier.example")


def test_a_trusted_trunks_assertion_wins_over_from() -> None:
    who = caller_identity(invite(ANON, PAI), trusted=True)
    assert who.user == "+79161234567" and who.display == "Anonymous"
    assert who.uri == "sip:+79161234567@carrier.example;user=phone"  # what "call back" dials


def test_a_strangers_assertion_is_ignored() -> None:
    who = caller_identity(invite("<sip:+79160000000@evil.example>", PAI), trusted=False)
    assert who.user == "+79160000000"


def test_a_tel_assertion_and_a_display_of_its_own() -> None:
    request = invite(
        "<sip:4951112233@carrier.example>", 'P-Asserted-Identity: "Ivan" <tel:+79161234567>'
    )
    who = caller_identity(request, trusted=True)
    assert who == CallerIdentity("+79161234567", "Ivan", "sip:+79161234567@carrier.example")


def test_the_first_usable_of_several_assertions() -> None:
    request = invite(
        ANON,
        "P-Asserted-Identity: <sip:anonymous@anonymous.invalid>, <tel:+79161234567>",
    )
    assert caller_identity(request, trusted=True).user == "+79161234567"


@pytest.mark.parametrize("privacy", ["Privacy: id", "Privacy: header;id", "Privacy: ID ; critical"])
def test_a_withheld_number_stays_withheld(privacy: str) -> None:
    who = caller_identity(invite(ANON, PAI, privacy), trusted=True)
    assert who.user == "anonymous" and who.uri == "sip:anonymous@anonymous.invalid"


@pytest.mark.parametrize(
    ("rpid", "user"),
    [
        (
            "Remote-Party-ID: <sip:+79161234567@gw>;party=calling;privacy=off;screen=yes",
            "+79161234567",
        ),
        ("Remote-Party-ID: <sip:+79161234567@gw>", "+79161234567"),
        ("Remote-Party-ID: <sip:+79161234567@gw>;party=calling;privacy=full", "anonymous"),
        ("Remote-Party-ID: <sip:+74951234567@gw>;party=called", "anonymous"),
    ],
)
def test_remote_party_id(rpid: str, user: str) -> None:
    assert caller_identity(invite(ANON, rpid), trusted=True).user == user


def test_a_malformed_assertion_is_no_assertion() -> None:
    request = invite("<sip:+79161112233@carrier.example>", "P-Asserted-Identity: <<broken")
    assert caller_identity(request, trusted=True).user == "+79161112233"


@pytest.mark.parametrize(
    ("from_", "user"),
    [
        ("<tel:+73832223344>", "+73832223344"),
        ('"Завод" <tel:+7-383-222-33-44>', "+7-383-222-33-44"),
    ],
)
def test_a_tel_from_names_the_caller(from_: str, user: str) -> None:
    """A gateway speaking tel: (RFC 3966) in From: the number is the caller, as a tel: PAI's
    is; the URI the forks show is a SIP one at our host."""
    who = caller_identity(invite(from_), trusted=False)
    assert who.user == user
    assert who.uri == f"sip:{user}@pbx.example"
