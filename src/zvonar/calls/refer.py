"""What every transfer says in SIP and to the journal: the REFER's answer, the NOTIFYs of its
implicit subscription (RFC 3515 §2.4.4-2.4.5, message/sipfrag bodies) and CallTransferred.
Shared by the blind (transfer.py) and attended (attended.py) transfers."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from zvonar.calls.events import CallTransferred, Target, TransferKind
from zvonar.calls.signalling import response_to
from zvonar.sip.dialog import Dialog
from zvonar.sip.ua import Flow, IncomingRequest

if TYPE_CHECKING:
    from zvonar.calls.call import Call

__all__ = ["SIPFRAG", "notify", "publish_transfer", "reply"]

log = logging.getLogger(__name__)

SIPFRAG = "message/sipfrag;version=2.0"


def reply(call: Call, inc: IncomingRequest, dialog: Dialog, status: int) -> None:
    """Answer the REFER (202 when it is taken, 4xx when refused)."""
    resp = response_to(inc.request, status, dialog.id.local_tag)
    call.host.ua.respond(inc, resp, call.host.now())
    call.host.flush()


def notify(call: Call, where: tuple[Dialog, Flow] | None, status: int, reason: str) -> None:
    """One NOTIFY in the REFER's dialog: the transfer's progress as a status line; a final
    status (2xx and up) terminates the subscription."""
    if where is None:
        return
    dialog, flow = where
    ua = call.host.ua
    state = "active;expires=60" if status < 200 else "terminated;reason=noresource"
    request = ua.create_request(
        dialog,
        "NOTIFY",
        flow,
        headers=(("Event", "refer"), ("Subscription-State", state)),
        body=f"SIP/2.0 {status} {reason}\r\n".encode(),
        content_type=SIPFRAG,
    )
    ua.send_request(request, flow, call.host.now())
    call.host.flush()


async def publish_transfer(call: Call, from_leg_id: str, to: Target, kind: TransferKind) -> None:
    if call.account_id is None:
        return
    event = CallTransferred(  # built here: its ``kind`` field clashes with Call.publish()
        account_id=call.account_id,
        call_id=call.call_id,
        from_leg_id=from_leg_id,
        to=to,
        kind=kind,
        at=call.now(),
    )
    try:
        await call.host.bus.publish(event)
    except Exception:
        log.exception("call %s: cannot publish CallTransferred", call.call_id)
