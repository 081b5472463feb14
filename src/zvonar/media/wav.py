"""WAV (RIFF WAVE) reading, conversion to 8 kHz mono, and crash-safe incremental writing.

Reading accepts the common encodings: integer PCM of 8 (unsigned), 16, 24 and 32 bits,
IEEE float of 32 and 64 bits, G.711 A-law and µ-law, any channel count and sample rate, in
the plain ``fmt`` form or as WAVE_FORMAT_EXTENSIBLE. Unknown chunks (LIST, fact, cue...) are
skipped; a data chunk whose size field overshoots the file (a recorder that crashed, or a
streamed 0xFFFFFFFF) is read up to the last whole frame.

:func:`wav_to_pcm8k` turns any such file into the engine's prompt format, 8 kHz mono int16 LE:
channels are averaged, then :func:`zvonar.media.resample.resample` converts the rate.

:class:`WavWriter` writes 16-bit PCM incrementally to a seekable binary sink (an open file, a
``BytesIO``): after every write it patches the RIFF and data sizes in the header, so a process
that dies mid-recording leaves a valid file holding everything written so far.
"""

from __future__ import annotations

import enum
import struct
import sys
from array import array
from dataclasses import dataclass
from typing import Protocol

from zvonar.media.errors import WavError
from zvonar.media.g711 import alaw_decode, ulaw_decode
from zvonar.media.resample import resample

__all__ = [
    "WavFile",
    "WavFormat",
    "WavSink",
    "WavWriter",
    "encode_wav",
    "interleave_stereo",
    "parse_wav",
    "wav_to_pcm8k",
]

_FMT = struct.Struct("<HHIIHH")
_EXTENSIBLE = 0xFFFE
_HEADER_SIZE = 44  # RIFF(12) + fmt chunk(8 + 16) + data chunk header(8)


class WavFormat(enum.Enum):
    PCM = 1
    FLOAT = 3
    ALAW = 6
    ULAW = 7


@dataclass(frozen=True)
class WavFile:
    """The decoded header and the raw bytes of the data chunk (whole frames only)."""

    format: WavFormat
    channels: int
    sample_rate: int
    bits_per_sample: int
    data: bytes

    @property
    def frame_size(self) -> int:
        return self.channels * self.bits_per_sample // 8

    @property
    def frames(self) -> int:
        return len(self.data) // self.frame_size

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    def samples(self) -> list[float]:
        """Every sample, interleaved, as floats in [-1, 1)."""
        return _to_float(self)

    def mono(self) -> list[float]:
        """One float channel: the average of all channels."""
        values = self.samples()
        n = self.channels
        if n == 1:
            return values
        channels = [values[i::n] for i in range(n)]
        return [sum(frame) / n for frame in zip(*channels, strict=True)]


