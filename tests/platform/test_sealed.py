"""Secrets sealed at rest (store/sealed.py, directory/secrets.py): trunk passwords."""

from __future__ import annotations

import uuid

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from zvonar.accounts.access import Principal
from zvonar.accounts.models import Role
from zvonar.app import create_container
from zvonar.container import Container
from zvonar.directory.models import Transport, Trunk, TrunkAuth
from zvonar.directory.schemas import TrunkIn, TrunkPatch
from zvonar.directory.secrets import (
    PURPOSE,
    open_password,
    reseal_passwords,
    seal_stored_passwords,
)
from zvonar.settings import Settings
from zvonar.store.sealed import PREFIX, Sealer, UnsealError, is_sealed


def test_sealed_values_open_only_with_the_same_key_and_purpose() -> None:
    box = Sealer("one installation's secret key")
    a, b = box.seal("pa55word", PURPOSE), box.seal("pa55word", PURPOSE)
    assert a.startswith(PREFIX) and is_sealed(a) and "pa55word" not in a
    assert a != b  # a fresh nonce every time
    assert box.open(a, PURPOSE) == box.open(b, PURPOSE) == "pa55word"
    assert box.open("legacy clear", PURPOSE) == "legacy clear"
    with pytest.raises(UnsealError):
        box.open(a, "another.column")  # the purpose is authenticated
    with pytest.raises(UnsealError):
        Sealer("another installation").open(a, PURPOSE)
    tampered = a[:-4] + ("AAAA" if not a.endswith("AAAA") else "BBBB")
    with pytest.raises(UnsealError):
        box.open(tampered, PURPOSE)
    with pytest.raises(UnsealError):
        box.open(PREFIX + "not base64 at all!", PURPOSE)
    assert box.open(box.seal("", PURPOSE), PURPOSE) == ""
    assert box.open(box.seal("пароль-ж", PURPOSE), PURPOSE) == "пароль-ж"


async def _account(container: Container) -> Principal:
    account = await container.accounts.create_account("Sealed", f"sealed{uuid.uuid4().hex[:6]}")
    return Principal(account_id=account.id, role=Role.admin)


async def _stored(container: Container, trunk_id: uuid.UUID) -> str | None:
    async with container.db.read() as s:
        return await s.scalar(select(Trunk.password).where(Trunk.id == trunk_id))


async def test_trunk_passwords_are_stored_sealed_and_edits_compare_in_clear(
    container: Container,
) -> None:
    p = await _account(container)
    trunk = await container.directory.create_trunk(
        p, TrunkIn(name="carrier", host="sip.carrier.example", username="acc", password="s3cret")
    )
    stored = await _stored(container, trunk.id)
    assert stored is not None and is_sealed(stored) and "s3cret" not in stored
    assert container.db.sealer is not None
    assert container.db.sealer.open(stored, PURPOSE) == "s3cret"

    # The same password again is no change (sealed forms differ; the clear ones do not).
    same = await container.directory.update_trunk(p, trunk.id, TrunkPatch(password="s3cret"))
    assert await _stored(container, same.id) == stored
    changed = await container.directory.update_trunk(p, trunk.id, TrunkPatch(password="n3w"))
    after = await _stored(container, changed.id)
    assert after is not None and after != stored
    assert container.db.sealer.open(after, PURPOSE) == "n3w"


async def test_passwords_an_older_version_kept_in_clear_are_sealed_at_start(
    container: Container,
) -> None:
    p = await _account(container)
    async with container.db.unit_of_work() as uow:  # as version 0006 left it
        uow.session.add(
            Trunk(
                account_id=p.account_id,
                name="legacy",
                host="192.0.2.7",
                transport=Transport.udp,
                auth_mode=TrunkAuth.registration,
                username="old",
                password="kept-in-clear",
                allowed_sources=[],
            )
        )
    [legacy] = (await container.directory.list_trunks(p)).items
    assert open_password(container.db.sealer, legacy) == "kept-in-clear"  # readable meanwhile
    assert await seal_stored_passwords(container.db) == 1
    assert await seal_stored_passwords(container.db) == 0  # idempotent
    stored = await _stored(container, legacy.id)
    assert stored is not None and is_sealed(stored)
    [again] = (await container.directory.list_trunks(p)).items
    assert open_password(container.db.sealer, again) == "kept-in-clear"


async def test_after_the_secret_key_changed_reseal_opens_with_the_old_one(
    container: Container, settings: Settings
) -> None:
    p = await _account(container)
    made = await container.directory.create_trunk(
        p, TrunkIn(name="carrier", host="sip.carrier.example", username="acc", password="s3cret")
    )
    stranger = Sealer("a key nobody has any more").seal("lost", PURPOSE)
    async with container.db.unit_of_work() as uow:
        uow.session.add(
            Trunk(
                account_id=p.account_id, name="orphan", host="192.0.2.8",
                transport=Transport.udp, auth_mode=TrunkAuth.registration, username="x",
                password=stranger, allowed_sources=[],
            )
        )  # fmt: skip
    rotated = create_container(
        Settings(
            data_dir=settings.data_dir,
            database_url=settings.database_url,
            secret_key=SecretStr("the new secret key"),
        )
    )
    try:
        [trunk] = [t for t in (await rotated.directory.list_trunks(p)).items if t.id == made.id]
        with pytest.raises(UnsealError):
            open_password(rotated.db.sealer, trunk)
        old = Sealer(settings.effective_secret_key)
        assert await reseal_passwords(rotated.db, old) == (1, 1)  # the orphan opens with neither
        [trunk] = [t for t in (await rotated.directory.list_trunks(p)).items if t.id == made.id]
        assert open_password(rotated.db.sealer, trunk) == "s3cret"
        assert await reseal_passwords(rotated.db, old) == (0, 1)  # nothing left to do
    finally:
        await rotated.db.dispose()
