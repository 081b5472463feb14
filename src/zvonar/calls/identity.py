"""Who is calling, as a new INVITE says it.

The From header is whatever the sender wrote. A carrier inside the trust domain (a trunk we
trust by its source address) asserts the caller's identity in ``P-Asserted-Identity``
(RFC 3325 §9.1) or, in older networks, ``Remote-Party-ID`` (draft-ietf-sip-privacy-04), and
may put something else in From: ``anonymous``, its own trunk number, the number that
forwarded the call. Caller rules, the journal, the caller card and the phones' "call back"
all want the asserted one, so from a trusted trunk it wins over From. From anyone else it is
ignored: a stranger could assert any number. A trunk is trusted for its own account's numbers
only (``CallerAuth.vouches``): the B2BUA keeps the assertion beside From's identity
(``InboundCall.asserted``); once whose number is called is known, ``InboundCall.for_account``
decides.

Privacy is kept: a caller who withheld their number (RFC 3323 ``Privacy: id`` over an
asserted identity, or ``privacy=full``/``uri`` on a Remote-Party-ID) is not taken from it;
what From says stands (the carrier anonymized it). Pure functions.
"""

from __future__ import annotations

import re

from zvonar.calls.plan import CallerIdentity, InboundCall
from zvonar.calls.signalling import uri_user
from zvonar.sip.errors import SipError
from zvonar.sip.headers import NameAddr, parse_name_addr_list
from zvonar.sip.message import SipRequest
from zvonar.sip.uri import SipUri, TelUri, parse_uri

__all__ = ["CallerIdentity", "asserted_identity", "caller_identity", "presenting"]

# What may stand as the user of a SIP URI we build from a tel: number (digits and visual
# separators, RFC 3966 §5.1.1); anything else is not used.
_TEL_NUMBER = re.compile(r"\+?[0-9().-]{1,40}")


def caller_identity(request: SipRequest, *, trusted: bool) -> CallerIdentity:
    """See the module docstring. ``trusted``: the INVITE comes from a trusted trunk."""
    from_ = request.from_
    if trusted:
        asserted = asserted_identity(request)
        if asserted is not None:
            return asserted
    if isinstance(from_.uri, TelUri):  # a gateway that speaks tel: (RFC 3966) in From too
        found = _identity(from_, from_.display_name, from_, host=_our_host(request))
        if found is not None:
            return found
    return CallerIdentity(uri_user(from_.uri), from_.display_name, str(from_.uri))


def _our_host(request: SipRequest) -> str:
    return request.uri.host if isinstance(request.uri, SipUri) else "invalid"


def asserted_identity(request: SipRequest) -> CallerIdentity | None:
    """The caller a trunk asserts (P-Asserted-Identity, else a calling Remote-Party-ID),
    unless withheld; None when it asserts none (From's identity stands)."""
    from_ = request.from_
    privacy = {p.strip().lower() for v in request.header_values("Privacy") for p in v.split(";")}
    if "id" not in privacy:
        for entry in _entries(request, "P-Asserted-Identity"):
            found = _identity(entry, entry.display_name or from_.display_name, from_)
            if found is not None:
                return found
    for entry in _entries(request, "Remote-Party-ID"):
        if (entry.param("party") or "calling").lower() != "calling":
            continue
        if (entry.param("privacy") or "off").lower() in ("full", "uri"):
            continue
        found = _identity(entry, entry.display_name or from_.display_name, from_)
        if found is not None:
            return found
    return None


def _entries(request: SipRequest, name: str) -> list[NameAddr]:
    out: list[NameAddr] = []
    for value in request.header_values(name):
        try:
            out.extend(parse_name_addr_list(value))
        except SipError:
            continue  # a malformed assertion is no assertion
    return out


def _identity(
    entry: NameAddr, display: str | None, from_: NameAddr, *, host: str | None = None
) -> CallerIdentity | None:
    uri = entry.uri
    if isinstance(uri, SipUri) and uri.user and uri.user.lower() != "anonymous":
        return CallerIdentity(uri.user, display, str(uri))
    if isinstance(uri, TelUri) and _TEL_NUMBER.fullmatch(uri.number):
        # A phone dials SIP: the number at the host the call came from.
        if host is None:
            host = from_.uri.host if isinstance(from_.uri, SipUri) else "invalid"
        return CallerIdentity(uri.number, display, f"sip:{uri.number}@{host}")
    return None


def presenting(invite: SipRequest, facts: InboundCall) -> SipRequest:
    """``invite`` with a From naming who calls as ``facts`` say (their asserted identity, when
    it is not From's): what the forks copy (signalling.invite_request)."""
    from_ = invite.from_
    if facts.from_uri == str(from_.uri):
        return invite
    who = NameAddr(facts.caller_display, parse_uri(facts.from_uri), from_.params)
    return invite.with_header("From", str(who))
