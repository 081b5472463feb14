"""Call-progress tones the B2BUA plays itself, generated once per process.

Ringback: a caller we answered ourselves (after a menu or a prompt) hears no ringing from
their phone while we ring someone for them, so we play it: 425 Hz, 1 s on, 4 s off — the
tone callers in Russia and Ukraine know (ITU-T E.180 lists it for both).
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
from array import array
from pathlib import Path

from zvonar.media.wav import encode_wav

__all__ = ["ringback_path", "tone_file"]

_RATE = 8000
_cache: dict[str, Path] = {}


def _private_dir() -> Path:
    directory = Path(tempfile.gettempdir()) / f"zvonar-{os.getuid()}"
    directory.mkdir(mode=0o700, exist_ok=True)
    if directory.stat().st_uid != os.getuid():  # someone else's directory: not trusted
        directory = Path(tempfile.mkdtemp(prefix="zvonar-"))
    return directory


def tone_file(name: str, hz: float, on: float, off: float, level: float = 0.3) -> Path:
    """A WAV (8 kHz mono 16-bit) of ``on`` seconds of ``hz`` then ``off`` seconds of silence."""
    cached = _cache.get(name)
    if cached is not None and cached.exists():
        return cached
    path = _private_dir() / f"{name}.wav"
    count, fade = round(on * _RATE), _RATE // 200  # 5 ms ramps: no clicks
    samples = array(
        "h",
        (
            round(
                level
                * 32767
                * min(1.0, i / fade, (count - 1 - i) / fade)
                * math.sin(2 * math.pi * hz * i / _RATE)
            )
            for i in range(count)
        ),
    )
    samples.extend([0] * round(off * _RATE))
    if sys.byteorder == "big":
        samples.byteswap()
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_bytes(encode_wav(samples.tobytes(), sample_rate=_RATE, channels=1))
    os.replace(tmp, path)
    _cache[name] = path
    return path


def ringback_path() -> Path:
    return tone_file("ringback-425hz", 425.0, 1.0, 4.0)
