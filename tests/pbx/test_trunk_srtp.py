"""A trunk that requires SRTP: its targets, inbound forwards and outbound calls alike, are
offered SRTP only (the e2e proof against baresip is in tests/e2e/test_tls_baresip.py)."""

from __future__ import annotations

import uuid

import pytest

from zvonar.calls.events import Target, TargetKind
from zvonar.pbx.reach import via_trunk
from zvonar.pbx.snapshot import TrunkInfo

WHO = Target(TargetKind.mobile, "Emp 101 (mobile)")


@pytest.mark.parametrize("srtp", [True, False])
def test_a_trunks_targets_carry_its_srtp_choice(srtp: bool) -> None:
    trunk = TrunkInfo(uuid.uuid4(), "carrier", "sbc.example", 5061, "tls", srtp=srtp)
    ring = via_trunk("+79161234567", trunk, WHO, "m101")
    assert ring is not None and ring.secure_media is srtp
