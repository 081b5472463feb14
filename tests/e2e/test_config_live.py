"""End to end: ``zvonar config apply`` run as its own process while the PBX serves.

The PBX keeps phones' credentials and routing data in memory. The CLI's write reaches it through
the database's event outbox (store/outbox.py): a new employee's phone registers with the
password the document gave it, and the next call follows the changed scheme, with no restart.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
import yaml

from tests.e2e.appkit import ring_account, sqlite_container
from tests.e2e.schemes_kit import Device, Phone, Rig
from tests.sip.peers.harness import SIPP, free_port
from zvonar.calls.events import Disposition
from zvonar.core.bus import RecordingBus
from zvonar.core.events import Event
from zvonar.directory.events import EmployeeCreated
from zvonar.pbx.config import PbxConfig
from zvonar.pbx.runtime import start_pbx
from zvonar.routing.events import SchemeChanged

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
]

PASSWORD = "live-pass-42"
NUMBER = "+74951230000"
SLUG = "live"


async def zvonar(workdir: Path, *args: str) -> str:
    """The CLI as its own process, on the test's database (the PBX's loop keeps serving)."""
    env = {
        **os.environ,
        "ZVONAR_DATA_DIR": str(workdir / "data"),
        "ZVONAR_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'pbx.sqlite3'}",
        "ZVONAR_SECRET_KEY": "test-secret-key-not-for-production",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "zvonar", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, out.decode()
    return out.decode()


async def test_config_applied_by_another_process_takes_effect_without_a_restart(
    tmp_path: Path,
) -> None:
    container = await sqlite_container(tmp_path)
    ring = [{"type": "ring", "targets": [{"employee": "101"}], "timeout": 3}]
    _admin, ids = await ring_account(
        container, SLUG, extensions=["101"], password=PASSWORD, number=NUMBER, steps=ring
    )
    config = PbxConfig(
        sip_port=free_port(),
        media_timeout=0,
        digest_algorithms=("MD5",),  # SIPp 3.6 answers MD5 only
        event_relay_interval=0.2,
    )
    rt = await start_pbx(container, config)
    try:
        rig = Rig(
            container, rt, f"{SLUG}.zvonar", PASSWORD, {"101": Device("101", ids["101"])}, tmp_path
        )
        await rig.register_all()
        before = await rig.call(NUMBER, {"101": Phone.answer})
        assert before.answered == "101", before.phones_log

        doc_path = tmp_path / "live.yaml"
        await zvonar(tmp_path, "config", "export", "-a", SLUG, "-o", str(doc_path))
        doc = yaml.safe_load(doc_path.read_text())
        doc["directory"]["employees"]["105"] = {"name": "Vera", "sip_password": PASSWORD}
        (scheme,) = doc["routing"]["schemes"].values()
        for steps in scheme["branches"].values():  # working hours and off: whenever this runs
            steps[0]["targets"] = [{"employee": "105"}]
        doc_path.write_text(yaml.safe_dump(doc, allow_unicode=True))
        bus = container.bus
        assert isinstance(bus, RecordingBus)
        relayed = asyncio.Event()

        async def scheme_changed(_event: Event) -> None:
            relayed.set()  # the document's last event: the employee's came before it

        bus.subscribe(SchemeChanged, scheme_changed)
        out = await zvonar(tmp_path, "config", "apply", str(doc_path), "-a", SLUG)
        assert "105" in out, out
        async with asyncio.timeout(5):  # relayed within a poll or two (0.2 s each)
            await relayed.wait()
        (vera,) = [e for e in bus.of_type(EmployeeCreated) if e.extension == "105"]

        rig.devices["105"] = Device("105", vera.employee_id)
        rig.by_id[vera.employee_id] = "105"
        await rig.register_all()  # 105's password is known here now: digest succeeds
        after = await rig.call(NUMBER, {"101": Phone.answer, "105": Phone.answer})
        assert after.caller_ok, after.caller_log
        assert after.order == ["105"], (after.rings, after.phones_log)
        assert after.row.disposition is Disposition.answered
        assert after.row.answered_by == vera.employee_id
    finally:
        await rt.stop()
        await container.aclose()
