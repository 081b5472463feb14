from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.media.engine.phone import dominant
from zvonar.media.engine import PromptNotFoundError
from zvonar.media.prompts import (
    DEFAULT_DIR,
    LANGUAGES,
    PROMPT_KEYS,
    hold_music_path,
    prompt_path,
)
from zvonar.media.wav import WavFormat, encode_wav, parse_wav

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("key", PROMPT_KEYS)
def test_every_default_prompt_is_8k_mono_16bit_speech(key: str, lang: str) -> None:
    path = prompt_path(key, lang)
    assert path == DEFAULT_DIR / lang / f"{key}.wav"
    wav = parse_wav(path.read_bytes())
    assert (wav.format, wav.channels, wav.sample_rate, wav.bits_per_sample) == (
        WavFormat.PCM,
        1,
        8000,
        16,
    )
    assert 0.8 <= wav.duration <= 5.0
    samples = wav.samples()
    assert max(abs(v) for v in samples) > 0.3  # normalised, not silence


def test_generated_files_stay_commit_sized() -> None:
    total = sum(p.stat().st_size for p in DEFAULT_DIR.rglob("*.wav"))
    # three languages, numbers for position and wait, the mobile's "press 1" and the short
    # do-not-disturb confirmations included
    assert total < 2816 * 1024


def test_script_text_table_covers_every_key_and_language() -> None:
    spec = importlib.util.spec_from_file_location(
        "make_prompts", ROOT / "scripts" / "make_prompts.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert set(module.TEXTS) == set(PROMPT_KEYS)
    for texts in module.TEXTS.values():
        assert set(texts) == set(LANGUAGES)


def test_language_fallback_and_region_tags() -> None:
    assert prompt_path("greeting", "de") == DEFAULT_DIR / "en" / "greeting.wav"
    assert prompt_path("greeting", "ru-RU") == DEFAULT_DIR / "ru" / "greeting.wav"
    assert prompt_path("greeting", "UK_ua") == DEFAULT_DIR / "uk" / "greeting.wav"
    with pytest.raises(PromptNotFoundError):
        prompt_path("no_such_prompt", "en")
    with pytest.raises(PromptNotFoundError):
        prompt_path("../en/greeting", "en")


def test_account_directory_overrides_defaults(tmp_path: Path) -> None:
    own = tmp_path / "ru" / "greeting.wav"
    own.parent.mkdir()
    own.write_bytes(encode_wav(bytes(1600)))
    english_only = tmp_path / "en" / "all_busy.wav"
    english_only.parent.mkdir()
    english_only.write_bytes(encode_wav(bytes(1600)))
    assert prompt_path("greeting", "ru", base_dir=tmp_path) == own
    # The caller's language wins over the account's own recording in another language.
    assert prompt_path("all_busy", "ru", base_dir=tmp_path) == DEFAULT_DIR / "ru" / "all_busy.wav"
    assert prompt_path("all_busy", "de", base_dir=tmp_path) == english_only
    assert prompt_path("off_hours", "ru", base_dir=tmp_path) == DEFAULT_DIR / "ru" / "off_hours.wav"
    assert hold_music_path(base_dir=tmp_path) == DEFAULT_DIR / "hold_music.wav"
    (tmp_path / "hold_music.wav").write_bytes(encode_wav(bytes(1600)))
    assert hold_music_path(base_dir=tmp_path) == tmp_path / "hold_music.wav"


def test_hold_music_is_tonal_and_loops_without_a_click() -> None:
    wav = parse_wav(hold_music_path().read_bytes())
    assert (wav.channels, wav.sample_rate) == (1, 8000)
    assert 3.0 <= wav.duration <= 10.0
    samples = [v * 32768 for v in wav.samples()]
    # Ends and starts quietly, so looping joins without a jump.
    assert abs(samples[-1] - samples[0]) < 2000
    # The first arpeggio note is C5 (523 Hz), not one of its neighbours.
    assert dominant(samples[200:1400], (440.0, 523.25, 587.33, 659.26)) == 523.25
