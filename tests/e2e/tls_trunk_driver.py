"""An outbound call over a TLS trunk to a real peer: RFC 3263 locates the carrier by
``_sips._tcp`` SRV, the PBX opens a TLS connection and checks the carrier's certificate
against the carrier's domain (RFC 5922 §4), and baresip — the carrier here — answers.

Everything runs inside ``unshare -n`` (baresip opens sockets beyond loopback), started by
test_tls_baresip.py::

    unshare -n sh -c 'ip link set lo up && exec python -m tests.e2e.tls_trunk_driver OUT DIR'

dnsmasq on loopback (inside the namespace) serves the carrier's zone; employee 101 is a SIPp
phone over UDP dialling 8 383 123-45-67. The report (JSON at OUT) says how the call went.
With the argument ``impostor`` the carrier presents a certificate for another domain: the
PBX must refuse the connection, and the call must fail at once rather than ring anyone. With
``srtp`` the carrier takes secure calls only (baresip's ``mediaenc=srtp-mand``) and the trunk
says so (``srtp``): the call is answered in SRTP. ``srtp-unset`` is the same carrier behind a
trunk that does not say so: the plain RTP offer is refused and the call is not answered.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from tests.e2e import sippkit
from tests.e2e.appkit import sqlite_container
from tests.e2e.baresip_kit import start_baresip, stop_baresip, write_config
from tests.e2e.test_early_media import _cmd
from tests.e2e.test_outbound_transfer import CALLER_XML
from tests.pbx.conftest import PASSWORD, seed_account
from tests.sip.peers.harness import free_port, run_sipp
from tests.support.certs import make_pki
from tests.support.dnsmasq import Zone, dnsmasq
from zvonar.directory.models import Transport, TrunkAuth
from zvonar.directory.schemas import TrunkIn
from zvonar.journal.service import CallFilter
from zvonar.pbx.config import PbxConfig
from zvonar.pbx.runtime import start_pbx

PBX_PORT = 5060
PBX_TLS_PORT = 5061
CARRIER_SIP = 5091  # baresip's UDP/TCP port; its TLS listener is the next one
CARRIER_TLS = CARRIER_SIP + 1
DOMAIN = "carrier.zvonar.test"


async def main(workdir: Path, mode: str = "good") -> dict[str, Any]:
    report: dict[str, Any] = {"ok": False, "mode": mode}
    pki = make_pki(workdir / "pki")
    pbx_leaf = pki.issue("pbx", dns=("pbx.zvonar.test",), ips=("127.0.0.1",))
    # The domain, not the SRV target (sbc1.…), is what the certificate names (RFC 5922 §4).
    names = ("impostor.zvonar.test",) if mode == "impostor" else (DOMAIN,)
    secure_carrier = mode in ("srtp", "srtp-unset")
    carrier_leaf = pki.issue("carrier", dns=names)
    combined = workdir / "carrier.pem"  # baresip wants the chain and the key in one file
    combined.write_bytes(carrier_leaf.cert.read_bytes() + carrier_leaf.key.read_bytes())
    container = await sqlite_container(workdir)
    alpha = await seed_account(container, "alpha")
    await container.directory.create_trunk(
        alpha.principal,
        TrunkIn(
            name="carrier",
            host=DOMAIN,  # no port: _sips._tcp SRV decides
            transport=Transport.tls,
            auth_mode=TrunkAuth.ip,
            allowed_sources=["192.0.2.1"],
            srtp=mode == "srtp",
        ),
    )
    zone = Zone(
        srv=[(f"_sips._tcp.{DOMAIN}", f"sbc1.{DOMAIN}", CARRIER_TLS, 10, 0)],
        hosts=[(f"sbc1.{DOMAIN}", ["127.0.0.1"])],
    )
    conf = workdir / "baresip"
    # The carrier's side of the number dialled: not registering anywhere, answering at once.
    accounts = f"<sip:+73831234567@{DOMAIN};transport=tls>;regint=0;answermode=auto"
    accounts += ";mediaenc=srtp-mand\n" if secure_carrier else "\n"
    extra = [f"sip_certificate {combined}", f"sip_cafile {pki.ca}"]
    if secure_carrier:
        extra.append("module srtp.so")
    write_config(conf, accounts, port=CARRIER_SIP, rtp_ports="20100-20119", extra=extra)
    log = (workdir / "baresip.log").open("wb")
    proc = await start_baresip(conf, log)
    try:
        with dnsmasq(zone, workdir) as dns_port:
            config = PbxConfig(
                sip_port=PBX_PORT,
                sip_tls_port=PBX_TLS_PORT,
                sip_tls_cert=pbx_leaf.cert,
                sip_tls_key=pbx_leaf.key,
                sip_tls_ca=pki.ca,
                media_timeout=0,
                digest_algorithms=("MD5",),
                dns_servers=(("127.0.0.1", dns_port),),
            )
            rt = await start_pbx(container, config)
            try:
                await asyncio.sleep(1.0)  # baresip's TLS listener comes up
                remote = f"127.0.0.1:{PBX_PORT}"
                (workdir / "caller.xml").write_text(CALLER_XML.replace("SDP_HERE", sippkit._SDP))
                auth = ("-au", "101", "-ap", PASSWORD, "-auth_uri", f"83831234567@{remote}")
                loop = asyncio.get_running_loop()
                began = loop.time()
                caller = await run_sipp(
                    _cmd(workdir, remote, "caller", free_port(), *auth),
                    workdir=workdir,
                    name="caller",
                )
                report["caller_ok"] = caller.stats.successful == 1
                report["seconds"] = round(loop.time() - began, 2)
                report["caller_log"] = caller.describe()[-2000:]
                await asyncio.wait_for(rt.b2bua.wait_idle(), 10)
                report["tls_names"] = {f"{h}:{p}": n for (h, p), n in rt.dns.tls_names.items()}
                report["stats"] = rt.runner.all_stats()
            finally:
                await rt.stop()
        (call,) = (await container.journal.list_calls(alpha.principal, CallFilter())).items
        legs = (await container.journal.get_call(alpha.principal, call.id)).legs
        report.update(
            direction=call.direction.value,
            disposition=call.disposition.value if call.disposition else None,
            legs=[leg.end_reason.value if leg.end_reason else None for leg in legs],
            talk_seconds=call.talk_seconds,
        )
        report["ok"] = True
    except Exception as exc:  # reported, not raised: the test shows the JSON
        report["error"] = repr(exc)
    finally:
        await stop_baresip(proc)
        log.close()
        await container.aclose()  # the journal's writes land before the db goes
    report["baresip_log"] = (workdir / "baresip.log").read_text(errors="replace")[-3000:]
    return report


if __name__ == "__main__":
    result = asyncio.run(main(Path(sys.argv[2]), *sys.argv[3:]))
    Path(sys.argv[1]).write_text(json.dumps(result, indent=1))
