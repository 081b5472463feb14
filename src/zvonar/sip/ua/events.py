"""Flows, application events and counters of the UA core (see zvonar.sip.ua)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from zvonar.sip.dialog import Dialog
from zvonar.sip.location import BindingEvent
from zvonar.sip.message import SipRequest, SipResponse
from zvonar.sip.outbound import OutboundRegistration, RegistrationEvent
from zvonar.sip.security import SecurityEvent
from zvonar.sip.transaction import TransactionKey

__all__ = [
    "AckReceived",
    "AckTimeout",
    "BindingNotice",
    "CancelRequested",
    "Flow",
    "IncomingRequest",
    "RegistrationUpdate",
    "RequestFailed",
    "ResponseIn",
    "SecurityNotice",
    "SessionExpired",
    "UaCounters",
    "UaEvent",
]

_RELIABLE = {"UDP": False, "TCP": True, "TLS": True, "WS": True, "WSS": True}


@dataclass(frozen=True, slots=True)
class Flow:
    """Where a message came from or goes to: transport plus the peer's address.

    Over TCP the address names the connection (its remote end), so a response sent to the
    request's Flow goes back over that connection (§18.2.2).
    """

    transport: str  # "UDP", "TCP"
    host: str  # bare IP literal (no brackets)
    port: int

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def reliable(self) -> bool:
        return _RELIABLE.get(self.transport, True)


# -- events for the application ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IncomingRequest:
    """A new request (not ACK/CANCEL) in its own server transaction: answer with `respond`."""

    request: SipRequest
    flow: Flow
    key: TransactionKey
    dialog: Dialog | None = None  # the dialog an in-dialog request belongs to (§12.2.2)


@dataclass(frozen=True, slots=True)
class AckReceived:
    """An ACK for a 2xx (§13.3.1.4, a transaction of its own, §17.2.3)."""

    request: SipRequest
    flow: Flow
    dialog: Dialog | None = None


@dataclass(frozen=True, slots=True)
class CancelRequested:
    """§9.2: a CANCEL matched a pending INVITE (the CANCEL got its 200); answer it 487."""

    key: TransactionKey  # of the INVITE server transaction
    invite: SipRequest
    cancel: SipRequest
    flow: Flow


@dataclass(frozen=True, slots=True)
class ResponseIn:
    """A response to one of our requests; `key` None: a stray (e.g. a 2xx retransmission)."""

    key: TransactionKey | None
    response: SipResponse
    request: SipRequest | None
    flow: Flow
    dialog: Dialog | None = None  # created / confirmed / updated by this response (§12.1.2)


@dataclass(frozen=True, slots=True)
class RequestFailed:
    """Our request got no response: 408 for a timeout (§17.1.1.2), 503 for the transport."""

    key: TransactionKey
    request: SipRequest
    status: int
    flow: Flow
    dialog: Dialog | None = None  # an in-dialog request's dialog (ended by it, §12.2.1.2)


@dataclass(frozen=True, slots=True)
class AckTimeout:
    """§13.3.1.4: our 2xx was never ACKed; the application should end the dialog."""

    response: SipResponse
    flow: Flow


@dataclass(frozen=True, slots=True)
class SessionExpired:
    """RFC 4028: the dialog's session timer ran out (no refresh from the peer, or ours
    failed with 408/481 or no answer); the application should send BYE and end the call."""

    dialog: Dialog
    flow: Flow
    interval: int


@dataclass(frozen=True, slots=True)
class RegistrationUpdate:
    registration: OutboundRegistration
    event: RegistrationEvent


@dataclass(frozen=True, slots=True)
class SecurityNotice:
    event: SecurityEvent


@dataclass(frozen=True, slots=True)
class BindingNotice:
    """The registrar's location service changed (added, refreshed, removed, expired)."""

    event: BindingEvent


UaEvent = (
    IncomingRequest
    | AckReceived
    | CancelRequested
    | ResponseIn
    | RequestFailed
    | AckTimeout
    | SessionExpired
    | RegistrationUpdate
    | SecurityNotice
    | BindingNotice
)


@dataclass(slots=True)
class UaCounters:
    """What the core did with its inputs (the transports count bytes and connections)."""

    requests_received: int = 0
    responses_received: int = 0
    keepalives: int = 0
    dropped_malformed: int = 0
    dropped_oversize: int = 0
    rejected_4xx: int = 0
    rejected_5xx: int = 0
    blocked: int = 0
    auth_challenges: int = 0
    auth_failures: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
