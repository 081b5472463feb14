"""The caller index after a bulk import: read again in the background while calls keep being
answered from the table in memory, then swapped in; changes made meanwhile are not lost."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from tests.conftest import Tenant
from zvonar.accounts.access import Principal
from zvonar.accounts.models import Role
from zvonar.contacts.index import ContactHit, ContactIndex
from zvonar.contacts.schemas import ContactIn
from zvonar.contacts.service import ContactService

T = TypeVar("T")


def at_once(coro: Coroutine[Any, Any, T]) -> T:
    """The coroutine's result if it completes without waiting on anything, else a failure."""
    try:
        coro.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    coro.close()
    raise AssertionError("it waited")


class GatedReads:
    """Holds the index's reads of the database until :meth:`open` (a slow 100,000-row read)."""

    def __init__(self, index: ContactIndex, monkeypatch: pytest.MonkeyPatch) -> None:
        self.gate = asyncio.Event()
        self.started = 0
        self.began = asyncio.Event()
        real = index._read

        async def read(account_id: uuid.UUID) -> Any:
            self.started += 1
            self.began.set()
            await self.gate.wait()
            return await real(account_id)

        monkeypatch.setattr(index, "_read", read)

    async def wait_started(self) -> None:
        await asyncio.wait_for(self.began.wait(), 5)
        self.began.clear()


def name(hit: ContactHit | None) -> str | None:
    return hit.name if hit is not None else None


async def test_calls_are_answered_from_the_old_table_while_an_import_is_read(
    contacts: ContactService, tenant_a: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    acc, index = tenant_a.account_id, contacts.index
    p = Principal(account_id=acc, role=Role.admin)
    await contacts.create_contact(p, ContactIn(name="Old", numbers=["+79161234567"]))
    gone = await contacts.create_contact(p, ContactIn(name="Gone", numbers=["+79161234500"]))
    assert name(await contacts.lookup(acc, "+79161234567")) == "Old"
    reads = GatedReads(index, monkeypatch)

    await contacts.import_csv(p, b"name,phones\nBulk,+79160000002\nRenamed,+79161234567\n")
    # The call does not wait on the read: the old table answers, at once. The contact imported
    # a moment ago is not known yet.
    assert name(at_once(index.lookup(acc, "+79161234567"))) == "Old"
    await reads.wait_started()
    assert name(at_once(index.lookup(acc, "+79161234567"))) == "Old"
    assert at_once(index.lookup(acc, "+79160000002")) is None
    # Contacts saved one by one meanwhile are known at once, and stay so after the swap.
    await contacts.create_contact(p, ContactIn(name="Single", numbers=["+79160000003"]))
    await contacts.delete_contact(p, gone.contact.id)
    assert name(index.peek(acc, "+79160000003")) == "Single"
    assert index.peek(acc, "+79161234500") is None
    # Another import during the read: this read is installed, then the account is read again.
    await contacts.import_csv(p, b"name,phones\nSecond,+79160000004\n")

    reads.gate.set()
    await asyncio.wait_for(index.reloaded(acc), 5)
    assert reads.started == 2
    assert name(index.peek(acc, "+79160000002")) == "Bulk"
    assert name(index.peek(acc, "+79161234567")) == "Renamed"
    assert name(index.peek(acc, "+79160000003")) == "Single"
    assert name(index.peek(acc, "+79160000004")) == "Second"
    assert index.peek(acc, "+79161234500") is None


async def test_changes_committed_during_the_read_are_applied_to_what_it_read(
    contacts: ContactService, tenant_a: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The read may have begun before a change committed: what it read would lack the change,
    # so the change is applied to it again before it is swapped in.
    acc, index = tenant_a.account_id, contacts.index
    p = Principal(account_id=acc, role=Role.admin)
    assert await contacts.lookup(acc, "+79161234567") is None  # loaded (empty)
    reads = GatedReads(index, monkeypatch)
    real = ContactIndex._read.__get__(index)
    early = asyncio.get_running_loop().create_future()

    async def read_then_wait(account_id: uuid.UUID) -> Any:
        table = await real(account_id)  # read before the change below commits
        early.set_result(None)
        await reads.gate.wait()
        return table

    monkeypatch.setattr(index, "_read", read_then_wait)
    await contacts.import_csv(p, b"name,phones\nBulk,+79160000002\n")
    await asyncio.wait_for(early, 5)
    await contacts.create_contact(p, ContactIn(name="During", numbers=["+79161234567"]))
    reads.gate.set()
    await asyncio.wait_for(index.reloaded(acc), 5)
    assert name(index.peek(acc, "+79161234567")) == "During"
    assert name(index.peek(acc, "+79160000002")) == "Bulk"


async def test_a_failed_read_keeps_the_old_table_and_the_next_import_reads_again(
    contacts: ContactService,
    tenant_a: Tenant,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    acc, index = tenant_a.account_id, contacts.index
    p = Principal(account_id=acc, role=Role.admin)
    await contacts.create_contact(p, ContactIn(name="Old", numbers=["+79161234567"]))
    assert await contacts.lookup(acc, "+79161234567") is not None
    real = index._read

    async def broken(account_id: uuid.UUID) -> Any:
        raise OSError("database went away")

    monkeypatch.setattr(index, "_read", broken)
    with caplog.at_level(logging.WARNING, logger="zvonar.contacts.index"):
        await contacts.import_csv(p, b"name,phones\nBulk,+79160000002\n")
        await index.reloaded(acc)
    assert "reading account" in caplog.text
    assert name(at_once(index.lookup(acc, "+79161234567"))) == "Old"

    monkeypatch.setattr(index, "_read", real)
    await contacts.import_csv(p, b"name,phones\nMore,+79160000003\n")
    await index.reloaded(acc)
    assert name(index.peek(acc, "+79160000002")) == "Bulk"


async def test_the_first_lookups_share_one_read_that_a_hang_up_does_not_cancel(
    contacts: ContactService,
    tenant_a: Tenant,
    tenant_b: Tenant,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    acc, index = tenant_a.account_id, contacts.index
    p = Principal(account_id=acc, role=Role.admin)
    await contacts.create_contact(p, ContactIn(name="VIP", numbers=["+79161234567"]))
    reads = GatedReads(index, monkeypatch)
    first = asyncio.ensure_future(index.lookup(acc, "+79161234567"))
    second = asyncio.ensure_future(index.lookup(acc, "+79161234567"))
    await reads.wait_started()
    first.cancel()  # that caller hung up
    reads.gate.set()
    assert name(await asyncio.wait_for(second, 5)) == "VIP"
    assert first.cancelled() and reads.started == 1
    # An import into an account nobody looked up reads nothing: its first lookup will.
    other = Principal(account_id=tenant_b.account_id, role=Role.admin)
    await contacts.import_csv(other, b"name,phones\nB,+79160000002\n")
    await index.reloaded(tenant_b.account_id)
    assert reads.started == 1 and not index.loaded(tenant_b.account_id)
