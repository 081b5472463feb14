"""The suite's own split across pytest-xdist workers (tests/support/workers.py): disjoint port
slices inside each range, one database per worker, and the whole range in one process."""

from __future__ import annotations

import pytest

from tests.support.workers import port_slice, worker_database_url


def as_worker(monkeypatch: pytest.MonkeyPatch, index: int | None, count: int = 2) -> None:
    if index is None:
        monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
        monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
        return
    monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{index}")
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", str(count))


@pytest.mark.parametrize("count", [2, 3])
def test_workers_get_disjoint_aligned_slices(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    taken: set[int] = set()
    for index in range(count):
        as_worker(monkeypatch, index, count)
        low, high = port_slice(24000, 32760, align=4)
        assert 24000 <= low < high <= 32760 and (low - 24000) % 4 == 0
        ports = set(range(low, high + 1))
        assert not ports & taken
        taken |= ports
    assert len(taken) > (32760 - 24000) * 0.99  # little of the range is left unused


def test_one_process_owns_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    as_worker(monkeypatch, None)
    assert port_slice(10000, 19999) == (10000, 19999)
    url = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    assert worker_database_url(url) == url


def test_each_worker_has_its_own_database(monkeypatch: pytest.MonkeyPatch) -> None:
    as_worker(monkeypatch, 1)
    assert (
        worker_database_url("postgresql+asyncpg://postgres@127.0.0.1:5432/test?ssl=disable")
        == "postgresql+asyncpg://postgres@127.0.0.1:5432/test_gw1?ssl=disable"
    )
