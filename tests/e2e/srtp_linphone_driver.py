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
import sys
from pathlib import Path
from typing import Any

from tests.e2e import sippkit
from tests.e2e.linphone_kit import logged_messages, start_linphone, until, write_linphonerc
from tests.e2e.schemes_kit import Device, Rig
from tests.e2e.tls_kit import PBX_TLS_PORT, phone_recording, recording, tls_pbx
from tests.media.engine.phone import tone_pcm
from zvonar.calls.events import LegEnded
from zvonar.media.wav import encode_wav

LINPHONE_PORT = 5095
PASSWORD = "linphone-pass-701"
NUMBER = "+74951234599"
SLUG = "linphone"  # no "srtp" in it: the log is searched for that word
REALM = f"{SLUG}.zvonar"


def write_config(path: Path, ca: Path) -> None:
    """linphonec: 701 over TLS to the PBX, SRTP mandatory. The PBX's chain is checked against
    the test CA; its name is not: belle-sip (mbedtls) matches no IP address SAN, and the
    proxy here is 127.0.0.1 (TLS name checks are baresip's part, test_tls_baresip.py)."""
    write_linphonerc(
        path,
        sip=(
            "sip_port=0",
            "sip_tcp_port=0",
            f"sip_tls_port={LINPHONE_PORT}",
            f"root_ca={ca}",
            "verify_server_certs=1",
            "verify_server_cn=0",
            "media_encryption=srtp",
            "media_encryption_mandatory=1",
        ),
        proxy=f"sip:127.0.0.1:{PBX_TLS_PORT};transport=tls",
        identity=f'"Agent" <sip:701@{REALM}>',
        username="701",
        password=PASSWORD,
        realm=REALM,
        rtp=("rtcp_mux=1",),  # RTCP on the RTP port (RFC 5761), if the PBX agrees
    )


async def main(workdir: Path) -> dict[str, Any]:
    report: dict[str, Any] = {"ok": False}
    pbx = await tls_pbx(
        workdir, SLUG, number=NUMBER, exts=("701",), password=PASSWORD, ring_seconds=10
    )
    container, rt, p, emp = pbx.container, pbx.rt, pbx.principal, pbx.ids["701"]
    rc = workdir / "linphonerc"
    write_config(rc, pbx.pki.ca)
    log = workdir / "linphone.log"
    phone = await start_linphone(workdir, rc, log)
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
            legs_rtcp=[[leg.peer_loss, leg.rtt_ms] for leg in legs],
            recording=recording(container, result.row.recording_path),
        )
        report["ok"] = True
    except Exception as exc:  # reported, not raised: the test shows the JSON
        report["error"] = repr(exc)
    finally:
        await phone.stop()
        await pbx.stop()
    report["heard"] = phone_recording(workdir / "heard.wav")
    report["linphone_out"] = "\n".join(phone.lines[-40:])
    text = log.read_text(errors="replace") if log.exists() else ""
    lines = text.splitlines()
    negotiated = "Negotiated media encryption is LinphoneMediaEncryptionSRTP"
    report["negotiated_srtp"] = any(negotiated in x for x in lines)
    # An error line of its media stack about SRTP (libsrtp refusing a packet, a bad key).
    errors = (x.split("-error-", 1)[1] for x in lines if "-error-" in x)
    report["srtp_errors"] = [x[:200] for x in errors if "srtp" in x.lower()][-10:]
    # Its 200 OK agreed to RTCP on the RTP port (RFC 5761) that the PBX offered.
    sent = logged_messages(text, "sent")
    answers = [m for m in sent if m.startswith("SIP/2.0 200") and "m=audio" in m]
    report["answered_rtcp_mux"] = bool(answers) and all("a=rtcp-mux" in m for m in answers)
    return report


if __name__ == "__main__":
    result = asyncio.run(main(Path(sys.argv[2])))
    Path(sys.argv[1]).write_text(json.dumps(result, indent=1))
