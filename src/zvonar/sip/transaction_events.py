"""What the transaction layer (transaction.py) and its TU speak: transaction keys, branches
and the events the layer hands the TU (RFC 3261 §17)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from zvonar.sip.message import SipRequest, SipResponse
from zvonar.sip.transaction_base import Address

__all__ = [
    "MAGIC_COOKIE",
    "AckFor2xx",
    "AckTimeout",
    "CancelReceived",
    "RequestReceived",
    "ResponseReceived",
    "TransactionEvent",
    "TransactionKey",
    "TransactionTerminated",
    "TransactionTimeout",
    "TransportError",
    "default_token",
    "new_branch",
]

MAGIC_COOKIE = "z9hG4bK"  # §8.1.1.7: marks a branch unique per RFC 3261


def default_token() -> str:
    return secrets.token_hex(8)


def new_branch(token: Callable[[], str] = default_token) -> str:
    """A fresh RFC 3261 branch: the magic cookie plus a random token (§8.1.1.7)."""
    return MAGIC_COOKIE + token()


@dataclass(frozen=True, slots=True)
class TransactionKey:
    """Identity of one transaction.

    Client: the branch we generated and the method (§17.1.3; CANCEL and INVITE share a
    branch). Server: branch + sent-by + method (§17.2.3); for RFC 2543 peers (no magic
    cookie) branch is "" and `legacy` holds (Call-ID, From tag, CSeq number), `sent_by` the
    whole top Via; the Request-URI and To tag are checked on the matched transaction.
    """

    server: bool
    method: str
    branch: str
    sent_by: str = ""
    legacy: tuple[str, ...] = ()


# -- events for the TU ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A request created a new server transaction; answer it with send_response."""

    key: TransactionKey
    request: SipRequest
    source: Address
    reliable: bool


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """A response for the TU. `key` is None for a response matching no transaction (§18.1.2),
    e.g. a 2xx retransmission after the INVITE transaction ended: the TU re-ACKs it."""

    key: TransactionKey | None
    response: SipResponse
    request: SipRequest | None


@dataclass(frozen=True, slots=True)
class TransactionTimeout:
    """Timer B/F/H (or the §9.1 CANCEL guard) fired: treat as 408 (client) or lost ACK."""

    key: TransactionKey
    request: SipRequest


@dataclass(frozen=True, slots=True)
class TransportError:
    """The transport reported a failure (§17.1.4, §17.2.4); a client treats it as 503."""

    key: TransactionKey
    request: SipRequest
    status_hint: int = 503


@dataclass(frozen=True, slots=True)
class TransactionTerminated:
    key: TransactionKey


@dataclass(frozen=True, slots=True)
class AckFor2xx:
    """An ACK for a 2xx (new branch, no transaction, §17.2.3): the dialog takes it."""

    request: SipRequest
    source: Address


@dataclass(frozen=True, slots=True)
class AckTimeout:
    """§13.3.1.4: no ACK for our 2xx within 64*T1; the TU should end the dialog (BYE)."""

    key: TransactionKey
    response: SipResponse


@dataclass(frozen=True, slots=True)
class CancelReceived:
    """§9.2: a CANCEL matched a pending INVITE; it got its 200, now answer the INVITE 487."""

    key: TransactionKey  # of the INVITE server transaction
    request: SipRequest  # the INVITE
    cancel: SipRequest


TransactionEvent: TypeAlias = (
    RequestReceived
    | ResponseReceived
    | TransactionTimeout
    | TransportError
    | TransactionTerminated
    | AckFor2xx
    | AckTimeout
    | CancelReceived
)
