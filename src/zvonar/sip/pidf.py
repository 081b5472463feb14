"""The presence event package's body (RFC 3856 §6, PIDF RFC 3863 with the RPID activities of
RFC 4480): ``application/pidf+xml``.

What a softphone's buddy list shows of a colleague: reachable or not (``basic`` open/closed,
RFC 3863 §4.1.4: open when a phone of theirs is registered) and, while they are on a call,
the ``on-the-phone`` activity (RFC 4480 §3.2), which softphones show as busy; in do not disturb,
the ``busy`` activity with a note saying so (RFC 4479 §3.2). Pure functions.
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

__all__ = ["PIDF", "pidf"]

PIDF = "application/pidf+xml"


def pidf(entity: str, *, reachable: bool, on_the_phone: bool, dnd: bool = False) -> bytes:
    """The presence document of ``entity`` (the watched extension's address)."""
    basic = "open" if reachable else "closed"
    activity = "<rpid:on-the-phone/>" if on_the_phone else ""
    note = ""
    if dnd:
        activity += "<rpid:busy/>"
        note = "<dm:note>Do not disturb</dm:note>"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<presence xmlns="urn:ietf:params:xml:ns:pidf"'
        ' xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"'
        ' xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid"'
        f" entity={quoteattr(entity)}>\n"
        f'  <tuple id="t1"><status><basic>{basic}</basic></status></tuple>\n'
        f'  <dm:person id="p1"><rpid:activities>{activity}</rpid:activities>{note}</dm:person>\n'
        "</presence>\n"
    ).encode()
