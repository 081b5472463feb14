"""SIP over TLS with baresip (a real softphone): it registers over TLS, checking the PBX's
certificate, and a carrier's call (SIPp, UDP) reaches it over that TLS connection. This baresip
has no SRTP module: it refuses the PBX's SRTP offer, and is rung again with plain RTP.

baresip opens sockets beyond loopback, so test_tls_baresip.py runs this inside ``unshare -n``
(a private network namespace with only ``lo``), as schemes_baresip_driver.py does::

    unshare -n sh -c 'ip link set lo up && exec python -m tests.e2e.tls_baresip_driver OUT DIR'

The report (JSON at OUT) says what baresip's binding was, who answered and what the journal
recorded.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from tests.e2e.baresip_kit import start_baresip, stop_baresip, write_config
from tests.e2e.schemes_kit import Device, Rig
from tests.e2e.tls_kit import PBX_TLS_PORT, tls_pbx

BARESIP_PORT = 5081
PASSWORD = "baresip-pass-701"
NUMBER = "+74951234577"
SLUG = "tls"


async def main(workdir: Path) -> dict[str, Any]:
    report: dict[str, Any] = {"ok": False}
    pbx = await tls_pbx(
        workdir, SLUG, number=NUMBER, exts=("701",), password=PASSWORD, ring_seconds=8
    )
    container, rt, pki, emp = pbx.container, pbx.rt, pbx.pki, pbx.ids["701"]
    report["tls_listening"] = rt.tls is not None and rt.tls.port == PBX_TLS_PORT
    conf = workdir / "baresip"
    # Requests go to the PBX's TLS port; the AOR is the employee's (701@tls.zvonar).
    accounts = (
        f"<sip:701@{SLUG}.zvonar;transport=tls>;auth_pass={PASSWORD};"
        f'outbound="sip:127.0.0.1:{PBX_TLS_PORT};transport=tls";regint=120;answermode=auto\n'
    )
    write_config(
        conf, accounts, port=BARESIP_PORT, rtp_ports="20000-20019", extra=[f"sip_cafile {pki.ca}"]
    )
    log = (workdir / "baresip.log").open("wb")
    proc = await start_baresip(conf, log)
    devices = {"701": Device("701", emp, BARESIP_PORT)}
    rig = Rig(container, rt, f"{SLUG}.zvonar", PASSWORD, devices, workdir)
    try:
        for _ in range(200):  # up to 10 s for baresip's REGISTER, challenge and retry
            if rt.lookup(f"sip:701@{SLUG}.zvonar"):
                break
            await asyncio.sleep(0.05)
        bindings = rt.lookup(f"sip:701@{SLUG}.zvonar")
        report["registered"] = [[b.contact, b.transport] for b in bindings]
        report["tls_connections"] = rt.runner.tls.connection_count if rt.runner.tls else 0
        result = await rig.call(NUMBER, {}, talk_ms=1000)
        report.update(
            caller_ok=result.caller_ok,
            caller_log=result.caller_log[-2000:],
            waves=result.waves,
            rings=[[r.ext, r.end.value if r.end else None] for r in result.rings],
            answered=result.answered,
            disposition=result.row.disposition.value if result.row.disposition else None,
            answered_by=str(result.row.answered_by),
            baresip_id=str(emp),
            talk_seconds=result.row.talk_seconds,
            stats=rt.runner.all_stats(),
        )
        report["ok"] = True
    except Exception as exc:  # reported, not raised: the test shows the JSON
        report["error"] = repr(exc)
    finally:
        await stop_baresip(proc)
        log.close()
        await pbx.stop()
    report["baresip_log"] = (workdir / "baresip.log").read_text(errors="replace")[-3000:]
    return report


if __name__ == "__main__":
    result = asyncio.run(main(Path(sys.argv[2])))
    Path(sys.argv[1]).write_text(json.dumps(result, indent=1))
