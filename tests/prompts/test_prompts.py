"""Accounts upload their own prompts; calls then play them instead of the defaults."""

from __future__ import annotations

import math
import struct

import httpx

from tests.conftest import Tenant, make_tenant
from zvonar.accounts.models import Role
from zvonar.container import Container
from zvonar.media.prompts import prompt_path
from zvonar.media.wav import parse_wav

API = "/api/v1/prompts"


def _wav_44k_stereo(freq: float, seconds: float) -> bytes:
    rate, n = 44100, int(44100 * seconds)
    frames = b"".join(
        struct.pack("<hh", s, s)
        for s in (int(12000 * math.sin(2 * math.pi * freq * i / rate)) for i in range(n))
    )
    header = b"RIFF" + struct.pack("<I", 36 + len(frames)) + b"WAVEfmt "
    header += struct.pack("<IHHIIHH", 16, 1, 2, rate, rate * 4, 4, 16)
    return header + b"data" + struct.pack("<I", len(frames)) + frames


async def test_upload_list_play_delete(
    client: httpx.AsyncClient, container: Container, tenant_a: Tenant
) -> None:
    r = await client.put(
        f"{API}/ru/greeting",
        content=_wav_44k_stereo(440, 1.0),
        headers={**tenant_a.headers, "Content-Type": "audio/wav"},
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"key": "greeting", "language": "ru", "seconds": 1.0}
    listed = (await client.get(API, headers=tenant_a.headers)).json()
    assert listed == [{"key": "greeting", "language": "ru", "seconds": 1.0}]

    base = container.prompts.account_dir(tenant_a.account_id)
    path = prompt_path("greeting", "ru", base_dir=base)
    assert path.is_relative_to(base)  # the account's own, not the default
    wav = parse_wav(path.read_bytes())
    assert (wav.sample_rate, wav.channels) == (8000, 1)
    # Russian callers of other accounts, and other languages, still get the defaults.
    assert not prompt_path("greeting", "en", base_dir=base).is_relative_to(base)

    assert (await client.delete(f"{API}/ru/greeting", headers=tenant_a.headers)).status_code == 204
    assert not prompt_path("greeting", "ru", base_dir=base).is_relative_to(base)
    r = await client.delete(f"{API}/ru/greeting", headers=tenant_a.headers)
    assert r.status_code == 404


async def test_bad_uploads_get_codes(
    client: httpx.AsyncClient, container: Container, tenant_a: Tenant
) -> None:
    h = {**tenant_a.headers, "Content-Type": "audio/wav"}
    r = await client.put(f"{API}/ru/greeting", content=b"not a wav at all", headers=h)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_audio"
    r = await client.put(f"{API}/de/greeting", content=_wav_44k_stereo(440, 0.5), headers=h)
    assert r.status_code == 422
    r = await client.put(f"{API}/ru/../x", content=_wav_44k_stereo(440, 0.5), headers=h)
    assert r.status_code in (404, 422)
    operator = await make_tenant(container, "ops", role=Role.operator)
    r = await client.put(
        f"{API}/ru/greeting",
        content=_wav_44k_stereo(440, 0.5),
        headers={**operator.headers, "Content-Type": "audio/wav"},
    )
    assert r.status_code == 403
