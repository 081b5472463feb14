"""Uploaded prompts: any common WAV in, 8 kHz mono 16-bit WAV stored per account and language
(or a sentence typed by the admin, spoken by :mod:`zvonar.prompts.speech`).

Files live at ``data_dir/prompts/<account id>/<lang>/<key>.wav`` — the ``base_dir`` layout
``zvonar.media.prompts.prompt_path`` searches before the defaults, so a stored prompt is played
from the next call on.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from zvonar.accounts.access import Perm, Principal
from zvonar.core.errors import InvalidInput, NotFound
from zvonar.core.schemas import PROMPT_KEY
from zvonar.media.errors import MediaError
from zvonar.media.wav import encode_wav, wav_to_pcm8k
from zvonar.prompts import speech

LANGUAGES = ("en", "ru", "uk")
MAX_SECONDS = 600
MAX_UPLOAD_BYTES = 32 * 1024 * 1024
HOLD_MUSIC = "hold_music"


@dataclass(frozen=True)
class StoredPrompt:
    key: str
    language: str
    seconds: float


class PromptService:
    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "prompts"

    def account_dir(self, account_id: uuid.UUID) -> Path:
        return self.root / str(account_id)

    def _path(self, account_id: uuid.UUID, language: str, key: str) -> Path:
        if language not in LANGUAGES:
            raise InvalidInput(
                f"language must be one of {', '.join(LANGUAGES)}", code="invalid_language"
            )
        if not PROMPT_KEY.match(key):
            raise InvalidInput(
                "a prompt key is lower-case letters, digits and _", code="invalid_prompt_key"
            )
        return self.account_dir(account_id) / language / f"{key}.wav"

    async def store(self, p: Principal, language: str, key: str, data: bytes) -> StoredPrompt:
        p.require(Perm.routing_write)
        path = self._path(p.account_id, language, key)
        try:
            pcm = await asyncio.to_thread(wav_to_pcm8k, data)
        except MediaError as exc:
            raise InvalidInput(f"not a readable WAV file: {exc}", code="invalid_audio") from exc
        seconds = len(pcm) / 16000
        if seconds > MAX_SECONDS:
            raise InvalidInput(f"a prompt may last {MAX_SECONDS} s at most", code="prompt_too_long")
        if seconds < 0.1:
            raise InvalidInput("the prompt holds no audio", code="invalid_audio")
        await asyncio.to_thread(_write_atomically, path, encode_wav(pcm))
        return StoredPrompt(key, language, round(seconds, 3))

    async def speak(self, p: Principal, language: str, key: str, text: str) -> StoredPrompt:
        """Store ``text`` spoken in ``language`` (:mod:`zvonar.prompts.speech`) as ``key``."""
        p.require(Perm.routing_write)
        self._path(p.account_id, language, key)  # the language and key, checked first
        text = " ".join(text.split())
        if not text or len(text) > speech.MAX_CHARS:
            raise InvalidInput(
                f"the text is 1 to {speech.MAX_CHARS} characters", code="invalid_speech_text"
            )
        if not text.isprintable():
            raise InvalidInput("the text has control characters", code="invalid_speech_text")
        return await self.store(p, language, key, await speech.synthesize(text, language))

    async def list(self, p: Principal) -> list[StoredPrompt]:
        p.require(Perm.routing_read)
        out = []
        base = self.account_dir(p.account_id)
        for language in LANGUAGES:
            for f in sorted((base / language).glob("*.wav")):
                out.append(
                    StoredPrompt(f.stem, language, round((f.stat().st_size - 44) / 16000, 3))
                )
        return out

    async def delete(self, p: Principal, language: str, key: str) -> None:
        p.require(Perm.routing_write)
        path = self._path(p.account_id, language, key)
        if not path.is_file():
            raise NotFound("prompt not found")
        path.unlink()


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
