"""A call's recording, for every call actor (call.py, originate.py; pickup.py starts one as
an answer would): started once on one media leg — the engine records that leg on the left
channel and whatever is bridged to it on the right —, stopped when the call ends, waiting for
the engine's RecordingFinished so the WAV is complete before CallRecorded goes out."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from zvonar.media.engine import MediaEngine, MediaEngineError, RecordingFinished

__all__ = ["Recording"]

log = logging.getLogger(__name__)

_FINISH_SECONDS = 3.0  # the engine writes the WAV's last frames and header


class Recording:
    def __init__(self) -> None:
        self.recording_id: str | None = None
        self.path: Path | None = None
        self.failed = False
        self._done: asyncio.Future[RecordingFinished] | None = None

    async def start(self, engine: MediaEngine, media_id: str, path: Path) -> None:
        """Record ``media_id`` (and its bridged peer) into ``path``; once per call."""
        if self.recording_id is not None or self.failed:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            done = asyncio.get_running_loop().create_future()
            self.recording_id = await engine.start_recording(media_id, path)
        except (OSError, MediaEngineError) as exc:
            # A full disk or a broken recordings directory must not cost the customer the
            # call: it goes on unrecorded (once tried, never again for this call).
            self.failed = True
            log.error("recording %s not started, the call goes on unrecorded: %s", path, exc)
            return
        self._done = done
        self.path = path

    def finished(self, event: RecordingFinished) -> None:
        """The engine's event (routed by the B2BUA to the call)."""
        if self._done is not None and not self._done.done():
            self._done.set_result(event)

    async def stop(self, engine: MediaEngine, call_id: str) -> RecordingFinished | None:
        """Stop it; the finished recording, or None (none running, or it did not finish)."""
        rid, fut = self.recording_id, self._done
        if rid is None or fut is None:
            return None
        self.recording_id = None
        try:
            await engine.stop_recording(rid)
            return await asyncio.wait_for(asyncio.shield(fut), _FINISH_SECONDS)
        except (MediaEngineError, TimeoutError) as exc:
            log.warning("call %s: recording not finished: %s", call_id, exc)
            return None
