"""HMAC-SHA256 request signatures for calls we make to customers' URLs.

Header: ``X-Zvonar-Signature: t=<unix seconds>,v1=<hex>`` where ``v1`` is
HMAC-SHA256(secret, "<t>.<body>"). Signing the timestamp with the body lets the receiver refuse
replays older than a tolerance. Pure: ``now`` is passed in.

Receiver recipe (for customers' docs): split the header on ",", read ``t`` and every ``v1``;
recompute HMAC-SHA256 over ``t + "." + raw_body`` with the shared secret; compare in constant time;
refuse when ``|now - t|`` exceeds five minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid

SIGNATURE_HEADER = "X-Zvonar-Signature"
DEFAULT_TOLERANCE = 300


def route_secret(master: str, account_id: uuid.UUID) -> str:
    """The key an account's HTTP route requests are signed with: derived from the instance's
    secret key, so nothing is stored and every process derives the same one; the account reads
    it from ``GET /api/v1/routing/http-route``. It changes only with the secret key."""
    return hmac.new(
        master.encode(), f"http-route:{account_id}".encode(), hashlib.sha256
    ).hexdigest()


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    msg = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str, now: int) -> str:
    """The header value for ``body`` sent at ``now`` (unix seconds)."""
    return f"t={now},v1={_mac(secret, now, body)}"


def verify(
    header: str, body: bytes, secret: str, now: int, *, tolerance: int = DEFAULT_TOLERANCE
) -> bool:
    """True if ``header`` signs ``body`` with ``secret`` and is at most ``tolerance`` s old."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or abs(now - timestamp) > tolerance:
        return False
    expected = _mac(secret, timestamp, body)
    # Several v1 values let a receiver accept both secrets during rotation.
    return any(hmac.compare_digest(expected.encode(), c.encode()) for c in candidates)
