"""Which share of the machine this test process owns when pytest-xdist runs the suite on
several workers (``make test`` does, ``-n 2``): its own slice of each port range and its own
PostgreSQL database, so two workers never race for a port or drop each other's tables.

Without xdist (one process) the slice is the whole range and the database the one given.
"""

from __future__ import annotations

import os

from sqlalchemy import make_url

__all__ = ["port_slice", "worker_count", "worker_database_url", "worker_index"]


def worker_index() -> int:
    """0-based index of this xdist worker ("gw3" → 3); 0 without xdist."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(name[2:]) if name.startswith("gw") and name[2:].isdigit() else 0


def worker_count() -> int:
    count = os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    return max(1, int(count)) if count.isdigit() else 1


def port_slice(first: int, last: int, *, align: int = 1) -> tuple[int, int]:
    """This worker's part of ``first..last`` (inclusive), its start a multiple of ``align``
    above ``first``; the whole range when the suite runs in one process."""
    count = worker_count()
    if count == 1:
        return first, last
    size = (last - first + 1) // count // align * align
    low = first + worker_index() * size
    return low, low + size - 1


def worker_database_url(url: str) -> str:
    """``url`` with the database name suffixed by the worker ("test" → "test_gw1"); the
    database is created by the caller when missing. Unchanged without xdist."""
    name = os.environ.get("PYTEST_XDIST_WORKER")
    if not name:
        return url
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_{name}").render_as_string(hide_password=False)
