"""SRTP (SDES, RFC 4568) with Linphone, a second real softphone with its own media stack
(mediastreamer2): linphonec registers over TLS, checking the PBX's chain, with SRTP
mandatory, and a carrier's call (SIPp, UDP, plain RTP, 440 Hz) reaches it. The PBX offers it
SRTP (it registered over TLS) and relays between the two. Runs in ``unshare -n`` like the
baresip drivers (test_tls_baresip.py); the report is JSON at OUT.

Checked by ear, as the baresip case is: Linphone (no sound card: ``soundcard use files``) plays
1000 Hz into the call and records what it hears. The PBX's recording holds Linphone's 1000 Hz
(the PBX decrypted it) and Linphone's recording the carrier's 440 Hz (Linphone decrypted the
PBX); the journal says the leg was SRTP, with a MOS from the packets whose tags checked out.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
from pathlib import Path
from typing import Any

from tests.e2e import sippkit
from tests.e2e.appkit import sqlite_container
from tests.e2e.schemes_kit import Device, Rig
from tests.e2e.transfer_linphone_driver import Linphone, until
from tests.media.engine.phone import tone_pcm
from tests.support.certs import make_pki
from zvonar.accounts.access import Principal
from zvonar.accounts.models import Role
from zvonar.calls.events import LegEnded
from zvonar.directory.schemas import EmployeeIn, NumberIn
from zvonar.media.goertzel import goertzel_power
from zvonar.media.wav import encode_wav, parse_wav
from zvonar.pbx.config import PbxConfig
from zvonar.pbx.runtime import start_pbx

PBX_PORT = 5060
PBX_TLS_PORT = 5061
LINPHONE_PORT = 5095
PASSWORD = "linphone-pass-701"
NUMBER = "+74951234599"
SLUG = "linphone"  # no "srtp" in it: the log is searched for that word
REALM = f"{SLUG}.zvonar"


def power(samples: list[float], freq: float, rate: int) -> float:
    return goertzel_power(samples, 2 * math.cos(2 * math.pi * freq / rate))


def tones(samples: list[float], rate: int = 8000) -> dict[str, float]:
    return {
        "440": power(samples, 440, rate),
        "1000": power(samples, 1000, rate),
        "loud": sum(abs(v) > 0.05 for v in samples),
    }


def recording(container: Any, stored: str | None) -> dict[str, Any]:
    if stored is None:
        return {}
    wav = parse_wav((container.settings.data_dir / stored).read_bytes())
    samples = list(wav.samples())
    return {"left": tones(samples[0::2]), "right": tones(samples[1::2])}


def heard_by_linphone(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    wav = parse_wav(path.read_bytes())
    samples = list(wav.samples())[:: wav.channels]
    return {"rate": wav.sample_rate, **tones(samples, wav.sample_rate)}


def write_config(path: Path, ca: Path) -> None:
    """linphonec: 701 over TLS to the PBX, SRTP mandatory. The PBX's chain is checked against
    the test CA; its name is not: belle-sip (mbedtls) matches no IP address SAN, and the
    proxy here is 127.0.0.1 (TLS name checks are baresip's part, test_tls_baresip.py)."""
    path.write_text(
        f"""[sip]
sip_port=0
sip_tcp_port=0
sip_tls_port={LINPHONE_PORT}
default_proxy=0
register_only_when_network_is_up=0
root_ca={ca}
verify_server_certs=1
verify_server_cn=0
media_encryption=srtp
media_encryption_mandatory=1
[rtp]
audio_rtp_port=17000
[net]
firewall_policy=0
[sound]
echocancellation=0
[proxy_0]
reg_proxy=<sip:127.0.0.1:{PBX_TLS_PORT};transport=tls>
reg_route=<sip:127.0.0.1:{PBX_TLS_PORT};transport=tls;lr>
reg_identity="Agent" <sip:701@{REALM}>
reg_expires=600
reg_sendregister=1
publish=0
[auth_info_0]
username=701
passwd={PASSWORD}
realm={REALM}
domain={REALM}
"""
    )


async def main(workdir: Path) -> dict[str, Any]:
    report: dict[str, Any] = {"ok": False}
    pki = make_pki(workdir / "pki")
    leaf = pki.issue("pbx", dns=(REALM,), ips=("127.0.0.1",))
    container = await sqlite_container(workdir)
    account = await container.accounts.create_account("Linphone", SLUG)
    p = Principal(account_id=account.id, role=Role.admin)
    made = await container.directory.create_employee(
        p, EmployeeIn(name="Emp 701", extension="701", sip_password=PASSWORD)
    )
    emp = made.view.employee.id
    steps = [{"type": "ring", "targets": [{"employee": "701"}], "timeout": 10}]
    scheme = await container.routing.create_scheme(
        p, "Linphone", {"branches": {"working": steps, "off": steps}, "final": {"type": "hangup"}}
    )
    number = await container.directory.add_number(p, NumberIn(number=NUMBER, label="Linphone"))
    await container.routing.assign(p, number.id, scheme.id)
    config = PbxConfig(
        sip_port=PBX_PORT,
        sip_tls_port=PBX_TLS_PORT,
        sip_tls_cert=leaf.cert,
        sip_tls_key=leaf.key,
        sip_tls_ca=pki.ca,
        media_timeout=0,
        digest_algorithms=("MD5",),
    )
    rt = await start_pbx(container, config)
    rc = workdir / "linphonerc"
    write_config(rc, pki.ca)
    home = workdir / "home"  # linphonec keeps its database and logs under HOME
    (home / ".local" / "share" / "linphone").mkdir(parents=True)
    log = workdir / "linphone.log"
    proc = await asyncio.create_subprocess_exec(
        "linphonec", "-c", str(rc), "-a", "-S", "-d", "6", "-l", str(log),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    phone = Linphone(proc)
    rig = Rig(container, rt, REALM, PASSWORD, {"701": Device("701", emp, LINPHONE_PORT)}, workdir)
    try:
        # Its account registers by itself over TLS (the proxy of its configuration); no sound
        # card here: it plays a WAV into the call and records what it hears into another.
        phone.send("soundcard use files")
        await until(lambda: rt.lookup(f"sip:701@{REALM}"), 15, "linphonec to register")
        report["registered"] = [[b.contact, b.transport] for b in rt.lookup(f"sip:701@{REALM}")]
        a440 = workdir / "a440.pcap"
        sippkit.write_tone_pcap(a440, 440, 3.0, ssrc=0x1111)
        tone, heard = workdir / "tone1000.wav", workdir / "heard.wav"
        tone.write_bytes(encode_wav(tone_pcm(1000, 10.0)))
        mark = len(rig.bus.events)
        call = asyncio.ensure_future(rig.call(NUMBER, {}, talk_ms=3000, caller_pcap=a440))
        await phone.saw("Call 1", "connected", what="linphonec to answer")
        phone.send(f"play {tone}")
        phone.send(f"record {heard}")
        result = await call
        ended = [e for e in rig.bus.events[mark:] if isinstance(e, LegEnded)]
        legs = (await container.journal.get_call(p, result.row.id)).legs
        report.update(
            caller_ok=result.caller_ok,
            caller_log=result.caller_log[-1500:],
            rings=[[r.ext, r.end.value if r.end else None] for r in result.rings],
            disposition=result.row.disposition.value if result.row.disposition else None,
            legs_srtp=[leg.srtp for leg in legs],
            leg_mos=[e.mos for e in ended],
            recording=recording(container, result.row.recording_path),
        )
        report["ok"] = True
    except Exception as exc:  # reported, not raised: the test shows the JSON
        report["error"] = repr(exc)
    finally:
        await phone.stop()
        await rt.stop()
        await container.journal.aclose()
        await container.db.dispose()
    report["heard"] = heard_by_linphone(workdir / "heard.wav")
    report["linphone_out"] = "\n".join(phone.lines[-40:])
    text = log.read_text(errors="replace") if log.exists() else ""
    lines = text.splitlines()
    negotiated = "Negotiated media encryption is LinphoneMediaEncryptionSRTP"
    report["negotiated_srtp"] = any(negotiated in x for x in lines)
    # An error line of its media stack about SRTP (libsrtp refusing a packet, a bad key).
    errors = (x.split("-error-", 1)[1] for x in lines if "-error-" in x)
    report["srtp_errors"] = [x[:200] for x in errors if "srtp" in x.lower()][-10:]
    return report


if __name__ == "__main__":
    result = asyncio.run(main(Path(sys.argv[2])))
    Path(sys.argv[1]).write_text(json.dumps(result, indent=1))
