"""SRTP (SDES, RFC 4568) end to end with baresip, a real softphone running libsrtp: it
registers over TLS with ``mediaenc=srtp-mand`` (it refuses any call in plain RTP) and

1. a carrier (SIPp, UDP, plain RTP, a 440 Hz tone) calls the number: the PBX offers SRTP to
   baresip because it registered over TLS, and relays between the two;
2. baresip calls extension 702 (a SIPp phone, UDP, plain RTP, a 440 Hz tone), offering SRTP
   itself: the PBX answers in SRTP and offers plain RTP to 702. baresip puts the call on hold
   and resumes it (re-INVITEs in SRTP, answered by the PBX on that leg alone), then talks on.

baresip sends a 1000 Hz tone (aufile) and dumps what it decodes (sndfile). Both directions are
checked by ear: the call's recording (made by the PBX from the clear audio) holds the carrier's
or 702's 440 Hz and baresip's 1000 Hz — the PBX decrypted baresip; baresip's own dump of what it
received holds 440 Hz — baresip decrypted the PBX. Runs in ``unshare -n`` like the other
baresip drivers (test_tls_baresip.py); the report is JSON at OUT.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from tests.e2e import sippkit
from tests.e2e.baresip_kit import start_baresip, stop_baresip, write_config
from tests.e2e.schemes_kit import Device, Rig, sipp_cmd
from tests.e2e.tls_kit import PBX_TLS_PORT, recording, tls_pbx, tones
from tests.media.engine.phone import tone_pcm
from tests.sip.peers.harness import start_sipp_bound
from zvonar.calls.events import CallStarted
from zvonar.media.wav import encode_wav, parse_wav

BARESIP_PORT = 5081
CTRL_PORT = 4444
PHONE_PORT = 5090
PASSWORD = "baresip-pass-701"
NUMBER = "+74951234588"
SLUG = "srtp"


def dumps(conf: Path) -> dict[str, Any]:
    """What baresip decoded (sndfile's ``dump-*-dec.wav``), per file."""
    out: dict[str, Any] = {}
    for path in sorted(conf.glob("dump-*-dec.wav")):
        wav = parse_wav(path.read_bytes())
        samples = list(wav.samples())
        if wav.channels == 2:
            samples = samples[0::2]
        if wav.sample_rate == 8000:
            out[path.name] = tones(samples)
        else:
            out[path.name] = {"rate": wav.sample_rate}
    return out


async def control(command: str, params: str = "") -> None:
    """A command to baresip's ctrl_tcp (a netstring of JSON)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", CTRL_PORT)
    body = json.dumps({"command": command, "params": params, "token": command}).encode()
    writer.write(b"%d:%s," % (len(body), body))
    await writer.drain()
    await asyncio.wait_for(reader.read(1), 5)  # baresip answers; the content is not needed
    writer.close()


async def main(workdir: Path) -> dict[str, Any]:
    report: dict[str, Any] = {"ok": False}
    pbx = await tls_pbx(
        workdir, SLUG, number=NUMBER, exts=("701", "702"), password=PASSWORD, ring_seconds=8
    )
    container, rt, pki, ids, p = pbx.container, pbx.rt, pbx.pki, pbx.ids, pbx.principal
    conf = workdir / "baresip"
    conf.mkdir(parents=True)
    tone = conf / "tone1000.wav"
    tone.write_bytes(encode_wav(tone_pcm(1000, 10.0)))
    accounts = (
        f"<sip:701@{SLUG}.zvonar;transport=tls>;auth_pass={PASSWORD};"
        f'outbound="sip:127.0.0.1:{PBX_TLS_PORT};transport=tls";regint=120;answermode=auto;'
        "mediaenc=srtp-mand\n"
    )
    write_config(
        conf,
        accounts,
        port=BARESIP_PORT,
        rtp_ports="20000-20019",
        source=f"aufile,{tone}",
        extra=[
            f"sip_cafile {pki.ca}",
            f"snd_path {conf}",
            f"ctrl_tcp_listen 127.0.0.1:{CTRL_PORT}",
            "module srtp.so",
            "module aufile.so",
            "module sndfile.so",
            "module menu.so",  # the dial and hangup commands
            "module ctrl_tcp.so",
        ],
    )
    log = (workdir / "baresip.log").open("wb")
    proc = await start_baresip(conf, log, seconds=50)
    devices = {"701": Device("701", ids["701"], BARESIP_PORT)}
    rig = Rig(container, rt, f"{SLUG}.zvonar", PASSWORD, devices, workdir)
    phone_rig = Rig(
        container,
        rt,
        f"{SLUG}.zvonar",
        PASSWORD,
        {"702": Device("702", ids["702"], PHONE_PORT)},
        workdir,
    )
    phone = None
    try:
        for _ in range(200):  # up to 10 s for baresip's REGISTER, challenge and retry
            if rt.lookup(f"sip:701@{SLUG}.zvonar"):
                break
            await asyncio.sleep(0.05)
        report["registered"] = [
            [b.contact, b.transport] for b in rt.lookup(f"sip:701@{SLUG}.zvonar")
        ]
        await phone_rig.register_all()
        # 1. The carrier calls the number; baresip answers the PBX's SRTP offer.
        a440 = workdir / "a440.pcap"
        sippkit.write_tone_pcap(a440, 440, 2.0, ssrc=0x1111)
        first = await rig.call(NUMBER, {}, talk_ms=2000, caller_pcap=a440)
        report["inbound"] = {
            "caller_ok": first.caller_ok,
            "caller_log": first.caller_log[-1500:],
            "answered": first.answered,
            "disposition": first.row.disposition.value if first.row.disposition else None,
            "recording": recording(container, first.row.recording_path),
            "srtp": first.row.srtp,
            "legs_srtp": [
                leg.srtp for leg in (await container.journal.get_call(p, first.row.id)).legs
            ],
        }
        # 2. baresip calls 702, offering SRTP; 702 answers in plain RTP. baresip puts the call
        # on hold and resumes it (two re-INVITEs in SRTP) before talking on and hanging up.
        long440 = workdir / "long440.pcap"
        sippkit.write_tone_pcap(long440, 440, 10.0, ssrc=0x2222)
        xml = workdir / "phone702.xml"
        xml.write_text(sippkit.uas_answer(pcap=long440))
        cmd = sipp_cmd("", xml, port=PHONE_PORT, workdir=workdir, name="phone702")
        phone = await start_sipp_bound(cmd, workdir=workdir, port=PHONE_PORT)
        mark = len(rig.bus.events)
        await control("dial", "702")
        await asyncio.sleep(1.2)
        await control("hold")
        await asyncio.sleep(0.8)
        await control("resume")
        await asyncio.sleep(6.0)  # past baresip's first RTCP report (5 s interval)
        await control("hangup")
        await asyncio.wait_for(rt.b2bua.wait_idle(), 10)
        started = [e for e in rig.bus.events[mark:] if isinstance(e, CallStarted)]
        row = await rig.journal_row(started[0].call_id)
        report["outgoing"] = {
            "calls": len(started),
            "disposition": row.disposition.value if row.disposition else None,
            "answered_by": str(row.answered_by),
            "phone702": str(ids["702"]),
            "recording": recording(container, row.recording_path),
            "srtp": row.srtp,
            "legs_srtp": [leg.srtp for leg in (await container.journal.get_call(p, row.id)).legs],
            "rtcp": [
                {
                    "peer_loss": leg.peer_loss,
                    "peer_jitter_ms": leg.peer_jitter_ms,
                    "rtt_ms": leg.rtt_ms,
                }
                for leg in (await container.journal.get_call(p, row.id)).legs
            ],
            "caller_rtcp": {"peer_loss": row.peer_loss, "rtt_ms": row.rtt_ms, "mos": row.mos},
        }
        report["ok"] = True
    except Exception as exc:  # reported, not raised: the test shows the JSON
        report["error"] = repr(exc)
    finally:
        if phone is not None:
            phone.kill()
            await phone.wait()
        await stop_baresip(proc)
        log.close()
        await pbx.stop()
    report["dumps"] = dumps(conf)
    text = (workdir / "baresip.log").read_text(errors="replace")
    report["srtp_enabled"] = text.count("SRTP is Enabled")
    report["srtp_failures"] = text.count("srtp: failed")
    report["held_and_resumed"] = "call: hold sip:702@" in text and "call: resume sip:702@" in text
    # The call's status lines ("[0:00:05] audio=...") are dropped: they would push the rest out.
    report["baresip_log"] = "\n".join(
        line for line in text.splitlines() if line.strip() and "audio=" not in line
    )[-3000:]
    return report


if __name__ == "__main__":
    result = asyncio.run(main(Path(sys.argv[2])))
    Path(sys.argv[1]).write_text(json.dumps(result, indent=1))
