"""Feature codes dialed from our phones: what the resolver answers before any routing.

``*8<ext>`` — directed pickup: take the call that is ringing extension ``<ext>`` right now
(calls/pickup.py carries it out). Only a phone that passed the INVITE gate's digest
(``CallerAuth.account_id`` and ``user``) may dial a feature code, and only within its own
account: the picked employee and the picker are both looked up in the caller's account, so
a call of another account can never be found.
"""

from __future__ import annotations

from sqlalchemy import select

from zvonar.calls.events import Target, TargetKind
from zvonar.calls.plan import InboundCall, Pickup, Reject
from zvonar.directory.models import Employee
from zvonar.store.db import Database

__all__ = ["PICKUP_CODE", "feature_call"]

PICKUP_CODE = "*8"  # followed by the extension whose ringing call to take


async def feature_call(db: Database, call: InboundCall) -> Pickup | Reject | None:
    """The feature ``call`` dials, or None when its number is no feature code."""
    if not call.dialed.startswith(PICKUP_CODE):
        return None
    auth = call.auth
    if auth is None or auth.account_id is None or not auth.user:
        return Reject(403, "Forbidden")  # trunks, strangers, transfers: no features
    extension = call.dialed[len(PICKUP_CODE) :]
    if not extension:
        return Reject(404, "Not Found")
    async with db.read() as s:
        people = list(
            await s.scalars(
                select(Employee).where(
                    Employee.account_id == auth.account_id,
                    Employee.active.is_(True),
                    (Employee.extension == extension) | (Employee.sip_username == auth.user),
                )
            )
        )
    picked = next((e for e in people if e.extension == extension), None)
    picker = next((e for e in people if e.sip_username == auth.user), None)
    if picker is None:
        return Reject(403, "Forbidden")
    if picked is None:
        return Reject(404, "Not Found")
    return Pickup(
        account_id=auth.account_id,
        employee_id=picked.id,
        picker=Target(TargetKind.employee, picker.name, picker.id),
    )
