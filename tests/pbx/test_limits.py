"""The PBX raises its open-file limit at start (two sockets per media leg)."""

from __future__ import annotations

import resource
import subprocess
import sys
from collections.abc import Iterator

import pytest

from zvonar.pbx.limits import raise_open_files_limit, sockets_needed


@pytest.fixture
def limits() -> Iterator[tuple[int, int]]:
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    yield before
    resource.setrlimit(resource.RLIMIT_NOFILE, before)


def test_the_soft_limit_is_raised_to_the_hard_one(limits: tuple[int, int]) -> None:
    _soft, hard = limits
    if hard != resource.RLIM_INFINITY and hard <= 512:
        pytest.skip(f"the hard limit here ({hard}) leaves nothing to raise")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    now = raise_open_files_limit()
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == now > 256
    assert now == min(hard, 1 << 20) if hard != resource.RLIM_INFINITY else now == 1 << 20


def test_a_hard_limit_below_the_range_is_reported() -> None:
    # In a child: a lowered hard limit cannot be raised again without privileges.
    code = (
        "import logging, resource\n"
        "from zvonar.pbx.limits import raise_open_files_limit, sockets_needed\n"
        "logging.basicConfig(level=logging.WARNING)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (300, 300))\n"
        "print(raise_open_files_limit(sockets_needed((20000, 20999))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "300"
    assert "below the 1256" in done.stderr


def test_what_a_range_needs() -> None:
    assert sockets_needed(None) is None
    assert sockets_needed((20000, 20999)) == 2 * 500 + 256  # pairs 20000/1 ... 20998/9
    assert sockets_needed((20001, 20004)) == 2 * 1 + 256  # only 20002/3 fits
