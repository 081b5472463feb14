"""Prompts made from text (prompts/speech.py): espeak-ng speaks the admin's sentence in the
prompt's language and it is stored as an upload would be; bad text, no synthesizer and a
stuck one get clear errors."""

from __future__ import annotations

import math
import shutil
import stat
from array import array
from pathlib import Path

import httpx
import pytest

from tests.conftest import Tenant, make_tenant
from zvonar.accounts.models import Role
from zvonar.container import Container
from zvonar.core.errors import Unavailable
from zvonar.media.prompts import prompt_path
from zvonar.media.wav import parse_wav
from zvonar.prompts import speech

API = "/api/v1/prompts"
ESPEAK = shutil.which("espeak-ng")
needs_espeak = pytest.mark.skipif(
    ESPEAK is None, reason="espeak-ng not installed (Debian package espeak-ng)"
)


def _rms(pcm: bytes) -> float:
    samples = array("h", pcm)
    return math.sqrt(sum(s * s for s in samples) / max(1, len(samples)))


@needs_espeak
async def test_a_sentence_becomes_the_accounts_prompt(
    client: httpx.AsyncClient, container: Container, tenant_a: Tenant, tmp_path: Path
) -> None:
    r = await client.post(
        f"{API}/ru/line_resorts/speech",
        json={"text": "Звонок на линию «Курорты»"},
        headers=tenant_a.headers,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["key"], body["language"]) == ("line_resorts", "ru")
    assert 0.5 < body["seconds"] < 10
    base = container.prompts.account_dir(tenant_a.account_id)
    path = prompt_path("line_resorts", "ru", base_dir=base)
    assert path.is_relative_to(base)
    wav = parse_wav(path.read_bytes())
    assert (wav.sample_rate, wav.channels) == (8000, 1)
    assert _rms(wav.data) > 300  # speech, not silence
    listed = (await client.get(API, headers=tenant_a.headers)).json()
    assert {"key": "line_resorts", "language": "ru", "seconds": body["seconds"]} in listed
    # The text is only ever spoken: an option-like sentence is read out, not obeyed.
    target = tmp_path / "written.wav"
    r = await client.post(
        f"{API}/en/odd/speech", json={"text": f"--help -w {target}"}, headers=tenant_a.headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["seconds"] > 0.5 and not target.exists()


async def test_bad_text_and_roles_get_codes(
    client: httpx.AsyncClient, container: Container, tenant_a: Tenant
) -> None:
    h = tenant_a.headers
    r = await client.post(f"{API}/ru/x/speech", json={"text": "one\x07two"}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_speech_text"
    r = await client.post(f"{API}/ru/x/speech", json={"text": "   "}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_speech_text"
    for bad in ({"text": ""}, {"text": "a" * 501}, {}, {"text": "Привет", "voice": "x"}):
        r = await client.post(f"{API}/ru/x/speech", json=bad, headers=h)
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
    r = await client.post(f"{API}/de/x/speech", json={"text": "Hallo"}, headers=h)
    assert r.status_code == 422
    operator = await make_tenant(container, "ops", role=Role.operator)
    r = await client.post(f"{API}/ru/x/speech", json={"text": "Привет"}, headers=operator.headers)
    assert r.status_code == 403


async def test_no_synthesizer_is_a_503(
    client: httpx.AsyncClient, tenant_a: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(speech.shutil, "which", lambda _name: None)
    r = await client.post(f"{API}/en/x/speech", json={"text": "Hello"}, headers=tenant_a.headers)
    assert r.status_code == 503 and r.json()["error"]["code"] == "speech_unavailable"


async def test_a_stuck_or_failing_synthesizer_is_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stuck = tmp_path / "espeak-ng"
    stuck.write_text("#!/bin/sh\nexec sleep 30\n")
    stuck.chmod(stuck.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(speech.shutil, "which", lambda _name: str(stuck))
    with pytest.raises(Unavailable, match="too long"):
        await speech.synthesize("Hello", "en", limit=0.3)
    stuck.write_text("#!/bin/sh\necho broken voice >&2\nexit 1\n")
    with pytest.raises(Unavailable, match="broken voice"):
        await speech.synthesize("Hello", "en")
