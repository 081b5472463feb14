"""Building the SIP messages of a B2BUA leg (pure functions over the message model)."""

from __future__ import annotations

from zvonar.sip.message import SipRequest, SipResponse, make_response
from zvonar.sip.uri import SipUri, parse_uri

__all__ = ["SDP", "invite_request", "response_to", "uri_user"]

SDP = "application/sdp"


def uri_user(value: object) -> str:
    """The user part of a SIP URI ("" for none or another scheme)."""
    return (value.user or "") if isinstance(value, SipUri) else ""


def response_to(
    request: SipRequest,
    status: int,
    to_tag: str,
    *,
    contact: str | None = None,
    body: bytes = b"",
    reason: str | None = None,
) -> SipResponse:
    """A response carrying our To tag, our Contact (1xx-2xx to an INVITE, §12.1.1) and SDP."""
    headers: tuple[tuple[str, str], ...] = ()
    if contact is not None and 100 < status < 300:
        headers = (("Contact", f"<{contact}>"),)
    response = make_response(request, status, reason, to_tag=to_tag, headers=headers)
    if body:
        response = response.with_body(body, SDP)
    return response


def invite_request(
    *,
    target: str,
    caller: SipRequest,
    local_tag: str,
    call_id: str,
    via: str,
    contact: str,
    user_agent: str,
    sdp: bytes,
) -> SipRequest:
    """A new INVITE towards ``target`` on behalf of ``caller``'s INVITE: a new dialog (our
    Call-ID and From tag, §8.1.1), the caller's identity kept in From (§8.1.1.3)."""
    uri = parse_uri(target)
    from_ = caller.from_.with_tag(local_tag)
    headers = (
        ("Via", via),
        ("Max-Forwards", "70"),
        ("From", str(from_)),
        ("To", f"<{uri}>"),
        ("Call-ID", call_id),
        ("CSeq", "1 INVITE"),
        ("Contact", f"<{contact}>"),
        ("User-Agent", user_agent),
        ("Content-Type", SDP),
    )
    return SipRequest("INVITE", uri, headers, sdp)
