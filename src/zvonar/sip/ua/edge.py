"""What the UA core checks and answers at the edge, before any transaction (RFC 3261 §8.2,
§18.2.2): whether a request is one we take at all, the reason phrase of a stateless refusal,
and where a response to a request goes. Pure functions; the UA counts and sends."""

from __future__ import annotations

import re

from zvonar.sip.body import ACCEPT, readable_session_body
from zvonar.sip.errors import SipError
from zvonar.sip.message import Drop, ParsedOk, Reject, SipRequest
from zvonar.sip.transaction import response_address
from zvonar.sip.ua.events import Flow
from zvonar.sip.uri import SipUri

__all__ = ["Headers", "oversize_request", "reason_text", "refusal", "response_dest"]

Headers = tuple[tuple[str, str], ...]
_SESSION_METHODS = frozenset({"INVITE", "UPDATE"})
_CTL = re.compile(r"[^\x20-\x7e]")


def reason_text(prefix: str, detail: str) -> str:
    """A reason phrase carrying why we refused (§21: the phrase is free text), one safe line."""
    detail = _CTL.sub("?", detail)[:96]
    return f"{prefix} ({detail})" if detail else prefix


def refusal(
    request: SipRequest, allow: frozenset[str], allow_header: str, supported: frozenset[str]
) -> tuple[int, str, Headers] | None:
    """UAS request checks of §8.2.1 (method), §8.2.2.1 (URI scheme), §8.2.2.3 (Require) and,
    for the methods whose body is a session description, §8.2.3 (Content-Type)."""
    if request.method not in allow:
        return 405, "Method Not Allowed", (("Allow", allow_header),)
    if not isinstance(request.uri, SipUri):
        return 416, "Unsupported URI Scheme", ()
    required = request.header_values("Require")
    if required:
        unknown = [r for r in required if r.lower() not in supported]
        if unknown:
            return 420, "Bad Extension", (("Unsupported", ", ".join(unknown)),)
    if request.method in _SESSION_METHODS and not readable_session_body(request):
        return 415, "Unsupported Media Type", (("Accept", ACCEPT),)
    return None


def response_dest(request: SipRequest, flow: Flow) -> Flow:
    """Where a stateless response goes: the flow itself when reliable, else the top Via's
    received/rport address (§18.2.2, RFC 3581)."""
    if flow.reliable:
        return flow
    try:
        via = request.top_via
    except SipError:
        return flow
    host, port = response_address(via.with_params(received=flow.host), flow.address, False)
    return Flow(flow.transport, host, port)


def oversize_request(verdict: ParsedOk | Reject | Drop) -> SipRequest | None:
    """The request to answer 513 for a message too large for us (§18.1.1, §21.5.14): the
    truncated copy still holds the start line and most headers. None: drop it (a response,
    an ACK, or nothing readable)."""
    request: SipRequest | None = None
    if isinstance(verdict, Reject):
        request = verdict.request
    elif isinstance(verdict, ParsedOk) and isinstance(verdict.message, SipRequest):
        request = verdict.message
    if request is None or request.method == "ACK":
        return None
    return request
