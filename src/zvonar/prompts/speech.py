"""Prompts spoken from text at run time, by espeak-ng (Debian package ``espeak-ng``).

An announcement names the account's own things — "a call on the Resorts line", "a call from
the Sales queue" — so no built-in prompt can say it, and recording one is a chore an admin
may not have the means for. The admin types the sentence; this speaks it with the voice of
the prompt's language (the same synthesizer and speed as the built-in prompts,
``scripts/make_prompts.py``), and the prompt service stores it like an upload.

The text reaches espeak-ng on its standard input as plain text (no SSML, no option can hide
in it), bounded in length; the synthesis is bounded in time. Without espeak-ng the request
gets ``503 speech_unavailable``; uploads keep working.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil

from zvonar.core.errors import Unavailable

__all__ = ["MAX_CHARS", "SPEED", "TIMEOUT", "VOICES", "synthesize"]

VOICES = {"en": "en", "ru": "ru", "uk": "uk"}
SPEED = 175  # words per minute, as the built-in prompts
MAX_CHARS = 500
TIMEOUT = 15.0


async def synthesize(text: str, language: str, *, limit: float = TIMEOUT) -> bytes:
    """``text`` spoken in ``language``: a WAV file at espeak-ng's own rate (the prompt
    service converts it). Raises ``Unavailable`` (``speech_unavailable``) without espeak-ng,
    when it fails or when it overruns ``limit`` seconds."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise Unavailable("text-to-speech needs espeak-ng on the server", code="speech_unavailable")
    proc = await asyncio.create_subprocess_exec(
        espeak,
        "-v",
        VOICES[language],
        "-s",
        str(SPEED),
        "--stdin",
        "--stdout",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(limit):
            wav, err = await proc.communicate(text.encode("utf-8"))
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise Unavailable("speech synthesis took too long", code="speech_unavailable") from None
    if proc.returncode != 0 or not wav:
        said = err.decode(errors="replace").strip()[:200]
        raise Unavailable(f"speech synthesis failed: {said}", code="speech_unavailable")
    return wav
