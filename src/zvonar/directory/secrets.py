"""Trunk passwords at rest: sealed on write, opened by the PBX when a carrier asks for them.

The carrier's digest challenge needs the password itself, so it is sealed, not hashed
(store/sealed.py). Writers seal through the unit of work's sealer; the PBX opens with the
database's. A password an older version stored in clear still opens (as it is) and is sealed
by :func:`seal_stored_passwords` at start-up.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from zvonar.directory.models import Trunk
from zvonar.store.db import Database
from zvonar.store.sealed import Sealer, UnsealError, is_sealed

__all__ = [
    "PURPOSE",
    "open_password",
    "reseal_passwords",
    "seal_password",
    "seal_stored_passwords",
]

log = logging.getLogger(__name__)

PURPOSE = "trunk.password"


def seal_password(sealer: Sealer | None, plain: str | None) -> str | None:
    if plain is None or sealer is None:
        return plain
    return sealer.seal(plain, PURPOSE)


def open_password(sealer: Sealer | None, trunk: Trunk) -> str | None:
    """The trunk's password in clear; ``UnsealError`` when it does not open with this
    installation's key."""
    stored = trunk.password
    if stored is None or sealer is None:
        return stored
    return sealer.open(stored, PURPOSE)


async def seal_stored_passwords(db: Database) -> int:
    """Seal every trunk password still stored in clear; returns how many. Nothing else about
    the trunks changes, so no event is published."""
    sealer = db.sealer
    if sealer is None:
        return 0
    async with db.unit_of_work() as uow:
        trunks = list(await uow.session.scalars(select(Trunk).where(Trunk.password.is_not(None))))
        clear = [t for t in trunks if t.password is not None and not is_sealed(t.password)]
        for t in clear:
            t.password = sealer.seal(t.password or "", PURPOSE)
    if clear:
        log.info("sealed %d trunk password(s) stored in clear by an earlier version", len(clear))
    return len(clear)


async def reseal_passwords(db: Database, old: Sealer) -> tuple[int, int]:
    """After ``secret_key`` changed: seal again with the current key every trunk password that
    opens only with ``old`` (and any still in clear). Returns (resealed, unreadable); an
    unreadable one opens with neither key and is left as it is (enter it again)."""
    current = db.sealer
    if current is None:
        raise ValueError("this database has no secret key to seal with")
    resealed = unreadable = 0
    async with db.unit_of_work() as uow:
        trunks = list(await uow.session.scalars(select(Trunk).where(Trunk.password.is_not(None))))
        for t in trunks:
            stored = t.password or ""
            if is_sealed(stored):
                try:
                    current.open(stored, PURPOSE)
                    continue  # sealed with the current key already
                except UnsealError:
                    pass
                try:
                    plain = old.open(stored, PURPOSE)
                except UnsealError:
                    unreadable += 1
                    log.error("trunk %s: its password opens with neither key", t.name)
                    continue
            else:
                plain = stored
            t.password = current.seal(plain, PURPOSE)
            resealed += 1
    return resealed, unreadable
