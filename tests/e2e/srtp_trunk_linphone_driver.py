"""A delayed offer from a carrier that takes secure calls only, with a real peer: linphonec is
the carrier. It calls the account's number over TLS from an IP-auth trunk whose ``srtp`` is
set, with an INVITE that has no SDP (``sdp_200_ack``, RFC 3261 §13.2.1) and SRTP mandatory.
The PBX's 200 must offer SRTP only (RTP/SAVP with its SDES key, RFC 4568), Linphone answers
in its ACK, and employee 101 (SIPp over UDP, plain RTP, 440 Hz) talks with it. Runs in
``unshare -n`` like the other TLS drivers (test_srtp_linphone.py); the report is JSON at OUT.

Checked by ear: Linphone plays 1000 Hz into the call and records what it hears. The PBX's
recording holds Linphone's 1000 Hz on the caller's channel (the PBX decrypted what Linphone
sent with the keys of the answer in the ACK) and Linphone's recording 101's 440 Hz (Linphone
decrypted the PBX with the key of our offer). With the argument ``plain-trunk`` the trunk does
not say it requires SRTP: the PBX offers plain RTP, which Linphone (SRTP mandatory) cannot
take, and the call is not talked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import select

from tests.e2e import sippkit
from tests.e2e.linphone_kit import logged_messages, start_linphone, until, write_linphonerc
from tests.e2e.schemes_kit import Device, Rig, sipp_cmd
from tests.e2e.tls_kit import PBX_TLS_PORT, phone_recording, recording, tls_pbx
from tests.media.engine.phone import tone_pcm
from tests.sip.peers.harness import start_sipp_bound
from zvonar.directory.models import Transport, TrunkAuth
from zvonar.directory.schemas import TrunkIn
from zvonar.journal.models import CallRecord
from zvonar.media.wav import encode_wav

CARRIER_PORT = 5097
PASSWORD = "trunk-pass-101"
NUMBER = "+74951234598"
CALLER = "+79161112233"
SLUG = "secure"


def write_config(path: Path, ca: Path) -> None:
    """linphonec as a carrier: no account, TLS, SRTP mandatory, INVITEs without SDP. The
    PBX's chain is checked against the test CA, not its name (see srtp_linphone_driver)."""
    write_linphonerc(
        path,
        sip=(
            "sip_port=0",
            "sip_tcp_port=0",
            f"sip_tls_port={CARRIER_PORT}",
            f"root_ca={ca}",
            "verify_server_certs=1",
            "verify_server_cn=0",
            "media_encryption=srtp",
            "media_encryption_mandatory=1",
            "sdp_200_ack=1",
            f'contact="Carrier" <sip:{CALLER}@127.0.0.1>',
        ),
        proxy=None,
    )


def sdp_lines(message: str) -> list[str]:
    """The SDP body's m= and a=crypto lines."""
    body = message[message.find("v=0") :] if "v=0" in message else ""
    return [x.strip() for x in body.splitlines() if x.startswith(("m=", "a=crypto:"))]


