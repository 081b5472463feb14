"""Voicemail (call.py's actor, entered from teardown.give_up): answer a caller nobody took,
play the greeting and a beep, record the caller's leg alone, and hand the message over.

The voicemail media leg is *not* tracked by the B2BUA (``host.track_media``): its events
(playback ends, DTMF, RecordingFinished) come to this module's own engine subscription, so
the actor never mistakes the greeting's end for the end of a prompt. A small driver task
plays, records and listens; when the message is over (the caller pressed '#', stayed silent
— no RTP — for ``silence_timeout`` or talked for ``max_seconds``) it asks the actor to end the
call with ``Shutdown``. However the call ends (the caller's BYE included), teardown.finish
calls :func:`conclude` before CallEnded: it stops the recording and returns the message, or
None when there is none (hung up before the beep, shorter than ``min_seconds``, no audio).

The recording is the engine's stereo recorder on an unbridged leg (caller left, silence
right), rewritten to mono once closed: half the size in the journal and in e-mails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import sys
import tempfile
import weakref
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from zvonar.calls.answering import answer_caller, caller_sdp
from zvonar.calls.early import confirm as confirm_early
from zvonar.calls.legs import LegState
from zvonar.calls.plan import VoicemailSpec
from zvonar.media.engine import (
    DtmfReceived,
    MediaEngine,
    MediaEngineError,
    MediaEvent,
    MediaTimeout,
    PlaybackFinished,
    RecordingFinished,
)
from zvonar.media.errors import MediaError, WavError
from zvonar.media.wav import encode_wav, parse_wav

if TYPE_CHECKING:
    from zvonar.calls.call import Call

__all__ = ["VoicemailMessage", "beep_path", "begin", "conclude", "voicemail_path"]

log = logging.getLogger(__name__)

BEEP_HZ = 1000.0
BEEP_SECONDS = 0.25
_RATE = 8000
_POLL = 0.25  # how often the RTP counter is read while recording (silence detection)
_END_DIGIT = "#"
_beep: Path | None = None


@dataclass(frozen=True)
class VoicemailMessage:
    """A message left: the WAV, its length in seconds, who to tell."""

    path: Path
    duration: float
    notify: tuple[str, ...]


@dataclass(eq=False)
class _Session:
    spec: VoicemailSpec
    media_id: str
    path: Path
    events: asyncio.Queue[MediaEvent] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None
    recording_id: str | None = None
    finished: asyncio.Future[RecordingFinished] | None = None
    owns_leg: bool = True  # False: the caller's leg of steps.py, released with the call
    rx_at_start: int = 0
    got_audio: bool = False
    unsubscribe: list[Callable[[], None]] = field(default_factory=list)

    def on_event(self, event: MediaEvent) -> None:
        if event.leg_id != self.media_id:
            return
        if isinstance(event, RecordingFinished):
            if self.finished is not None and not self.finished.done():
                self.finished.set_result(event)
            return
        self.events.put_nowait(event)


# One session per call in voicemail; weak so a call that vanished mid-way leaks nothing.
_SESSIONS: weakref.WeakKeyDictionary[Call, _Session] = weakref.WeakKeyDictionary()


def voicemail_path(call: Call) -> Path | None:
    """``<call_id>.vm.wav`` beside where the call's recording would go (so the journal accepts
    it as inside the account's recordings); None when the B2BUA records nothing."""
    where = call.host.recording_path
    if where is None or call.account_id is None:
        return None
    base = where(call.account_id, call.call_id, call.facts.started_at)
    return base.with_name(f"{call.call_id}.vm.wav")


def beep_path() -> Path:
    """A short 1 kHz tone (8 kHz mono 16-bit), generated once per process into a private
    temporary directory."""
    global _beep
    if _beep is not None and _beep.exists():
        return _beep
    directory = Path(tempfile.gettempdir()) / f"zvonar-{os.getuid()}"
    directory.mkdir(mode=0o700, exist_ok=True)
    if directory.stat().st_uid != os.getuid():  # someone else's directory: not trusted
        directory = Path(tempfile.mkdtemp(prefix="zvonar-"))
    path = directory / "beep-1000hz.wav"
    count = round(BEEP_SECONDS * _RATE)
    fade = _RATE // 200  # 5 ms ramps: no click at either end
    samples = array(
        "h",
        (
            round(
                0.4
                * 32767
                * min(1.0, i / fade, (count - 1 - i) / fade)
                * math.sin(2 * math.pi * BEEP_HZ * i / _RATE)
            )
            for i in range(count)
        ),
    )
    if sys.byteorder == "big":
        samples.byteswap()
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_bytes(encode_wav(samples.tobytes(), sample_rate=_RATE, channels=1))
    os.replace(tmp, path)
    _beep = path
    return path


async def begin(call: Call, spec: VoicemailSpec) -> bool:
    """Answer the caller and start taking a message; False when no message can be recorded
    (the B2BUA has nowhere to put it). Raises MediaError when the caller cannot be answered
    (the caller then gets the plain final answer)."""
    path = voicemail_path(call)
    if path is None:
        return False
    engine, caller = call.host.engine, call.caller
    await confirm_early(call)  # a caller hearing early media is answered on that leg
    if caller.state is LegState.CONFIRMED and caller.media_id is not None:
        # We answered the caller already (a menu, a queue, early media): record on that leg.
        # It stays tracked by the B2BUA, which ignores playbacks it did not start.
        session = _Session(spec, caller.media_id, path, owns_leg=False)
        session.unsubscribe.append(engine.subscribe(session.on_event))
        _SESSIONS[call] = session
        call.prompt_media = caller.media_id
        loop = asyncio.get_running_loop()
        session.task = loop.create_task(_drive(call, session), name=f"voicemail {call.call_id}")
        return True
    media = f"{call.call_id}.vm"
    session = _Session(spec, media, path)
    session.unsubscribe.append(engine.subscribe(session.on_event))
    _SESSIONS[call] = session
    try:
        endpoint = await engine.allocate(media, media)
        sdp = await caller_sdp(call, media, endpoint)
    except MediaError:
        _SESSIONS.pop(call, None)
        await _close(engine, session)
        caller.media_id = caller.endpoint = caller.oa = None
        raise
    await answer_caller(call, sdp)
    # hangup_all then reports call.final_disposition; finish's release() skips the leg,
    # which is not tracked (conclude releases it).
    call.prompt_media = media
    loop = asyncio.get_running_loop()
    session.task = loop.create_task(_drive(call, session), name=f"voicemail {call.call_id}")
    return True


