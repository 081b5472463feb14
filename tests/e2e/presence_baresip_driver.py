"""baresip's buddy list watches a colleague through the PBX (RFC 3856 presence, PIDF): the
PBX, baresip and SIPp in one namespace (test_presence_baresip.py runs this inside
``unshare -n``, as schemes_baresip_driver.py explains)::

    unshare -n sh -c 'ip link set lo up && exec python -m tests.e2e.presence_baresip_driver OUT DIR'

baresip registers as 501 and, its contact 601 marked ``;presence=p2p``, subscribes to
``sip:601@pres.zvonar`` (digest, as a phone). 601 is a SIPp phone: unregistered first, then
registered, then answering a customer's call and talking 2 s, then in do not disturb for a
while. The report (JSON at OUT) lists the statuses baresip itself logged for 601, in order.
"""

from __future__ import annotations

import asyncio
import json
import re
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
NUMBER = "+74951234598"
SLUG = "pres"
# baresip's own line for each change of a contact's status it takes from a NOTIFY.
_CHANGE = re.compile(r"<sip:601@[^>]*> changed status from (\S+) to (\S+)")


def statuses(log: Path) -> list[str]:
    """601's statuses as baresip logged them: where the first change came from (what our
    first NOTIFY said), then each status it changed to (colour codes dropped)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", log.read_text(errors="replace"))
    changes = _CHANGE.findall(text)
    return [changes[0][0], *(to for _, to in changes)] if changes else []


async def until(log: Path, status: str, seconds: float = 10.0) -> bool:
    for _ in range(int(seconds / 0.05)):
        seen = statuses(log)
        if seen and seen[-1] == status:
            return True
        await asyncio.sleep(0.05)
    return False


async def subscribed(rt: Any, seconds: float = 10.0) -> bool:
    """baresip's SUBSCRIBE (1 s after its start, then digest) was taken, and our first NOTIFY
    answered."""
    for _ in range(int(seconds / 0.05)):
        if rt.blf is not None and rt.blf.count == 1:
            await asyncio.sleep(0.3)
            return True
        await asyncio.sleep(0.05)
    return False


async def main(workdir: Path) -> dict[str, Any]:
    report: dict[str, Any] = {"ok": False}
    container = await sqlite_container(workdir)
    admin, ids = await ring_account(
        container,
        SLUG,
        extensions=("501", "601"),
        password=PASSWORD,
        number=NUMBER,
        steps=[{"type": "ring", "targets": [{"employee": "601"}], "timeout": 10}],
    )
    config = PbxConfig(sip_port=PBX_PORT, media_timeout=0, digest_algorithms=("MD5",))
    rt = await start_pbx(container, config)
    conf = workdir / "baresip"
    accounts = phone_account("501", SLUG, PASSWORD, PBX_PORT, "")
    write_config(
        conf,
        accounts,
        port=BARESIP_PORT,
        rtp_ports="20020-20039",
        extra=("module contact.so", "module presence.so"),
    )
    (conf / "contacts").write_text(f'"Emp 601" <sip:601@{SLUG}.zvonar>;presence=p2p\n')
    log_path = workdir / "baresip.log"
    log = log_path.open("wb")
    proc = await start_baresip(conf, log, seconds=50)
    rig = Rig(
        container, rt, f"{SLUG}.zvonar", PASSWORD, {"601": Device("601", ids["601"])}, workdir
    )
    try:
        report["subscribed"] = await subscribed(rt)
        await rig.register_all()  # 601's phone comes
        report["online"] = await until(log_path, "Online")
        talk = asyncio.create_task(rig.call(NUMBER, {"601": Phone.answer}, talk_ms=2000))
        report["busy"] = await until(log_path, "Busy")
        result = await talk
        report["call_ok"] = result.caller_ok
        report["answered"] = result.answered
        report["online_after"] = await until(log_path, "Online")
        # Do not disturb (as 601's *78 sets it): busy to the buddy list until it is off.
        directory = container.directory
        await directory.set_dnd(admin.account_id, True, employee_id=ids["601"])
        report["dnd"] = await until(log_path, "Busy")
        await directory.set_dnd(admin.account_id, False, employee_id=ids["601"])
        report["dnd_off"] = await until(log_path, "Online")
        report["statuses"] = statuses(log_path)
        report["ok"] = True
    except Exception as exc:  # reported, not raised: the test shows the JSON
        report["error"] = repr(exc)
    finally:
        await stop_baresip(proc)
        log.close()
        report["log"] = log_path.read_text(errors="replace")[-3000:]
        await rt.stop()
        await container.aclose()
    return report


if __name__ == "__main__":
    result = asyncio.run(main(Path(sys.argv[2])))
    Path(sys.argv[1]).write_text(json.dumps(result, indent=1))
