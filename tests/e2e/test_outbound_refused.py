"""End to end: an employee's call the toll-fraud guard refuses is found in the journal by the
number and by the customer, as a call put through is.

Employee 101 (SIPp, digest) of a Russian account that may not call abroad dials
``00442079460018`` (00: the international prefix people bring from their mobiles, which
Russia's plan lacks). The PBX answers ``403 Forbidden (international_not_allowed)``; the
journal's row is outbound, failed, placed by 101, dialled ``+442079460018`` — not the string
the phone sent — and names the customer whose number that is. Before, the row kept
``00442079460018`` (484 even before that) and no contact, so ``number=+442079460018`` and the
contact filter missed exactly the attempts an admin looks for.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.e2e.test_early_media import _cmd
from tests.e2e.test_early_media import app as app  # the fixture
from tests.e2e.test_trunk_failover import caller_refused
from tests.pbx.conftest import PASSWORD, seed_account
from tests.sip.peers.harness import SIPP, free_port, run_sipp
from zvonar.calls.events import Direction, Disposition
from zvonar.contacts.schemas import ContactIn
from zvonar.container import Container
from zvonar.directory.models import TrunkAuth
from zvonar.directory.schemas import TrunkIn
from zvonar.journal.service import CallFilter
from zvonar.pbx.config import PbxConfig
from zvonar.pbx.runtime import start_pbx

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
]

DIALED = "00442079460018"
CALLEE = "+442079460018"


async def test_a_refused_call_is_journalled_under_the_callee(
    app: Container, tmp_path: Path
) -> None:
    alpha = await seed_account(app, "alpha")
    p = alpha.principal
    await app.directory.create_trunk(
        p,
        TrunkIn(
            name="carrier",
            host="127.0.0.1",
            port=free_port(),  # never contacted: the guard refuses first
            auth_mode=TrunkAuth.ip,
            allowed_sources=["192.0.2.1"],
        ),
    )
    made = await app.contacts.create_contact(p, ContactIn(name="Bolts Ltd", numbers=[CALLEE]))
    pbx_port = free_port()
    config = PbxConfig(sip_port=pbx_port, media_timeout=0, digest_algorithms=("MD5",))
    rt = await start_pbx(app, config)
    remote = f"127.0.0.1:{pbx_port}"
    try:
        (tmp_path / "caller.xml").write_text(caller_refused("403", DIALED))
        auth = ("-au", "101", "-ap", PASSWORD, "-auth_uri", f"{DIALED}@{remote}")
        caller = await run_sipp(
            _cmd(tmp_path, remote, "caller", free_port(), *auth), workdir=tmp_path, name="caller"
        )
        assert caller.stats.successful == 1, caller.describe()  # the 403 reached 101
        await asyncio.wait_for(rt.b2bua.wait_idle(), 10)
    finally:
        await rt.stop()
    by_number = CallFilter(direction=Direction.outbound, number=CALLEE)
    (call,) = (await app.journal.list_calls(p, by_number)).items
    assert call.dialed == CALLEE and call.caller_contact_id == made.contact.id
    assert call.disposition is Disposition.failed and call.placed_by == alpha.employee_id
    (same,) = (await app.journal.list_calls(p, CallFilter(contact_id=made.contact.id))).items
    assert same.id == call.id
