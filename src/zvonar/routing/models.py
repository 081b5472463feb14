"""Tables of the routing slice: schemes, which scheme answers each number, account calendars.

A scheme's definition is stored as the canonical plain dict (``scheme_codec.scheme_to_dict``)
after validation, so a row always parses. The number → scheme link is this slice's own table,
keeping the directory's ``phone_numbers`` untouched.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from zvonar.store.base import Base, IdMixin, TimestampMixin


class SchemeRow(IdMixin, TimestampMixin, Base):
    __tablename__ = "routing_schemes"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)


class SchemeAssignment(TimestampMixin, Base):
    """The scheme an inbound call to ``number_id`` runs. Deleting the number drops the link;
    a scheme in use cannot be deleted."""

    __tablename__ = "scheme_assignments"

    number_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("phone_numbers.id", ondelete="CASCADE"), primary_key=True
    )
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    scheme_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("routing_schemes.id", ondelete="RESTRICT"), index=True
    )


class CalendarRow(TimestampMixin, Base):
    """Working hours and holiday overrides (``schedule.calendar_to_dict`` form); the zone is
    the account's, and so is the country when ``country`` is left out (rows written before
    that rule name the country the account had then). No row: Monday–Friday 09:00–18:00 with
    the account country's holidays."""

    __tablename__ = "routing_calendars"

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
