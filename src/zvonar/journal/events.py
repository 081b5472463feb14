"""Events of the journal itself (the calls' own events are ``zvonar.calls.events``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from zvonar.calls.events import Direction, Disposition
from zvonar.core.events import Event


@dataclass(frozen=True, kw_only=True)
class CallRecovered(Event):
    """Recovery closed a call a dead process left open (journal/recovery.py): its ``CallEnded``
    never came, so this carries what its consumers need instead (the missed-call mail: a
    customer left waiting when the server died still gets called back). Published on the
    recovering process's bus only, never through the outbox: every process would act on it."""

    call_id: str
    direction: Direction
    caller: str
    dialed: str
    dialed_label: str | None
    started_at: datetime
    disposition: Disposition
    caller_contact_id: uuid.UUID | None = None
