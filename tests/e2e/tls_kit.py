"""The PBX of the TLS and SRTP end-to-end drivers, and how a call they made sounded.

``tls_pbx``: a throwaway CA; an account whose number rings its first employee; the PBX on UDP
5060 and TLS 5061 with a certificate for the account's domain and 127.0.0.1, checking peers
against that CA. ``tones``/``recording``: how loud 440 and 1000 Hz are in the audio a call left
behind (the PBX's stereo recording, a phone's own)."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.appkit import ring_account, sqlite_container
from tests.support.certs import Pki, make_pki
from zvonar.accounts.access import Principal
from zvonar.container import Container
from zvonar.media.goertzel import goertzel_power
from zvonar.media.wav import parse_wav
from zvonar.pbx.config import PbxConfig
from zvonar.pbx.runtime import PbxRuntime, start_pbx

__all__ = ["PBX_PORT", "PBX_TLS_PORT", "TlsPbx", "phone_recording", "recording", "tls_pbx", "tones"]

PBX_PORT = 5060
PBX_TLS_PORT = 5061


@dataclass
class TlsPbx:
    pki: Pki
    container: Container
    rt: PbxRuntime
    principal: Principal
    ids: dict[str, uuid.UUID]  # extension -> employee id
    realm: str

    async def stop(self) -> None:
        await self.rt.stop()
        await self.container.aclose()  # the journal's writes land before the db goes


async def tls_pbx(
    workdir: Path,
    slug: str,
    *,
    number: str,
    exts: tuple[str, ...],
    password: str,
    ring_seconds: int,
) -> TlsPbx:
    """See the module docstring: ``number`` rings ``exts[0]`` for ``ring_seconds``; every
    extension's SIP password is ``password``."""
    realm = f"{slug}.zvonar"
    pki = make_pki(workdir / "pki")
    leaf = pki.issue("pbx", dns=(realm,), ips=("127.0.0.1",))
    container = await sqlite_container(workdir)
    steps = [{"type": "ring", "targets": [{"employee": exts[0]}], "timeout": ring_seconds}]
    p, ids = await ring_account(
        container, slug, extensions=exts, password=password, number=number, steps=steps
    )
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
    return TlsPbx(pki, container, rt, p, ids, realm)


def tones(samples: list[float], rate: int = 8000, *, tail: bool = True) -> dict[str, Any]:
    """How loud 440 and 1000 Hz are, and how much of it is sound at all; ``tail``: the same of
    its last second too (after a hold and resume, what still gets through)."""

    def power(freq: float) -> float:
        return goertzel_power(samples, 2 * math.cos(2 * math.pi * freq / rate))

    heard: dict[str, Any] = {
        "440": power(440),
        "1000": power(1000),
        "loud": sum(abs(v) > 0.05 for v in samples),
    }
    if tail:
        heard["tail"] = tones(samples[-rate:], rate, tail=False)
    return heard


def recording(container: Container, stored: str | None) -> dict[str, Any]:
    """``tones`` of each channel of the PBX's recording ``stored`` (caller left)."""
    if stored is None:
        return {}
    wav = parse_wav((container.settings.data_dir / stored).read_bytes())
    samples = list(wav.samples())
    return {"left": tones(samples[0::2]), "right": tones(samples[1::2])}


def phone_recording(path: Path) -> dict[str, Any]:
    """``tones`` of the first channel of a WAV a phone recorded (``{}`` if it made none)."""
    if not path.exists():
        return {}
    wav = parse_wav(path.read_bytes())
    samples = list(wav.samples())[:: wav.channels]
    return {"rate": wav.sample_rate, **tones(samples, wav.sample_rate)}
