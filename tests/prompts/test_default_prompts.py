"""The shipped prompts: every key in every language, in the format calls play, and the helpers
that say numbers and minutes the way each language does."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from zvonar.media.prompts import (
    DEFAULT_DIR,
    FRAGMENT_KEYS,
    LANGUAGES,
    PROMPT_KEYS,
    minutes_prompts,
    number_prompts,
    position_prompts,
    prompt_path,
)
from zvonar.media.wav import WavFormat, encode_wav, parse_wav

ROOT = Path(__file__).resolve().parents[2]
NEW_KEYS = (
    "invalid_choice",
    "rate_thanks",
    "callback_confirmed",
    "queue_announce",
    "queue_position",
    "minutes",
    "estimated_wait",
    *(f"n{i}" for i in range(1, 21)),
    "queue_callback_offer",
    "menu_default",
)


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_prompts", ROOT / "scripts/make_prompts.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_keys_the_queue_and_menus_need_exist() -> None:
    assert set(NEW_KEYS) <= set(PROMPT_KEYS) | set(FRAGMENT_KEYS)
    assert not set(PROMPT_KEYS) & set(FRAGMENT_KEYS)
    script = _script()
    assert set(script.FRAGMENTS) == set(FRAGMENT_KEYS)
    for texts in script.FRAGMENTS.values():
        assert set(texts) == set(LANGUAGES)


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("key", PROMPT_KEYS + FRAGMENT_KEYS)
def test_every_key_is_8k_mono_16bit_speech(key: str, lang: str) -> None:
    path = DEFAULT_DIR / lang / f"{key}.wav"
    wav = parse_wav(path.read_bytes())
    assert (wav.format, wav.channels, wav.sample_rate, wav.bits_per_sample) == (
        WavFormat.PCM,
        1,
        8000,
        16,
    )
    low, high = (0.8, 5.0) if key in PROMPT_KEYS else (0.15, 1.0)
    assert low <= wav.duration <= high, wav.duration
    assert max(abs(v) for v in wav.samples()) > 0.3  # normalised, not silence


@pytest.mark.parametrize("key", ["queue_announce", "n7", "minutes"])
def test_each_language_has_its_own_recording(key: str) -> None:
    blobs = {(DEFAULT_DIR / lang / f"{key}.wav").read_bytes() for lang in LANGUAGES}
    assert len(blobs) == len(LANGUAGES)


@pytest.mark.parametrize(
    ("n", "key"), [(1, "n1"), (7, "n7"), (20, "n20"), (21, "n20"), (500, "n20"), (0, "n1")]
)
def test_number_prompts_clamp_to_the_recorded_range(n: int, key: str) -> None:
    for lang in LANGUAGES:
        assert number_prompts(n, lang) == [DEFAULT_DIR / lang / f"{key}.wav"]


@pytest.mark.parametrize(
    ("lang", "n", "keys"),
    [
        ("ru", 1, ["n1_f", "minute"]),  # одна минута
        ("ru", 2, ["n2_f", "minutes_few"]),  # две минуты
        ("ru", 4, ["n4", "minutes_few"]),  # четыре минуты
        ("ru", 5, ["n5", "minutes"]),  # пять минут
        ("ru", 11, ["n11", "minutes"]),  # одиннадцать минут
        ("uk", 2, ["n2_f", "minutes_few"]),  # дві хвилини
        ("uk", 12, ["n12", "minutes"]),  # дванадцять хвилин
        ("uk-UA", 3, ["n3", "minutes_few"]),  # три хвилини
        ("en", 1, ["n1_f", "minute"]),
        ("en", 2, ["n2_f", "minutes"]),
        ("en", 40, ["n20", "minutes"]),
    ],
)
def test_minutes_agree_with_the_number(lang: str, n: int, keys: list[str]) -> None:
    primary = lang.split("-")[0]
    assert minutes_prompts(n, lang) == [DEFAULT_DIR / primary / f"{k}.wav" for k in keys]


def test_position_prompts_say_what_the_queue_announces() -> None:
    ru = DEFAULT_DIR / "ru"
    assert position_prompts(3, 90.0, "ru") == [
        ru / "queue_position.wav",
        ru / "n3.wav",
        ru / "estimated_wait.wav",
        ru / "n2_f.wav",
        ru / "minutes_few.wav",
    ]
    assert position_prompts(3, None, "ru") == [ru / "queue_position.wav", ru / "n3.wav"]
    assert position_prompts(None, 1.0, "ru")[-2:] == [ru / "n1_f.wav", ru / "minute.wav"]
    assert position_prompts(None, float("nan"), "ru") == []
    assert position_prompts(None, None, "en") == []


def test_an_account_may_record_its_own_numbers(tmp_path: Path) -> None:
    own = tmp_path / "ru" / "n5.wav"
    own.parent.mkdir()
    own.write_bytes(encode_wav(b"\x00\x10" * 4000))
    assert number_prompts(5, "ru", base_dir=tmp_path) == [own]
    assert minutes_prompts(5, "ru", base_dir=tmp_path) == [own, DEFAULT_DIR / "ru/minutes.wav"]
    assert number_prompts(6, "ru", base_dir=tmp_path) == [prompt_path("n6", "ru")]
