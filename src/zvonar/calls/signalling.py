"""Building the SIP messages of a B2BUA leg (pure functions over the message model)."""

from __future__ import annotations

import re

from zvonar.sip.body import SDP
from zvonar.sip.message import SipRequest, SipResponse, make_response
from zvonar.sip.uri import SipUri, parse_uri, unescape

__all__ = ["invite_request", "response_to", "uri_user"]

_SAFE_USER = re.compile(r"\+?[0-9A-Za-z._-]{1,64}")
# RFC 3323 §4.1.1.3: the anonymous From of a caller who withholds their identity.
_ANONYMOUS = '"Anonymous" <sip:anonymous@anonymous.invalid>'


def _quoted(display: str) -> str:
    """A display name as a quoted-string (§25.1): quotes/backslashes escaped, no controls."""
    clean = "".join(ch for ch in display if ch >= " " and ch != "\x7f")[:64]
    return '"' + clean.replace("\\", "\\\\").replace('"', '\\"') + '"'


def uri_user(value: object) -> str:
    """The user part of a SIP URI ("" for none or another scheme), unescaped: "%2B7495…" is
    "+7495…" (RFC 3261 §19.1.2, §19.1.4), whoever escaped it. One that decodes to no
    printable text (a control byte, not UTF-8) is kept as it came: it names nothing we could
    match, and the journal and logs must not carry raw bytes."""
    user = value.user if isinstance(value, SipUri) else None
    if not user:
        return ""
    plain = unescape(user)
    return plain if plain.isprintable() else user


def response_to(
    request: SipRequest,
    status: int,
    to_tag: str,
    *,
    contact: str | None = None,
    body: bytes = b"",
    reason: str | None = None,
    allow: str | None = None,
) -> SipResponse:
    """A response carrying our To tag, our Contact (1xx-2xx to an INVITE, §12.1.1) and SDP;
    a 2xx also says what we ``allow`` in the dialog (§20.5: UPDATE, INFO, REFER…)."""
    headers: tuple[tuple[str, str], ...] = ()
    if contact is not None and 100 < status < 300:
        headers = (("Contact", f"<{contact}>"),)
    if allow is not None and 200 <= status < 300:
        headers = (*headers, ("Allow", allow))
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
    from_user: str | None = None,
    from_display: str | None = None,
    diversion: str | None = None,
    allow: str | None = None,
    carrier_user: str | None = None,
    withhold: bool = False,
    auto_answer: bool = False,
) -> SipRequest:
    """A new INVITE towards ``target`` on behalf of ``caller``'s INVITE: a new dialog (our
    Call-ID and From tag, §8.1.1), the caller's identity kept in From (§8.1.1.3) unless
    ``from_user`` overrides it (an outbound caller ID: then also P-Asserted-Identity, RFC 3325
    §9.1, which carriers trust over From from a trunk peer). ``from_display`` alone renames
    the caller: their address stays, the display name is ours (the line's label).
    ``diversion``: the account's number that forwards the call (RFC 5806).
    ``carrier_user``: the From user the carrier requires (its account login, Trunk.from_user):
    From names it, and who calls goes in P-Asserted-Identity only.
    ``withhold``: the caller withheld their number (RFC 3323): From is anonymous (or the
    carrier's login), ``Privacy: id``, and P-Asserted-Identity still names them for the
    carrier (RFC 3325 §9.3).
    ``auto_answer``: an intercom call, answered by the phone itself at once (``Call-Info``
    with ``answer-after=0``, the phones' convention, and ``Answer-Mode: Auto``, RFC 5373)."""
    uri = parse_uri(target)
    host = uri.host if isinstance(uri, SipUri) else "invalid"
    asserted: tuple[tuple[str, str], ...] = ()
    if carrier_user is not None:
        if not _SAFE_USER.fullmatch(carrier_user):
            raise ValueError(f"unusable From user {carrier_user!r}")
        who: str | None
        shown: str | None
        if from_user is not None:  # our caller ID: the display is ours or none
            who, shown = from_user, from_display
        else:  # the caller's identity, as we show it
            who = uri_user(caller.from_.uri) or None
            shown = from_display or caller.from_.display_name
        display = _quoted(shown) + " " if shown else ""
        from_ = f"{display}<sip:{carrier_user}@{host}>;tag={local_tag}"
        if who is not None and _SAFE_USER.fullmatch(who):
            asserted = (("P-Asserted-Identity", f"{display}<sip:{who}@{host}>"),)
    elif from_user is None and from_display:  # the caller's address, shown as we name it
        from_ = f"{_quoted(from_display)} <{caller.from_.uri}>;tag={local_tag}"
    elif from_user is None:
        from_ = str(caller.from_.with_tag(local_tag))
    else:
        if not _SAFE_USER.fullmatch(from_user):
            raise ValueError(f"unusable From user {from_user!r}")
        identity = f"<sip:{from_user}@{host}>"
        display = _quoted(from_display) + " " if from_display else ""
        from_ = f"{display}{identity};tag={local_tag}"
        asserted = (("P-Asserted-Identity", f"{display}{identity}"),)
    if withhold:
        if carrier_user is None:
            from_ = f"{_ANONYMOUS};tag={local_tag}"
        asserted += (("Privacy", "id"),)
    if diversion is not None:
        if not _SAFE_USER.fullmatch(diversion):
            raise ValueError(f"unusable diverting number {diversion!r}")
        # RFC 5806: who forwarded the call, and why (a forwarding scheme: unconditional).
        asserted += (("Diversion", f"<sip:{diversion}@{host}>;reason=unconditional;counter=1"),)
    if auto_answer:
        asserted += (("Call-Info", f"<sip:{host}>;answer-after=0"), ("Answer-Mode", "Auto"))
    headers = (
        ("Via", via),
        ("Max-Forwards", "70"),
        ("From", from_),
        *asserted,
        ("To", f"<{uri}>"),
        ("Call-ID", call_id),
        ("CSeq", "1 INVITE"),
        ("Contact", f"<{contact}>"),
        # The UA PRACKs reliable 18x and keeps session timers (sip/ua/reliable.py,
        # sip/ua/session_timer.py): a carrier may ask for either.
        ("Supported", "100rel, timer"),
        *((("Allow", allow),) if allow else ()),  # §13.2.1: what the peer may send us
        ("User-Agent", user_agent),
        ("Content-Type", SDP),
    )
    return SipRequest("INVITE", uri, headers, sdp)