def parse_wav(data: bytes) -> WavFile:
    """Parse a RIFF WAVE file held in memory; raise :class:`WavError` if it is not one we read."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise WavError("not a RIFF WAVE file")
    offset = 12
    fmt: tuple[WavFormat, int, int, int] | None = None
    while offset + 8 <= len(data):
        chunk_id = data[offset : offset + 4]
        size = struct.unpack_from("<I", data, offset + 4)[0]
        body_start = offset + 8
        if chunk_id == b"fmt ":
            fmt = _parse_fmt(data[body_start : body_start + size])
        elif chunk_id == b"data":
            if fmt is None:
                raise WavError("data chunk before the fmt chunk")
            wav_format, channels, rate, bits = fmt
            frame = channels * bits // 8
            body = data[body_start : body_start + size]
            return WavFile(
                wav_format, channels, rate, bits, bytes(body[: len(body) // frame * frame])
            )
        offset = body_start + size + (size & 1)  # chunks are padded to an even size
    raise WavError("no data chunk" if fmt else "no fmt chunk")


def _parse_fmt(body: bytes) -> tuple[WavFormat, int, int, int]:
    if len(body) < _FMT.size:
        raise WavError("fmt chunk too short")
    tag, channels, rate, _byte_rate, block_align, bits = _FMT.unpack_from(body)
    if tag == _EXTENSIBLE:
        # cbSize, valid bits, channel mask, then the sub-format GUID whose first two bytes are
        # the format tag (the rest is the fixed KSDATAFORMAT suffix).
        if len(body) < 40:
            raise WavError("WAVE_FORMAT_EXTENSIBLE fmt chunk too short")
        tag = struct.unpack_from("<H", body, 24)[0]
    try:
        wav_format = WavFormat(tag)
    except ValueError:
        raise WavError(f"unsupported WAV format tag {tag:#x}") from None
    allowed = {
        WavFormat.PCM: (8, 16, 24, 32),
        WavFormat.FLOAT: (32, 64),
        WavFormat.ALAW: (8,),
        WavFormat.ULAW: (8,),
    }[wav_format]
    if bits not in allowed:
        raise WavError(f"unsupported {wav_format.name} sample size: {bits} bits")
    if channels < 1 or rate < 1 or block_align != channels * bits // 8:
        raise WavError("inconsistent WAV fmt chunk")
    return wav_format, channels, rate, bits


def _native(typecode: str, data: bytes) -> array[int] | array[float]:
    values = array(typecode, data)
    if sys.byteorder == "big":
        values.byteswap()  # WAV is little-endian
    return values


def _to_float(wav: WavFile) -> list[float]:
    data = wav.data
    if wav.format is WavFormat.FLOAT:
        return list(_native("f" if wav.bits_per_sample == 32 else "d", data))
    if wav.format in (WavFormat.ALAW, WavFormat.ULAW):
        decode = alaw_decode if wav.format is WavFormat.ALAW else ulaw_decode
        return [v / 32768 for v in _native("h", decode(data))]
    bits = wav.bits_per_sample
    if bits == 8:
        return [(v - 128) / 128 for v in data]  # 8-bit WAV is unsigned, centred on 128
    if bits == 16:
        return [v / 32768 for v in _native("h", data)]
    if bits == 24:
        # Widen each 3-byte sample to 4 bytes (low byte zero) and read as int32: C speed.
        wide = bytearray(len(data) // 3 * 4)
        wide[1::4] = data[0::3]
        wide[2::4] = data[1::3]
        wide[3::4] = data[2::3]
        data = bytes(wide)
    return [v / 2147483648 for v in _native("i", data)]


def wav_to_pcm8k(data: bytes, *, sample_rate: int = 8000) -> bytes:
    """Any readable WAV file -> mono int16 LE PCM at ``sample_rate`` (8 kHz by default)."""
    wav = parse_wav(data)
    if (
        wav.format is WavFormat.PCM
        and wav.bits_per_sample == 16
        and wav.channels == 1
        and wav.sample_rate == sample_rate
    ):
        return wav.data  # already the target format: byte-exact
    mono = resample(wav.mono(), wav.sample_rate, sample_rate)
    pcm = array("h", (max(-32768, min(32767, round(v * 32768))) for v in mono))
    if sys.byteorder == "big":
        pcm.byteswap()
    return pcm.tobytes()


def _header(
    data_size: int, *, sample_rate: int, channels: int, bits: int, wav_format: WavFormat
) -> bytes:
    block_align = channels * bits // 8
    fmt = _FMT.pack(
        wav_format.value, channels, sample_rate, sample_rate * block_align, block_align, bits
    )
    padded = data_size + (data_size & 1)
    return (
        b"RIFF"
        + struct.pack("<I", 4 + 8 + len(fmt) + 8 + padded)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", data_size)
    )


def encode_wav(
    data: bytes,
    *,
    sample_rate: int = 8000,
    channels: int = 1,
    bits: int = 16,
    wav_format: WavFormat = WavFormat.PCM,
) -> bytes:
    """A whole WAV file around already-encoded little-endian sample ``data``."""
    if channels < 1 or bits % 8 or len(data) % (channels * bits // 8):
        raise WavError("data is not a whole number of frames")
    pad = b"\x00" if len(data) & 1 else b""
    header = _header(
        len(data), sample_rate=sample_rate, channels=channels, bits=bits, wav_format=wav_format
    )
    return header + data + pad


def interleave_stereo(left: bytes, right: bytes) -> bytes:
    """Two int16 LE mono signals -> one stereo signal; the shorter side is padded with
    silence (two legs of a call rarely deliver exactly the same number of samples)."""
    if len(left) % 2 or len(right) % 2:
        raise WavError("16-bit PCM has an even number of bytes")
    size = max(len(left), len(right))
    left = left.ljust(size, b"\x00")
    right = right.ljust(size, b"\x00")
    out = bytearray(2 * size)
    out[0::4] = left[0::2]
    out[1::4] = left[1::2]
    out[2::4] = right[0::2]
    out[3::4] = right[1::2]
    return bytes(out)


class WavSink(Protocol):
    """What :class:`WavWriter` needs of a file: a seekable binary stream."""

    def write(self, data: bytes, /) -> int: ...

    def seek(self, offset: int, whence: int = 0, /) -> int: ...

    def flush(self) -> None: ...


class WavWriter:
    """Incremental 16-bit PCM WAV writer whose header is always valid.

    The header is written first with zero sizes; each :meth:`write` appends the samples and
    then patches the RIFF size (offset 4) and data size (offset 40) and flushes, so the file
    on disk is always a complete WAV of everything written so far. The sink is left open.
    """

    MAX_DATA = 0xFFFFFFFF - 36

    def __init__(self, sink: WavSink, *, sample_rate: int = 8000, channels: int = 2) -> None:
        if channels < 1 or sample_rate < 1:
            raise WavError("channels and sample_rate must be positive")
        self.sink = sink
        self.sample_rate = sample_rate
        self.channels = channels
        self.data_size = 0
        sink.seek(0)
        sink.write(self._header())
        sink.flush()

    def _header(self) -> bytes:
        return _header(
            self.data_size,
            sample_rate=self.sample_rate,
            channels=self.channels,
            bits=16,
            wav_format=WavFormat.PCM,
        )

    @property
    def frames(self) -> int:
        return self.data_size // (2 * self.channels)

    def write(self, pcm: bytes) -> None:
        """Append interleaved int16 LE frames and fix up the header."""
        if len(pcm) % (2 * self.channels):
            raise WavError("data is not a whole number of frames")
        if self.data_size + len(pcm) > self.MAX_DATA:
            raise WavError("WAV data chunk would exceed 4 GiB")
        if not pcm:
            return
        self.sink.seek(_HEADER_SIZE + self.data_size)
        self.sink.write(pcm)
        self.data_size += len(pcm)
        self._fix_header()

    def write_stereo(self, left: bytes, right: bytes) -> None:
        """Append two mono int16 LE signals as the left and right channels."""
        if self.channels != 2:
            raise WavError("write_stereo needs a 2-channel writer")
        self.write(interleave_stereo(left, right))

    def _fix_header(self) -> None:
        header = self._header()
        self.sink.seek(4)
        self.sink.write(header[4:8])
        self.sink.seek(40)
        self.sink.write(header[40:44])
        self.sink.seek(_HEADER_SIZE + self.data_size)
        self.sink.flush()
