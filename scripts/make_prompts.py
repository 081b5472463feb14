"""Generate Zvonar's default voice prompts and hold music (8 kHz mono 16-bit WAV).

Run from the repository root:  .venv/bin/python scripts/make_prompts.py [--out DIR]

* Prompts are spoken by espeak-ng (Debian package ``espeak-ng``; voices en, ru, uk) and
  converted by sox (``sox``) to 8 kHz mono 16-bit with leading/trailing silence trimmed and
  the level normalised. Without sox, the media core's resampler converts instead (slower).
* The texts live in the ``TEXTS`` table below (whole prompts, ``PROMPT_KEYS``) and the
  ``FRAGMENTS`` table (numbers and "minutes" the media layer strings together,
  ``FRAGMENT_KEYS``). They are a stop-gap: once the platform's i18n
  layer (zvonar.i18n) carries prompt texts, this table should be generated from its catalogs
  and accounts will record their own prompts anyway (see ``prompt_path(base_dir=...)``).
* Hold music is synthesised here: a I-vi-IV-V arpeggio of plain sine tones with a soft
  harmonic and decay, written so the end joins the start seamlessly when looped. No
  recorded or copyrighted music is involved.

Output: ``src/zvonar/media/prompts/<lang>/<key>.wav`` and ``.../hold_music.wav``.
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
import tempfile
from array import array
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from zvonar.media.wav import encode_wav, wav_to_pcm8k  # noqa: E402

DEFAULT_OUT = ROOT / "src" / "zvonar" / "media" / "prompts"
RATE = 8000
VOICES = {"en": "en", "ru": "ru", "uk": "uk"}
SPEED = 175  # words per minute: a little brisker than espeak's default keeps files small

TEXTS: dict[str, dict[str, str]] = {
    "greeting": {
        "en": "Hello, thank you for calling.",
        "ru": "Здравствуйте, спасибо за звонок.",
        "uk": "Добрий день, дякуємо за дзвінок.",
    },
    "please_wait": {
        "en": "Please wait, connecting you.",
        "ru": "Подождите, соединяем.",
        "uk": "Зачекайте, з'єднуємо.",
    },
    "all_busy": {
        "en": "All operators are busy. Please hold.",
        "ru": "Все операторы заняты. Оставайтесь на линии.",
        "uk": "Усі оператори зайняті. Залишайтеся на лінії.",
    },
    "leave_message_after_tone": {
        "en": "Leave a message after the tone.",
        "ru": "Оставьте сообщение после сигнала.",
        "uk": "Залиште повідомлення після сигналу.",
    },
    "off_hours": {
        "en": "We are closed. Please call back in business hours.",
        "ru": "Мы сейчас не работаем. Перезвоните в рабочее время.",
        "uk": "Ми зараз не працюємо. Зателефонуйте в робочий час.",
    },
    "rate_call": {
        "en": "Please rate this call from one to five.",
        "ru": "Оцените разговор от одного до пяти.",
        "uk": "Оцініть розмову від одного до п'яти.",
    },
    "invalid_choice": {
        "en": "Sorry, that is not a valid choice.",
        "ru": "Извините, такого варианта нет.",
        "uk": "Вибачте, такого варіанту немає.",
    },
    "rate_thanks": {
        "en": "Thank you for your rating.",
        "ru": "Спасибо за оценку.",
        "uk": "Дякуємо за оцінку.",
    },
    "callback_confirmed": {
        "en": "We will call you back when an operator is free. Goodbye.",
        "ru": "Мы перезвоним, когда оператор освободится. До свидания.",
        "uk": "Ми передзвонимо, щойно оператор звільниться. До побачення.",
    },
    "queue_announce": {
        "en": (
            "All operators are busy. Please stay on the line, "
            "or write to us in the chat on our website."
        ),
        "ru": "Все операторы заняты. Оставайтесь на линии или напишите нам в чат на сайте.",
        "uk": "Усі оператори зайняті. Залишайтеся на лінії або напишіть нам у чат на сайті.",
    },
    "queue_position": {
        "en": "Your position in the queue is",
        "ru": "Ваш номер в очереди:",
        "uk": "Ваш номер у черзі:",
    },
    "estimated_wait": {
        "en": "Estimated waiting time",
        "ru": "Примерное время ожидания:",
        "uk": "Орієнтовний час очікування:",
    },
    "queue_callback_offer": {
        "en": "To be called back without losing your place, press 5.",
        "ru": "Нажмите 5, и мы перезвоним, сохранив ваше место в очереди.",
        "uk": "Натисніть 5, і ми передзвонимо, зберігши ваше місце в черзі.",
    },
    # Said before the queue's callback digit ("n5", "key_star"...) when the queue uses
    # another digit than the 5 that "queue_callback_offer" names.
    "queue_callback_press": {
        "en": "To be called back without losing your place, press",
        "ru": "Чтобы мы перезвонили, сохранив ваше место в очереди, нажмите",
        "uk": "Щоб ми передзвонили, зберігши ваше місце в черзі, натисніть",
    },
    "menu_default": {
        "en": "For sales press 1, for support press 2.",
        "ru": "Отдел продаж — нажмите 1, поддержка — нажмите 2.",
        "uk": "Відділ продажів — натисніть 1, підтримка — натисніть 2.",
    },
    # Heard by a forwarded mobile that answered (calls/accept.py), not by the customer.
    "accept_call": {
        "en": "Office call. Press 1 to take it, 2 to decline.",
        "ru": "Рабочий звонок. Нажмите 1 — принять, 2 — отклонить.",
        "uk": "Робочий дзвінок. Натисніть 1 — прийняти, 2 — відхилити.",
    },
    # Heard by an employee who dialled *78 / *79 (pbx/features.py).
    "dnd_on": {
        "en": "Do not disturb is on.",
        "ru": "Режим «не беспокоить» включён.",
        "uk": "Режим «не турбувати» увімкнено.",
    },
    "dnd_off": {
        "en": "Do not disturb is off.",
        "ru": "Режим «не беспокоить» выключен.",
        "uk": "Режим «не турбувати» вимкнено.",
    },
}

# Words the media layer strings together (``number_prompts``, ``minutes_prompts``): too short
# to stand alone as prompts, so they have their own table and keys.
_NUMBERS = {
    "en": "one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty",
    "ru": "один два три четыре пять шесть семь восемь девять десять одиннадцать двенадцать "
    "тринадцать четырнадцать пятнадцать шестнадцать семнадцать восемнадцать девятнадцать "
    "двадцать",
    "uk": "один два три чотири п'ять шість сім вісім дев'ять десять одинадцять дванадцять "
    "тринадцять чотирнадцять п'ятнадцять шістнадцять сімнадцять вісімнадцять "
    "дев'ятнадцять двадцять",
}
FRAGMENTS: dict[str, dict[str, str]] = {
    **{
        f"n{i + 1}": {lang: words.split()[i] for lang, words in _NUMBERS.items()} for i in range(20)
    },
    # Russian and Ukrainian "minute" is feminine: "одна минута", "две минуты".
    "n1_f": {"en": "one", "ru": "одна", "uk": "одна"},
    "n2_f": {"en": "two", "ru": "две", "uk": "дві"},
    # CLDR plural forms: one (1, 21), few (2–4), many (0, 5–20); English has one and other.
    "minute": {"en": "minute", "ru": "минута", "uk": "хвилина"},
    "minutes_few": {"en": "minutes", "ru": "минуты", "uk": "хвилини"},
    "minutes": {"en": "minutes", "ru": "минут", "uk": "хвилин"},
    # Keys a caller may be asked to press (with n1-n9): "press zero / star / hash"; the
    # Russian and Ukrainian nouns are in the accusative "нажмите" asks for.
    "n0": {"en": "zero", "ru": "ноль", "uk": "нуль"},
    "key_star": {"en": "star", "ru": "звёздочку", "uk": "зірочку"},
    "key_hash": {"en": "hash", "ru": "решётку", "uk": "решітку"},
}
# Prompts that end with the beep they announce (1 kHz, 0.3 s, after a short pause).
WITH_BEEP = frozenset({"leave_message_after_tone"})
# Prompts played in a loop end with a pause, so the repeats do not run into each other.
PAUSE_AFTER = {"accept_call": 0.8}


def _pcm(samples: list[float]) -> bytes:
    values = array("h", (max(-32767, min(32767, round(v * 32767))) for v in samples))
    if sys.byteorder == "big":
        values.byteswap()
    return values.tobytes()


def beep(seconds: float = 0.3, freq: float = 1000.0, pause: float = 0.25) -> bytes:
    count = round(seconds * RATE)
    ramp = round(0.01 * RATE)  # 10 ms ramps: no clicks
    tone = [
        0.4 * math.sin(2 * math.pi * freq * i / RATE) * min(1.0, i / ramp, (count - i) / ramp)
        for i in range(count)
    ]
    return bytes(2 * round(pause * RATE)) + _pcm(tone)


def speak(text: str, voice: str, workdir: Path) -> bytes:
    """``text`` spoken by espeak-ng, as 8 kHz mono int16 LE PCM."""
    raw = workdir / "raw.wav"
    espeak = shutil.which("espeak-ng") or "espeak-ng"
    # Fixed argument lists, no shell: the texts come from the table above.
    subprocess.run([espeak, "-v", voice, "-s", str(SPEED), "-w", str(raw), text], check=True)  # noqa: S603
    sox = shutil.which("sox")
    if sox:
        out = workdir / "out.wav"
        subprocess.run(  # noqa: S603
            [
                sox, str(raw), "-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed-integer",
                str(out),
                "silence", "1", "0.02", "0.5%", "reverse", "silence", "1", "0.02", "0.5%",
                "reverse", "gain", "-n", "-6", "highpass", "120", "gain", "-n", "-3",
            ],
            check=True,
        )  # fmt: skip
        return wav_to_pcm8k(out.read_bytes())
    return wav_to_pcm8k(raw.read_bytes())


# --- hold music -----------------------------------------------------------------------

# C major I-vi-IV-V, each chord as an arpeggio; MIDI note numbers.
_PROGRESSION = [
    (60, [72, 76, 79, 84, 79, 76]),  # C
    (57, [69, 72, 76, 81, 76, 72]),  # Am
    (53, [65, 69, 72, 77, 72, 69]),  # F
    (55, [67, 71, 74, 79, 74, 71]),  # G
]
_NOTE = 0.2  # seconds per arpeggio note


def _freq(midi: int) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def hold_music() -> bytes:
    bar = _NOTE * len(_PROGRESSION[0][1])
    total = round(bar * len(_PROGRESSION) * RATE)
    out = [0.0] * total
    note_len = round(_NOTE * RATE)
    bar_len = round(bar * RATE)

    def add(start: int, length: int, freq: float, level: float, decay: float) -> None:
        attack = round(0.008 * RATE)
        for i in range(length):
            env = min(1.0, i / attack) * math.exp(-decay * i / RATE)
            env *= min(1.0, (length - i) / attack)  # fade the tail: the loop joins cleanly
            phase = 2 * math.pi * freq * i / RATE
            out[(start + i) % total] += level * env * (math.sin(phase) + 0.25 * math.sin(2 * phase))

    for index, (bass, arpeggio) in enumerate(_PROGRESSION):
        start = index * bar_len
        add(start, bar_len, _freq(bass), 0.18, 1.2)  # a soft bass note under the bar
        for step, note in enumerate(arpeggio):
            add(start + step * note_len, 2 * note_len, _freq(note), 0.22, 5.0)
    peak = max(abs(v) for v in out)
    return _pcm([0.7 * v / peak for v in out])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="KEY",
        help="Generate only these keys (hold_music for the melody): espeak-ng versions differ, "
        "so regenerating everything rewrites every file.",
    )
    args = parser.parse_args()
    table = {**TEXTS, **FRAGMENTS}
    wanted = set(args.only or [*table, "hold_music"])
    unknown = wanted - set(table) - {"hold_music"}
    if unknown:
        print(f"unknown keys: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    if not shutil.which("espeak-ng"):
        print("espeak-ng is not installed (apt-get install espeak-ng)", file=sys.stderr)
        return 1
    total = 0
    with tempfile.TemporaryDirectory() as tmp:
        for key, texts in table.items():
            if key not in wanted:
                continue
            for lang, text in texts.items():
                pcm = speak(text, VOICES[lang], Path(tmp))
                if key in WITH_BEEP:
                    pcm += beep()
                pcm += bytes(2 * round(PAUSE_AFTER.get(key, 0.0) * RATE))
                path = args.out / lang / f"{key}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                data = encode_wav(pcm, sample_rate=RATE)
                path.write_bytes(data)
                total += len(data)
                print(f"{lang}/{key}.wav: {len(pcm) / 2 / RATE:.2f} s")
    if "hold_music" in wanted:
        music = encode_wav(hold_music(), sample_rate=RATE)
        (args.out / "hold_music.wav").write_bytes(music)
        total += len(music)
        print(f"hold_music.wav: {(len(music) - 44) / 2 / RATE:.2f} s")
    print(f"written: {total / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
