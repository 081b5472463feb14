"""Migration 0024 folds the company of every stored contact, so they are found by it too."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from tests.platform.test_migrations import _sync, _wipe
from zvonar.accounts.models import Account
from zvonar.contacts.models import Contact
from zvonar.store import migrate


def test_stored_companies_are_folded(database_url: str) -> None:
    _sync(database_url, _wipe)
    migrate.upgrade(database_url)

    def seed(conn: Connection) -> None:
        with Session(conn) as s:
            account = Account(name="Kept", slug="kept")
            s.add(account)
            s.flush()
            for name, company in (("A", "Завод «Ромашка»"), ("B", None), ("C", "Straße")):
                s.add(
                    Contact(
                        account_id=account.id,
                        name=name,
                        name_folded=name.casefold(),
                        company=company,
                        company_folded=None,  # as the release before 0024 left every row
                        tags=[],
                        tags_key="|",
                    )
                )
            s.commit()

    _sync(database_url, seed)
    migrate.downgrade(database_url, "0023")
    migrate.upgrade(database_url)

    def folded(conn: Connection) -> dict[str, str | None]:
        rows = conn.execute(text("SELECT name, company_folded FROM contacts"))
        return {name: value for name, value in rows}

    assert _sync(database_url, folded) == {"A": "завод «ромашка»", "B": None, "C": "strasse"}
    _sync(database_url, _wipe)
