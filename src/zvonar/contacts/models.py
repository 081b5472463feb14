"""Tables of the contacts slice.

A contact owns phone numbers through ``contact_numbers``, whose primary key (account_id, e164)
makes a number belong to at most one contact per account and is the index the caller lookup and
the CSV upsert read. Every row carries ``account_id``; the service filters every query by it.
"""

from __future__ import annotations

import uuid

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from zvonar.store.base import Base, IdMixin, TimestampMixin


class Contact(IdMixin, TimestampMixin, Base):
    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("account_id", "external_id"),)

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    # Case-folded name for "q" searches (SQLite's lower() folds ASCII only); folding can triple.
    name_folded: Mapped[str] = mapped_column(String(600))
    company: Mapped[str | None] = mapped_column(String(200))
    # The company case-folded, for "q" searches, as name_folded (None: no company).
    company_folded: Mapped[str | None] = mapped_column(String(600))
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    # "|supplier|vip|": a portable tag filter (LIKE '%|vip|%') without JSON operators, which
    # differ between SQLite and PostgreSQL. Tags are normalized, so they never contain "|".
    tags_key: Mapped[str] = mapped_column(String(700), default="|")
    city: Mapped[str | None] = mapped_column(String(100))
    email: Mapped[str | None] = mapped_column(String(254))
    notes: Mapped[str | None] = mapped_column(Text)
    # The id of this contact in the customer's CRM, for their own sync.
    external_id: Mapped[str | None] = mapped_column(String(100))
    # The employee who looks after this customer: a scheme's {manager: contact} rings them.
    manager_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("employees.id", ondelete="SET NULL"), index=True
    )


class ContactNumber(Base):
    __tablename__ = "contact_numbers"

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    e164: Mapped[str] = mapped_column(String(16), primary_key=True)
    contact_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(default=0)


def tags_key(tags: list[str]) -> str:
    return "|" + "".join(f"{t}|" for t in tags)


def folded(text: str | None) -> str | None:
    """``text`` for a case-insensitive search in any script: the databases' lower() differ
    (SQLite's folds ASCII only, PostgreSQL's follows the database's locale), Python's does not."""
    return text.casefold() if text is not None else None
