"""``answer_challenge`` (calls/in_dialog.py): a carrier's 401/407 to one of our INVITEs."""

from __future__ import annotations

from dataclasses import dataclass, field

from zvonar.calls.in_dialog import answer_challenge
from zvonar.calls.legs import AuthFlow, LegState
from zvonar.calls.plan import RingTarget
from zvonar.sip.auth_client import ClientCredentials
from zvonar.sip.message import SipRequest, SipResponse, make_response, parse_message
from zvonar.sip.transaction import TransactionKey
from zvonar.sip.ua import Flow

FLOW = Flow("UDP", "192.0.2.10", 5060)
INVITE = (
    b"INVITE sip:+73831234567@192.0.2.10 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKfirst1\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:+74951234567@pbx.example>;tag=ft1\r\n"
    b"To: <sip:+73831234567@192.0.2.10>\r\n"
    b"Call-ID: c1@pbx\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:192.0.2.1:5060>\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def _invite() -> SipRequest:
    msg = parse_message(INVITE)
    assert isinstance(msg, SipRequest)
    return msg


def _challenge(request: SipRequest, status: int, header: str) -> SipResponse:
    name = "Proxy-Authenticate" if status == 407 else "WWW-Authenticate"
    return make_response(request, status, to_tag="tt1", headers=((name, header),))


class _Ua:
    def __init__(self) -> None:
        self.sent: list[SipRequest] = []

    def send_request(self, request: SipRequest, flow: Flow, now: float) -> TransactionKey:
        self.sent.append(request)
        return TransactionKey(True, "INVITE", f"b{len(self.sent)}", "192.0.2.1:5060")


class _Host:
    def __init__(self) -> None:
        self.ua = _Ua()
        self.tracked: list[TransactionKey] = []

    def now(self) -> float:
        return 0.0

    def track_key(self, key: TransactionKey, actor: object) -> None:
        self.tracked.append(key)

    def flush(self) -> None:
        pass


@dataclass
class _Leg:
    target: RingTarget
    request: SipRequest | None = field(default_factory=_invite)
    invite_key: TransactionKey | None = None
    state: LegState = LegState.INVITING
    auth_flow: AuthFlow | None = None

    @property
    def flow(self) -> Flow:
        return self.target.flow


CREDS = ClientCredentials("acct-4411", "carrier-secret-7")
GOOD = 'Digest realm="carrier", nonce="n1", algorithm=MD5, qop="auth"'


def test_a_challenge_is_answered_once_then_a_second_one_ends_the_leg() -> None:
    host, leg = _Host(), _Leg(RingTarget("sip:+73831234567@192.0.2.10", FLOW, auth=CREDS))
    first = leg.request
    assert first is not None
    assert answer_challenge(host, None, leg, _challenge(first, 407, GOOD))  # type: ignore[arg-type]
    [retry] = host.ua.sent
    assert leg.request is retry and leg.invite_key == host.tracked[-1]
    assert retry.cseq.seq == 2 and retry.call_id == first.call_id
    assert retry.from_.tag == first.from_.tag and retry.top_via.branch != first.top_via.branch
    auth = retry.header("Proxy-Authorization") or ""
    assert auth.startswith("Digest ") and 'username="acct-4411"' in auth
    # The same realm again without stale=true: the credentials were refused.
    again = 'Digest realm="carrier", nonce="n2", algorithm=MD5, qop="auth"'
    assert not answer_challenge(host, None, leg, _challenge(retry, 407, again))  # type: ignore[arg-type]
    assert len(host.ua.sent) == 1 and leg.auth_flow is None


def test_nothing_to_answer_with_or_nothing_to_read_ends_only_the_leg() -> None:
    bare = _Leg(RingTarget("sip:101@192.0.2.10", FLOW))  # an employee's phone: no credentials
    host = _Host()
    assert bare.request is not None
    assert not answer_challenge(host, None, bare, _challenge(bare.request, 401, GOOD))  # type: ignore[arg-type]
    leg = _Leg(RingTarget("sip:+73831234567@192.0.2.10", FLOW, auth=CREDS))
    assert leg.request is not None
    for garbage in ('Digest realm="unterminated', "Basic realm=x", "", "Digest"):
        assert not answer_challenge(host, None, leg, _challenge(leg.request, 401, garbage))  # type: ignore[arg-type]
    ended = _Leg(RingTarget("sip:+73831234567@192.0.2.10", FLOW, auth=CREDS), state=LegState.ENDED)
    assert ended.request is not None
    assert not answer_challenge(host, None, ended, _challenge(ended.request, 401, GOOD))  # type: ignore[arg-type]
    ok = _Leg(RingTarget("sip:+73831234567@192.0.2.10", FLOW, auth=CREDS))
    assert ok.request is not None
    busy = make_response(ok.request, 486, to_tag="tt1")
    assert not answer_challenge(host, None, ok, busy)  # type: ignore[arg-type]
    assert host.ua.sent == []