async def main(workdir: Path, mode: str = "srtp") -> dict[str, Any]:
    report: dict[str, Any] = {"ok": False, "mode": mode}
    pbx = await tls_pbx(
        workdir, SLUG, number=NUMBER, exts=("101",), password=PASSWORD, ring_seconds=10
    )
    container, rt, p = pbx.container, pbx.rt, pbx.principal
    # The carrier: its calls come from 127.0.0.1 over TLS; ``srtp``: it takes secure calls only.
    await container.directory.create_trunk(
        p,
        TrunkIn(
            name="Carrier",
            host="127.0.0.1",
            transport=Transport.tls,
            srtp=mode == "srtp",
            auth_mode=TrunkAuth.ip,
            allowed_sources=["127.0.0.1"],
        ),
    )
    rc = workdir / "linphonerc"
    write_config(rc, pbx.pki.ca)
    log = workdir / "linphone.log"
    device = Device("101", pbx.ids["101"])
    rig = Rig(container, rt, pbx.realm, PASSWORD, {"101": device}, workdir)
    phone = await start_linphone(workdir, rc, log)
    callee: asyncio.subprocess.Process | None = None
    try:
        phone.send("soundcard use files")
        await rig.register_all()
        a440 = workdir / "a440.pcap"
        sippkit.write_tone_pcap(a440, 440, 4.0, ssrc=0x1111)
        xml = workdir / "answer101.xml"
        xml.write_text(sippkit.uas_answer(pcap=a440))
        cmd = sipp_cmd("", xml, port=device.port, workdir=workdir, name="answer101")
        callee = await start_sipp_bound(cmd, workdir=workdir, port=device.port)
        tone, heard = workdir / "tone1000.wav", workdir / "heard.wav"
        tone.write_bytes(encode_wav(tone_pcm(1000, 10.0)))
        phone.send(f"call sip:{NUMBER}@127.0.0.1:{PBX_TLS_PORT};transport=tls")
        if mode == "srtp":
            await phone.saw("connected", what="the call to be answered", within=15)
            phone.send(f"play {tone}")
            phone.send(f"record {heard}")
            await asyncio.sleep(3.0)
            phone.send("terminate")

        def over() -> bool:  # "Call 1 with … ended (…)." or "Call 1 with … error."
            lines = (x for x in phone.lines if x.startswith("Call 1 "))
            return any(" ended " in x or x.endswith(" error.") for x in lines)

        await until(over, 20, "linphonec's call to end")
        await asyncio.wait_for(rt.b2bua.wait_idle(), 20)
        row = None
        for _ in range(100):
            async with container.db.read() as s:
                row = await s.scalar(select(CallRecord).where(CallRecord.dialed == NUMBER))
            if row is not None and row.ended_at is not None:
                break
            await asyncio.sleep(0.05)
        assert row is not None and row.ended_at is not None, "the call never closed"
        report.update(
            disposition=row.disposition.value if row.disposition else None,
            caller=row.caller,
            srtp=row.srtp,
            talk_seconds=row.talk_seconds,
            recording=recording(container, row.recording_path),
        )
        report["ok"] = True
    except Exception as exc:  # reported, not raised: the test shows the JSON
        report["error"] = repr(exc)
    finally:
        if callee is not None:
            with contextlib.suppress(ProcessLookupError):
                callee.kill()
            await callee.wait()
        await phone.stop()
        await pbx.stop()
    report["heard"] = phone_recording(workdir / "heard.wav")
    report["linphone_out"] = "\n".join(phone.lines[-40:])
    text = log.read_text(errors="replace") if log.exists() else ""
    negotiated = "Negotiated media encryption is LinphoneMediaEncryptionSRTP"
    report["negotiated_srtp"] = negotiated in text
    errors = (x.split("-error-", 1)[1] for x in text.splitlines() if "-error-" in x)
    report["srtp_errors"] = [x[:200] for x in errors if "srtp" in x.lower()][-10:]
    sent = logged_messages(text, "sent")
    invites = [m for m in sent if m.startswith("INVITE ")]
    report["invite_had_sdp"] = ["v=0" in m for m in invites]
    acks = [sdp_lines(m) for m in sent if m.startswith("ACK ")]
    report["ack_answer"] = next((lines for lines in acks if lines), [])
    received = logged_messages(text, "received")
    oks = [m for m in received if m.startswith("SIP/2.0 200") and " INVITE" in m]
    report["our_offer"] = next((sdp_lines(m) for m in oks if "v=0" in m), [])
    # (read as text: its lines end in "\n")
    byes = [m for m in received if re.search(r"^CSeq: \d+ BYE$", m, re.MULTILINE)]
    report["bye_answers"] = [m.split("\n", 1)[0] for m in byes]
    return report


if __name__ == "__main__":
    result = asyncio.run(main(Path(sys.argv[2]), *sys.argv[3:]))
    Path(sys.argv[1]).write_text(json.dumps(result, indent=1))
