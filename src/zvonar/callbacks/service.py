"""The callback requests service: the only writer of ``callback_requests``.

API side (principal-scoped): create, list, get, cancel. Worker side (account-agnostic, fed by
the telephony runtime): :meth:`claim_due` takes pending requests whose time has come (one
conditional UPDATE per row, so two workers never take the same one), :meth:`record_attempt`
stores an attempt's outcome and schedules the retry, :meth:`recover` puts requests a dead
process left "calling" back to pending. Every write is one unit of work; its event is
published after commit.

Permissions: creating and cancelling need ``contacts.write`` (admins, supervisors, operators)
until a ``calls.write`` exists; reads need ``calls.read``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from zvonar.accounts.access import Perm, Principal
from zvonar.accounts.models import Account
from zvonar.callbacks.events import CallbackChanged, CallbackRequested, CallbackStatus, FailedSide
from zvonar.callbacks.models import CallbackRequest
from zvonar.callbacks.schemas import CallbackRequestIn
from zvonar.core.errors import Conflict, NotFound
from zvonar.directory.models import Employee, Group, Number
from zvonar.directory.phone import normalize
from zvonar.store.base import utcnow
from zvonar.store.db import Database, UnitOfWork

__all__ = ["READ_PERM", "WRITE_PERM", "CallbackService", "Listing", "Retry"]

WRITE_PERM = Perm.contacts_write  # closest existing permission until calls.write exists
READ_PERM = Perm.calls_read
OPEN = (CallbackStatus.pending, CallbackStatus.calling)

# An attempt's outcome (calls.originate.OriginationOutcome values) → who did not answer.
_SIDE = {
    "first_no_answer": FailedSide.agents,
    "then_no_answer": FailedSide.customer,
    "then_busy": FailedSide.customer,
}


@dataclass(frozen=True)
class Listing:
    items: list[CallbackRequest]
    total: int


@dataclass(frozen=True)
class Retry:
    """``max_attempts`` calls in all, ``interval`` seconds apart."""

    max_attempts: int = 3
    interval: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or not self.interval >= 0:
            raise ValueError("max_attempts must be >= 1 and interval >= 0")


class CallbackService:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- API ------------------------------------------------------------------------------------

    async def create(self, p: Principal, data: CallbackRequestIn) -> CallbackRequest:
        p.require(WRITE_PERM)
        now = utcnow()
        async with self.db.unit_of_work() as uow:
            s = uow.session
            account = await s.get(Account, p.account_id)
            if account is None:
                raise NotFound("account not found")
            phone = normalize(data.phone, account.country, field="phone")
            number_id = None
            if data.number is not None:
                e164 = normalize(data.number, account.country, field="number")
                number_id = await s.scalar(
                    select(Number.id).where(Number.account_id == account.id, Number.e164 == e164)
                )
                if number_id is None:
                    raise NotFound(f"number {e164} not found", code="number_not_found")
            if (
                data.group_id is not None
                and await s.scalar(
                    select(Group.id).where(
                        Group.account_id == account.id, Group.id == data.group_id
                    )
                )
                is None
            ):
                raise NotFound("group not found")
            if (
                data.employee_id is not None
                and await s.scalar(
                    select(Employee.id).where(
                        Employee.account_id == account.id, Employee.id == data.employee_id
                    )
                )
                is None
            ):
                raise NotFound("employee not found")
            row = CallbackRequest(
                id=uuid.uuid4(),
                account_id=account.id,
                phone=phone,
                number_id=number_id,
                group_id=data.group_id,
                employee_id=data.employee_id,
                params=dict(data.params),
                not_before=data.not_before,
                status=CallbackStatus.pending,
                next_attempt_at=max(data.not_before or now, now),
                attempts=0,
                call_ids=[],
            )
            s.add(row)
            await s.flush()
            uow.emit(CallbackRequested(account_id=account.id, request_id=row.id, phone=phone))
        return row

    async def list_requests(
        self,
        p: Principal,
        *,
        status: CallbackStatus | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Listing:
        p.require(READ_PERM)
        stmt = select(CallbackRequest).where(CallbackRequest.account_id == p.account_id)
        if status is not None:
            stmt = stmt.where(CallbackRequest.status == status)
        async with self.db.read() as s:
            total = await s.scalar(select(func.count()).select_from(stmt.subquery()))
            rows = await s.scalars(
                stmt.order_by(CallbackRequest.created_at.desc(), CallbackRequest.id)
                .limit(limit)
                .offset(offset)
            )
            return Listing(list(rows), int(total or 0))

    async def get(self, p: Principal, request_id: uuid.UUID) -> CallbackRequest:
        p.require(READ_PERM)
        async with self.db.read() as s:
            return await _owned(s, p.account_id, request_id)

    async def cancel(self, p: Principal, request_id: uuid.UUID) -> CallbackRequest:
        """Cancel a pending or calling request (a call under way is hung up by the worker,
        which listens for the event); a finished one is a ``callback_finished`` conflict."""
        p.require(WRITE_PERM)
        async with self.db.unit_of_work() as uow:
            row = await _owned(uow.session, p.account_id, request_id)
            if row.status not in OPEN:
                raise Conflict(
                    f"the callback request is already {row.status.value}",
                    code="callback_finished",
                )
            row.status = CallbackStatus.cancelled
            row.finished_at = utcnow()
            _changed(uow, row)
        return row

    # --- the worker -----------------------------------------------------------------------------

    async def claim_due(self, now: datetime, limit: int) -> list[CallbackRequest]:
        """Pending requests due by ``now``, oldest first, switched to ``calling`` with one
        more attempt counted; a row another worker took meanwhile is skipped."""
        if limit <= 0:
            return []
        async with self.db.read() as s:
            ids = list(
                await s.scalars(
                    select(CallbackRequest.id)
                    .where(
                        CallbackRequest.status == CallbackStatus.pending,
                        CallbackRequest.next_attempt_at <= now,
                    )
                    .order_by(CallbackRequest.next_attempt_at, CallbackRequest.id)
                    .limit(limit)
                )
            )
        claimed: list[CallbackRequest] = []
        for request_id in ids:
            async with self.db.unit_of_work() as uow:
                result = await uow.session.execute(
                    update(CallbackRequest)
                    .where(
                        CallbackRequest.id == request_id,
                        CallbackRequest.status == CallbackStatus.pending,
                    )
                    .values(
                        status=CallbackStatus.calling,
                        attempts=CallbackRequest.attempts + 1,
                        updated_at=utcnow(),
                    )
                    .execution_options(synchronize_session=False)
                )
                if result.rowcount != 1:  # type: ignore[attr-defined]
                    continue
                row = await uow.session.get(CallbackRequest, request_id, populate_existing=True)
                assert row is not None  # updated just now in this transaction
                _changed(uow, row)
                claimed.append(row)
        return claimed

    async def record_attempt(
        self,
        request_id: uuid.UUID,
        outcome: str,
        call_id: str | None,
        retry: Retry,
        now: datetime | None = None,
    ) -> CallbackRequest | None:
        """Store one attempt's outcome (an ``OriginationOutcome`` value): ``connected``
        completes the request; a cancelled request stays cancelled; anything else is retried
        ``retry.interval`` later until ``retry.max_attempts``, then fails."""
        now = now or utcnow()
        async with self.db.unit_of_work() as uow:
            row = await uow.session.get(CallbackRequest, request_id)
            if row is None:
                return None
            row.last_outcome = outcome[:24]
            if call_id is not None and call_id not in row.call_ids:
                row.call_ids = [*row.call_ids, call_id]
            if row.status is CallbackStatus.calling:
                if outcome == "connected":
                    row.status, row.finished_at = CallbackStatus.completed, now
                elif outcome == "cancelled":
                    row.status, row.finished_at = CallbackStatus.cancelled, now
                elif row.attempts >= retry.max_attempts:
                    row.status, row.finished_at = CallbackStatus.failed, now
                    row.failed_side = _SIDE.get(outcome, FailedSide.system)
                else:
                    row.status = CallbackStatus.pending
                    row.next_attempt_at = now + timedelta(seconds=retry.interval)
            _changed(uow, row, call_id)
        return row

    async def recover(self, now: datetime | None = None) -> int:
        """Requests left ``calling`` by a process that died: pending again, due now, and the
        interrupted attempt not counted. Returns how many."""
        now = now or utcnow()
        async with self.db.unit_of_work() as uow:
            rows = list(
                await uow.session.scalars(
                    select(CallbackRequest).where(CallbackRequest.status == CallbackStatus.calling)
                )
            )
            for row in rows:
                row.status = CallbackStatus.pending
                row.attempts = max(row.attempts - 1, 0)
                row.next_attempt_at = now
                _changed(uow, row)
        return len(rows)


async def _owned(s: AsyncSession, account_id: uuid.UUID, request_id: uuid.UUID) -> CallbackRequest:
    row = await s.get(CallbackRequest, request_id)
    if row is None or row.account_id != account_id:
        raise NotFound("callback request not found")
    return row


def _changed(uow: UnitOfWork, row: CallbackRequest, call_id: str | None = None) -> None:
    uow.emit(
        CallbackChanged(
            account_id=row.account_id,
            request_id=row.id,
            status=row.status,
            attempts=row.attempts,
            outcome=row.last_outcome,
            call_id=call_id,
        )
    )
