"""A scheme call answered by baresip: the PBX, baresip and a SIPp carrier in one namespace.

baresip opens sockets beyond loopback (DNS on 0.0.0.0), so test_schemes_baresip.py runs this
inside ``unshare -n`` (a private network namespace with only ``lo``)::

    unshare -n sh -c 'ip link set lo up && exec python -m tests.e2e.schemes_baresip_driver OUT DIR'

The scheme: ring 601 (a SIPp phone that never answers, 1 s) → ring 501 (baresip, auto-answer).
The report (JSON at OUT) says what rang, who answered and what the journal recorded.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from tests.e2e.appkit import ring_account, sqlite_container
from tests.e2e.baresip_kit import (
    phone_account,
    start_baresip,
    stop_baresip,
    write_config,
)
from tests.e2e.schemes_kit import Device, Phone, Rig
from zvonar.pbx.config import PbxConfig
from zvonar.pbx.runtime import start_pbx

PBX_PORT = 5060
BARESIP_PORT = 5081
PASSWORD = "baresip-pass-501"
NUMBER = "+74951234599"
SLUG = "bare"


async def main(workdir: Path) -> dict[str, Any]:
    report: dict[str, Any] = {"ok": False}
    container = await sqlite_container(workdir)
    steps = [
        {"type": "ring", "targets": [{"employee": "601"}], "timeout": 1},
        {"type": "ring", "targets": [{"employee": "501"}], "timeout": 5},
    ]
    _admin, ids = await ring_account(
        container, SLUG, extensions=("501", "601"), password=PASSWORD, number=NUMBER, steps=steps
    )
    config = PbxConfig(sip_port=PBX_PORT, media_timeout=0, digest_algorithms=("MD5",))
    rt = await start_pbx(container, config)
    conf = workdir / "baresip"
    accounts = phone_account("501", SLUG, PASSWORD, PBX_PORT, ";answermode=auto")
    write_config(conf, accounts, port=BARESIP_PORT, rtp_ports="20000-20019")
    log = (workdir / "baresip.log").open("wb")
    proc = await start_baresip(conf, log)
    devices = {"501": Device("501", ids["501"], BARESIP_PORT), "601": Device("601", ids["601"])}
    rig = Rig(container, rt, f"{SLUG}.zvonar", PASSWORD, devices, workdir)
    try:
        for _ in range(200):  # up to 10 s for baresip's REGISTER, challenge and retry
            if rt.lookup(f"sip:501@{SLUG}.zvonar"):
                break
            await asyncio.sleep(0.05)
        bindings = rt.lookup(f"sip:501@{SLUG}.zvonar")
        report["registered"] = [b.contact for b in bindings]
        rig.devices = {"601": devices["601"]}
        await rig.register_all()  # the SIPp phone that will not answer
        rig.devices = devices
        result = await rig.call(NUMBER, {"601": Phone.ring}, talk_ms=1000)
        report.update(
            caller_ok=result.caller_ok,
            caller_log=result.caller_log[-2000:],
            waves=result.waves,
            ends={r.ext: r.end.value if r.end else None for r in result.rings},
            answered=result.answered,
            disposition=result.row.disposition.value if result.row.disposition else None,
            answered_by=str(result.row.answered_by),
            baresip_id=str(ids["501"]),
            talk_seconds=result.row.talk_seconds,
        )
        report["ok"] = True
    except Exception as exc:  # reported, not raised: the test shows the JSON
        report["error"] = repr(exc)
    finally:
        await stop_baresip(proc)
        log.close()
        await rt.stop()
        await container.aclose()  # the journal's writes land before the db goes
    return report


if __name__ == "__main__":
    result = asyncio.run(main(Path(sys.argv[2])))
    Path(sys.argv[1]).write_text(json.dumps(result, indent=1))