class _Over(Exception):
    """The caller is gone from the media (MediaTimeout): stop taking the message."""


async def _drive(call: Call, s: _Session) -> None:
    from zvonar.calls.call import Shutdown  # call.py imports teardown, which imports us

    engine = call.host.engine
    try:
        if s.spec.greeting is not None:
            await _play(engine, s, s.spec.greeting)
        if s.spec.beep:
            try:
                beep = beep_path()
            except OSError as exc:
                log.warning("call %s: no beep: %s", call.call_id, exc)
            else:
                await _play(engine, s, beep)
        await asyncio.to_thread(s.path.parent.mkdir, parents=True, exist_ok=True)
        s.finished = asyncio.get_running_loop().create_future()
        s.rx_at_start = (await engine.stats(s.media_id)).rx_packets
        s.recording_id = await engine.start_recording(s.media_id, s.path)
        await _listen(engine, s)
    except asyncio.CancelledError:
        raise
    except _Over:
        pass
    except Exception as exc:  # a media error: end the call, keep what was recorded
        log.warning("call %s: voicemail stopped: %s", call.call_id, exc)
    call.put(Shutdown())


async def _play(engine: MediaEngine, s: _Session, path: Path) -> None:
    """Play ``path``; any digit skips the rest of it (callers who know the greeting)."""
    playback = await engine.play(s.media_id, path)
    while True:
        event = await s.events.get()
        if isinstance(event, PlaybackFinished) and event.playback_id == playback:
            return
        if isinstance(event, DtmfReceived):
            await engine.stop_playback(s.media_id)
            return
        if isinstance(event, MediaTimeout):
            raise _Over


async def _listen(engine: MediaEngine, s: _Session) -> None:
    """Until '#', the media timeout, ``silence_timeout`` without RTP or ``max_seconds``."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    deadline = start + s.spec.max_seconds
    last_rx, rx = start, s.rx_at_start
    while (now := loop.time()) < deadline:
        try:
            event = await asyncio.wait_for(s.events.get(), min(_POLL, deadline - now))
        except TimeoutError:
            event = None
        if isinstance(event, DtmfReceived) and event.digit == _END_DIGIT:
            return
        if isinstance(event, MediaTimeout):
            return
        count = (await engine.stats(s.media_id)).rx_packets
        now = loop.time()
        if count != rx:
            rx, last_rx, s.got_audio = count, now, True
        elif now - last_rx >= s.spec.silence_timeout:
            return


async def conclude(call: Call) -> VoicemailMessage | None:
    """Stop taking a message (if the call was in voicemail) and release its media; the
    message, or None. Never raises: the call's end must be published whatever happens."""
    s = _SESSIONS.pop(call, None)
    if s is None:
        return None
    engine = call.host.engine
    try:
        return await _stop(call, engine, s)
    except Exception:
        log.exception("call %s: voicemail lost", call.call_id)
        return None
    finally:
        await _close(engine, s)


async def _stop(call: Call, engine: MediaEngine, s: _Session) -> VoicemailMessage | None:
    task = s.task
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if s.recording_id is None or s.finished is None:
        return None  # hung up before the beep
    with contextlib.suppress(MediaEngineError):
        s.got_audio = s.got_audio or (await engine.stats(s.media_id)).rx_packets > s.rx_at_start
    try:
        await engine.stop_recording(s.recording_id)
        done = await asyncio.wait_for(asyncio.shield(s.finished), 3.0)
    except (MediaEngineError, TimeoutError) as exc:
        log.warning("call %s: voicemail recording not finished: %s", call.call_id, exc)
        return None
    if done.duration < s.spec.min_seconds or not s.got_audio:
        await asyncio.to_thread(s.path.unlink, missing_ok=True)
        return None
    await asyncio.to_thread(_to_mono, s.path)
    return VoicemailMessage(s.path, round(done.duration, 3), s.spec.notify)


async def _close(engine: MediaEngine, s: _Session) -> None:
    for off in s.unsubscribe:
        off()
    s.unsubscribe.clear()
    if s.owns_leg:
        with contextlib.suppress(MediaError):
            await engine.release(s.media_id)


def _to_mono(path: Path) -> None:
    """Keep the left (caller's) channel of the stereo recording; the right one is silence.
    Best effort: on any trouble the stereo file stays."""
    try:
        wav = parse_wav(path.read_bytes())
        if wav.channels != 2 or wav.bits_per_sample != 16:
            return
        left = bytearray(len(wav.data) // 2)
        left[0::2] = wav.data[0::4]
        left[1::2] = wav.data[1::4]
        tmp = path.with_name(f".{path.name}.mono")
        tmp.write_bytes(encode_wav(bytes(left), sample_rate=wav.sample_rate, channels=1))
        os.replace(tmp, path)
    except (OSError, WavError) as exc:
        log.warning("voicemail %s left in stereo: %s", path.name, exc)
