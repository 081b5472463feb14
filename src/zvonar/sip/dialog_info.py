"""The dialog event package's body (RFC 4235 §4): ``application/dialog-info+xml``.

What a busy lamp field shows of an extension: its dialogs and each one's state. We always
send the full state (``state="full"``), so a subscriber never has to merge partial
documents; ``version`` counts the documents of one subscription from 0 (§4.1.1). An
extension with no dialog element is idle. Pure functions.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

__all__ = ["DIALOG_INFO", "DialogDirection", "DialogState", "ExtensionDialog", "dialog_info"]

DIALOG_INFO = "application/dialog-info+xml"
_NS = "urn:ietf:params:xml:ns:dialog-info"


class DialogState(enum.StrEnum):
    """§3.7.1's states we report: ringing (early) and talking (confirmed)."""

    early = "early"
    confirmed = "confirmed"


class DialogDirection(enum.StrEnum):
    initiator = "initiator"
    recipient = "recipient"


@dataclass(frozen=True, slots=True)
class ExtensionDialog:
    """One dialog of the watched extension: ``id`` unique within the document; ``remote``
    the other party's address (a caller's number, shown by phones that display it)."""

    id: str
    state: DialogState
    direction: DialogDirection | None = None
    remote: str | None = None
    # The SIP dialog itself (§4.1.1): what a phone copies into Replaces (RFC 3891) to pick
    # the call up; from the watched phone's side: its tag is local, ours remote.
    call_id: str | None = None
    local_tag: str | None = None
    remote_tag: str | None = None


def dialog_info(entity: str, version: int, dialogs: Sequence[ExtensionDialog]) -> bytes:
    """The full-state document for ``entity`` (the watched extension's address)."""
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        f'<dialog-info xmlns="{_NS}" version="{version}" state="full"',
        f" entity={quoteattr(entity)}>\n",
    ]
    for d in dialogs:
        attrs = [f"id={quoteattr(d.id)}"]
        for name, value in (
            ("call-id", d.call_id),
            ("local-tag", d.local_tag),
            ("remote-tag", d.remote_tag),
            ("direction", d.direction.value if d.direction else None),
        ):
            if value:
                attrs.append(f"{name}={quoteattr(value)}")
        parts.append(f"  <dialog {' '.join(attrs)}>\n")
        parts.append(f"    <state>{d.state.value}</state>\n")
        if d.remote:
            parts.append(f"    <remote><identity>{escape(d.remote)}</identity></remote>\n")
        parts.append("  </dialog>\n")
    parts.append("</dialog-info>\n")
    return "".join(parts).encode()
