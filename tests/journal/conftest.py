"""Journal fixtures: the container's journal service, an API client, and call scripts."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from zvonar.app import create_app
from zvonar.calls.events import (
    CallAnswered,
    CallEnded,
    CallEvent,
    CallRinging,
    CallStarted,
    Direction,
    Disposition,
    HangupSide,
    LegEnded,
    LegEndReason,
    Target,
    TargetKind,
)
from zvonar.container import Container
from zvonar.core.bus import EventBus
from zvonar.journal.service import JournalService

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
async def journal(container: Container) -> AsyncIterator[JournalService]:
    yield container.journal  # create_container attached it to the bus
    await container.journal.aclose()  # as the app's shutdown does, before db.dispose()


@pytest.fixture
async def api(container: Container, journal: JournalService) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(container)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@dataclass
class CallScript:
    """Builds the events of one call, with times as offsets (seconds) from ``start``."""

    account_id: uuid.UUID
    call_id: str = field(default_factory=lambda: f"call-{uuid.uuid4().hex[:12]}")
    start: datetime = T0
    caller: str = "+74951112233"
    dialed: str = "+74950000001"
    label: str | None = "Sales"
    direction: Direction = Direction.inbound
    contact_id: uuid.UUID | None = None

    def at(self, seconds: float) -> datetime:
        return self.start + timedelta(seconds=seconds)

    def started(self) -> CallStarted:
        return CallStarted(
            account_id=self.account_id,
            call_id=self.call_id,
            direction=self.direction,
            caller=self.caller,
            dialed=self.dialed,
            number_label=self.label,
            started_at=self.start,
            tracking={"utm_source": "yandex"},
            caller_contact_id=self.contact_id,
        )

    def ringing(self, leg: str, t: float, employee: uuid.UUID | None = None) -> CallRinging:
        target = Target(TargetKind.employee, f"Employee {leg}", employee)
        return CallRinging(
            account_id=self.account_id,
            call_id=self.call_id,
            leg_id=leg,
            target=target,
            at=self.at(t),
        )

    def answered(self, leg: str, t: float, by: uuid.UUID | None = None) -> CallAnswered:
        return CallAnswered(
            account_id=self.account_id, call_id=self.call_id, leg_id=leg, at=self.at(t), by=by
        )

    def leg_ended(self, leg: str, t: float, reason: LegEndReason, **quality: Any) -> LegEnded:
        """``quality``: the audio figures (loss, mos, srtp, peer_loss...)."""
        return LegEnded(
            account_id=self.account_id,
            call_id=self.call_id,
            leg_id=leg,
            reason=reason,
            at=self.at(t),
            **quality,
        )

    def ended(
        self,
        t: float,
        disposition: Disposition,
        hangup: HangupSide = HangupSide.caller,
        path: tuple[str, ...] = ("working hours", "ring sales"),
        **quality: Any,
    ) -> CallEnded:
        return CallEnded(
            account_id=self.account_id,
            call_id=self.call_id,
            disposition=disposition,
            ended_at=self.at(t),
            hangup=hangup,
            scheme_path=path,
            **quality,
        )


async def publish(bus: EventBus, *events: CallEvent) -> None:
    for ev in events:
        await bus.publish(ev)
