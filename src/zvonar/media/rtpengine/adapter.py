"""A :class:`~zvonar.media.engine.MediaEngine` over rtpengine (``ng`` protocol).

rtpengine relays between the two sides of an offer/answer exchange, each side a
"monologue" named by a SIP tag. Zvonar's B2BUA instead hands the engine legs one at a time
and writes its own SDP, so the adapter maps legs onto rtpengine like this:

* legs are allocated in **pairs**: the first leg of a call creates an rtpengine call with
  two tags (``a``, ``b``) by an ``offer`` and an ``answer`` of placeholder SDPs
  (``a=sendonly`` from the discard port 9, see :mod:`zvonar.media.rtpengine.sdp`) and takes
  one tag; rtpengine's replies give the local
  port of both sides. The next leg allocated in that call takes the other tag; a third
  leg starts another pair. Media between the two tags is blocked (``block media``) until
  they are bridged;
* ``configure`` re-runs offer + answer for the pair with the legs' real SDPs (built from
  :class:`RemoteMedia`), asking for ``port latching`` so the ports stay those already
  handed out, and allowing PCMU <-> PCMA transcoding;
* ``bridge`` = ``unblock media`` both ways; only the two legs of one pair can be bridged
  (rtpengine 10.5 cannot join monologues of different calls): anything else raises
  :class:`UnsupportedError`;
* ``play`` = ``play media`` to the leg's tag (the partner's media is blocked meanwhile,
  since rtpengine plays *alongside* forwarded audio), ending with a timer set from the
  ``duration`` rtpengine reports;
* recording uses ``start recording`` with rtpengine's ``pcap`` method; ``stop_recording``
  converts the pcap to Zvonar's stereo WAV (:mod:`zvonar.media.pcap`). Unlike the embedded
  engine, the WAV only exists once the recording stops (rtpengine's pcap is the crash-safe
  copy meanwhile). rtpengine and Zvonar must share the recording directory;
* ``monitor`` (a silent listener hearing both sides mixed) raises :class:`UnsupportedError`:
  the listener's leg is always in another rtpengine call than the pair it would hear, and
  rtpengine 10.5 cannot join monologues of different calls (as for ``bridge``). A mix into a
  third leg (rtpengine's ``subscribe request`` with transcoding, untried here) is left
  undone: listening needs the embedded engine;
* DTMF comes from rtpengine's DTMF log (``--dtmf-log-dest`` pointing at ``dtmf_listen``),
  one JSON datagram per digit; media timeouts from polling ``query`` for each stream's
  ``last packet`` (one-second resolution).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import socket
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from zvonar.media.dtmf import event_to_digit
from zvonar.media.engine import (
    AddressFamily,
    DtmfReceived,
    EventHandler,
    LegEndpoint,
    LegStats,
    MediaEngineError,
    MediaEvent,
    MediaTimeout,
    PlaybackFinished,
    PlaybackId,
    PlaybackReason,
    PromptNotFoundError,
    RecordingFinished,
    RecordingId,
    RemoteMedia,
    UnknownLegError,
    UnsupportedError,
)
from zvonar.media.errors import MediaError
from zvonar.media.pcap import pcap_to_stereo_wav
from zvonar.media.rtpengine.bencode import BValue
from zvonar.media.rtpengine.client import NgClient
from zvonar.media.rtpengine.ng import NgError, as_int
from zvonar.media.rtpengine.pairs import (
    Pair,
    Playback,
    Recording,
    Slot,
    last_heard,
    leg_stats,
    streams_by_tag,
)
from zvonar.media.rtpengine.sdp import placeholder_sdp, remote_sdp, sdp_endpoint
from zvonar.media.wav import parse_wav

__all__ = ["RtpengineMediaEngine"]

log = logging.getLogger(__name__)

_TAGS = ("a", "b")
_LOOP_REPEATS = 1_000_000  # "forever" for a looped playback (stopped explicitly)
_FLAGS = ["port latching", "trust address"]
_CODECS = {"transcode": ["PCMU", "PCMA"]}


class RtpengineMediaEngine:
    """``host``/``port``: rtpengine's ``--listen-ng``. ``recording_dir``: its
    ``--recording-dir`` (needed for recording). ``dtmf_listen``: the address its
    ``--dtmf-log-dest`` points at (None: no DTMF events)."""

    bridges_any_legs = False  # only the two legs of a pair (module docstring)
    srtp = False  # we write the SDP; rtpengine is not given SDES keys to use

    def __init__(
        self,
        host: str,
        port: int,
        *,
        recording_dir: Path | None = None,
        dtmf_listen: tuple[str, int] | None = None,
        media_timeout: float = 30.0,
        poll_interval: float = 1.0,
        ng_interval: float = 0.25,
        ng_attempts: int = 4,
    ) -> None:
        self._client = NgClient(host, port, interval=ng_interval, attempts=ng_attempts)
        self.recording_dir = recording_dir
        self.dtmf_listen = dtmf_listen
        self.media_timeout = media_timeout
        self.poll_interval = poll_interval
        self._pairs: dict[str, list[Pair]] = {}  # call id -> its pairs
        self._legs: dict[str, Pair] = {}
        self._by_ng_call: dict[str, Pair] = {}
        self._recordings: dict[str, Recording] = {}
        self._handlers: list[EventHandler] = []
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dtmf_sock: socket.socket | None = None
        self._poller: asyncio.Task[None] | None = None
        self._closed = False

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        await self._client.connect()
        if not await self._client.ping():
            raise MediaEngineError("rtpengine did not answer ping with pong")
        if self.dtmf_listen is not None:
            host, port = self.dtmf_listen
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.bind((host, port))
            sock.setblocking(False)
            self._dtmf_sock = sock
            self._loop.add_reader(sock.fileno(), self._on_dtmf_log)
        if self.media_timeout > 0:
            self._poller = self._loop.create_task(self._poll_timeouts())

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        for recording_id in list(self._recordings):
            with contextlib.suppress(MediaEngineError):
                await self.stop_recording(recording_id)
        for leg_id in list(self._legs):
            with contextlib.suppress(MediaEngineError):
                await self.release(leg_id)
        if self._dtmf_sock is not None and self._loop is not None:
            self._loop.remove_reader(self._dtmf_sock.fileno())
            self._dtmf_sock.close()
        self._client.close()

    def subscribe(self, handler: EventHandler) -> Callable[[], None]:
        self._handlers.append(handler)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._handlers.remove(handler)

        return unsubscribe

    def _emit(self, event: MediaEvent) -> None:
        loop = self._loop
        for handler in list(self._handlers):
            # As the embedded engine does: never from inside our own callbacks.
            if loop is not None:
                loop.call_soon(_deliver, handler, event)

    async def _ng(self, command: str, pair: Pair, **params: object) -> dict[str, BValue]:
        if self._closed and command != "delete":
            raise MediaEngineError("engine is closed")
        return await self._client.request(command, {"call-id": pair.ng_call_id, **params})

    def _pair(self, leg_id: str) -> Pair:
        pair = self._legs.get(leg_id)
        if pair is None:
            raise UnknownLegError(f"no such leg: {leg_id!r}")
        return pair

    # --- legs ---------------------------------------------------------------------------

    async def allocate(
        self, call_id: str, leg_id: str, *, family: AddressFamily = AddressFamily.IP4
    ) -> LegEndpoint:
        if leg_id in self._legs:
            raise MediaEngineError(f"leg {leg_id!r} already allocated")
        pair = next(
            (
                p
                for p in self._pairs.get(call_id, [])
                if p.family is family and any(s.leg_id is None for s in p.slots)
            ),
            None,
        )
        if pair is None:
            pair = await self._new_pair(call_id, family)
        slot = next(s for s in pair.slots if s.leg_id is None)
        slot.leg_id = leg_id
        slot.remote = None
        self._legs[leg_id] = pair
        return LegEndpoint(leg_id, call_id, slot.address, slot.port, family)

    async def _new_pair(self, call_id: str, family: AddressFamily) -> Pair:
        ng_call_id = f"{call_id}.{next(self._ids)}".replace(" ", "_").replace("/", "_")
        placeholder = placeholder_sdp(family)
        base = {"flags": _FLAGS, "address family": family.value}
        offer = await self._client.request(
            "offer",
            {"call-id": ng_call_id, "from-tag": "a", "sdp": placeholder, "codec": _CODECS, **base},
        )
        answer = await self._client.request(
            "answer",
            {"call-id": ng_call_id, "from-tag": "a", "to-tag": "b", "sdp": placeholder, **base},
        )
        # The offer's rewritten SDP is what the b side sends to, the answer's the a side.
        b_addr, b_port = sdp_endpoint(offer.get("sdp"))
        a_addr, a_port = sdp_endpoint(answer.get("sdp"))
        pair = Pair(
            ng_call_id, call_id, family, (Slot("a", a_addr, a_port), Slot("b", b_addr, b_port))
        )
        self._pairs.setdefault(call_id, []).append(pair)
        self._by_ng_call[ng_call_id] = pair
        for tag in _TAGS:
            await self._ng("block media", pair, **{"from-tag": tag})
        return pair

    async def configure(self, leg_id: str, remote: RemoteMedia) -> None:
        pair = self._pair(leg_id)
        slot = pair.slot_of(leg_id)
        if remote.family is not pair.family:
            raise MediaEngineError(f"leg {leg_id!r} is {pair.family.value}, remote media is not")
        slot.remote = remote
        slot.configured_at = time.time()
        slot.timed_out_at = None
        await self._sync(pair)

    async def _sync(self, pair: Pair) -> None:
        """Offer the a side's SDP and answer with the b side's: rtpengine learns both."""
        pair.version += 1
        a, b = pair.slots
        base = {"flags": _FLAGS, "address family": pair.family.value, "from-tag": "a"}
        offer = await self._ng("offer", pair, sdp=self._sdp_for(pair, a), codec=_CODECS, **base)
        answer = await self._ng(
            "answer", pair, sdp=self._sdp_for(pair, b), **{"to-tag": "b"}, **base
        )
        if (
            sdp_endpoint(offer.get("sdp"))[1] != b.port
            or sdp_endpoint(answer.get("sdp"))[1] != a.port
        ):
            raise MediaEngineError(f"rtpengine moved the ports of {pair.ng_call_id}")

    def _sdp_for(self, pair: Pair, slot: Slot) -> str:
        if slot.remote is None:
            return placeholder_sdp(pair.family)
        return remote_sdp(
            slot.remote, session_id=zlib.crc32(pair.ng_call_id.encode()), version=pair.version
        )

    async def release(self, leg_id: str) -> LegStats:
        pair = self._pair(leg_id)
        slot = pair.slot_of(leg_id)
        stats = await self._stats(pair, slot)
        self._finish_playback(slot, PlaybackReason.RELEASED)
        for recording_id in list(pair.recordings):
            if self._recordings[recording_id].leg_id == leg_id:
                with contextlib.suppress(MediaEngineError):
                    await self.stop_recording(recording_id)
        if pair.bridged:
            await self.unbridge(leg_id)
        del self._legs[leg_id]
        slot.leg_id = None
        slot.remote = None
        if all(s.leg_id is None for s in pair.slots):
            for recording_id in list(pair.recordings):
                with contextlib.suppress(MediaEngineError):
                    await self.stop_recording(recording_id)
            self._pairs[pair.call_id].remove(pair)
            if not self._pairs[pair.call_id]:
                del self._pairs[pair.call_id]
            del self._by_ng_call[pair.ng_call_id]
            with contextlib.suppress(NgError):
                await self._ng("delete", pair, **{"from-tag": "a", "delete delay": 0})
        elif not self._closed:
            await self._sync(pair)  # the freed side goes back to the placeholder
        return stats

    # --- bridging -----------------------------------------------------------------------

    async def bridge(self, leg_a: str, leg_b: str) -> None:
        pair = self._pair(leg_a)
        if self._pair(leg_b) is not pair or leg_a == leg_b:
            raise UnsupportedError(
                "rtpengine bridges only the two legs allocated as a pair in one call"
            )
        if pair.bridged:
            return
        pair.bridged = True
        for slot in pair.slots:
            if pair.other(slot).playback is None:  # its partner hears a prompt: keep blocked
                await self._ng("unblock media", pair, **{"from-tag": slot.tag})

    async def unbridge(self, leg_id: str) -> None:
        pair = self._pair(leg_id)
        if not pair.bridged:
            return
        pair.bridged = False
        for slot in pair.slots:
            await self._ng("block media", pair, **{"from-tag": slot.tag})

    # --- monitoring -----------------------------------------------------------------------

    async def monitor(self, monitor_leg: str, leg_id: str) -> None:
        self._pair(monitor_leg)
        self._pair(leg_id)
        raise UnsupportedError(
            "rtpengine cannot mix a bridged pair into a leg of another call (silent listening)"
        )

    async def unmonitor(self, monitor_leg: str) -> None:
        self._pair(monitor_leg)  # nothing can be monitoring: monitor() always refuses

    # --- playback -----------------------------------------------------------------------

    async def play(self, leg_id: str, path: Path, *, loop: bool = False) -> PlaybackId:
        pair = self._pair(leg_id)
        slot = pair.slot_of(leg_id)
        path = _playable(path)
        if slot.playback is not None:
            await self.stop_playback(leg_id)
        partner = pair.other(slot)
        if pair.bridged:  # rtpengine would play on top of the partner's audio
            await self._ng("block media", pair, **{"from-tag": partner.tag})
        repeats = _LOOP_REPEATS if loop else 1
        try:
            reply = await self._ng(
                "play media",
                pair,
                **{"from-tag": slot.tag, "file": str(path), "repeat-times": repeats},
            )
        except NgError as exc:
            raise PromptNotFoundError(f"rtpengine cannot play {path}: {exc}") from None
        playback = Playback(f"pb-{next(self._ids)}")
        slot.playback = playback
        if not loop and self._loop is not None:
            duration = as_int(reply["duration"]) / 1000 if "duration" in reply else _duration(path)
            playback.timer = self._loop.call_later(
                duration, self._on_playback_done, pair, slot, playback
            )
        return playback.playback_id

    def _on_playback_done(self, pair: Pair, slot: Slot, playback: Playback) -> None:
        if slot.playback is not playback:
            return
        self._finish_playback(slot, PlaybackReason.COMPLETED)
        if pair.bridged and self._loop is not None:
            self._loop.create_task(self._unblock_partner(pair, slot))

    async def _unblock_partner(self, pair: Pair, slot: Slot) -> None:
        with contextlib.suppress(MediaError):
            await self._ng("unblock media", pair, **{"from-tag": pair.other(slot).tag})

    def _finish_playback(self, slot: Slot, reason: PlaybackReason) -> None:
        playback = slot.playback
        if playback is None or slot.leg_id is None:
            return
        slot.playback = None
        if playback.timer is not None:
            playback.timer.cancel()
        self._emit(PlaybackFinished(slot.leg_id, playback.playback_id, reason))

    async def stop_playback(self, leg_id: str) -> None:
        pair = self._pair(leg_id)
        slot = pair.slot_of(leg_id)
        if slot.playback is None:
            return
        with contextlib.suppress(NgError):  # it may have just ended on its own
            await self._ng("stop media", pair, **{"from-tag": slot.tag})
        self._finish_playback(slot, PlaybackReason.STOPPED)
        if pair.bridged:
            await self._unblock_partner(pair, slot)

    # --- recording ----------------------------------------------------------------------

    async def start_recording(self, leg_id: str, path: Path) -> RecordingId:
        if self.recording_dir is None:
            raise UnsupportedError("recording needs the rtpengine recording directory")
        pair = self._pair(leg_id)
        await self._ng("start recording", pair)
        slot = pair.slot_of(leg_id)
        recording = Recording(f"rec-{next(self._ids)}", pair, leg_id, slot, Path(path), time.time())
        self._recordings[recording.recording_id] = recording
        pair.recordings.append(recording.recording_id)
        return recording.recording_id

    async def send_dtmf(
        self, leg_id: str, digit: str, duration: float = 0.1, *, inband: bool = False
    ) -> None:
        self._pair(leg_id)
        raise UnsupportedError("events are generated by the embedded engine only")

    async def move_recording(self, recording_id: RecordingId, leg_id: str) -> None:
        raise UnsupportedError("rtpengine records a pair: a recording cannot follow another")

    async def stop_recording(self, recording_id: RecordingId) -> Path:
        recording = self._recordings.pop(recording_id, None)
        if recording is None:
            raise MediaEngineError(f"no such recording: {recording_id!r}")
        pair = recording.pair
        pair.recordings.remove(recording_id)
        with contextlib.suppress(NgError):
            await self._ng("stop recording", pair)
        left = recording.slot  # not the pair's first slot: which leg came first varies
        right = pair.other(left)
        duration = await asyncio.to_thread(
            self._convert, pair.ng_call_id, recording.path, left.port, right.port, recording.started
        )
        self._emit(RecordingFinished(recording_id, recording.leg_id, recording.path, duration))
        return recording.path

    def _convert(self, ng_call_id: str, path: Path, left: int, right: int, start: float) -> float:
        if self.recording_dir is None:
            raise UnsupportedError("no recording directory")
        pcaps = sorted((self.recording_dir / "pcaps").glob(f"{ng_call_id}-*.pcap"))
        if not pcaps:
            raise MediaEngineError(f"rtpengine wrote no pcap for {ng_call_id}")
        data = pcaps[-1].read_bytes()
        wav = pcap_to_stereo_wav(data, left_port=left, right_port=right, start=start)
        path.write_bytes(wav)
        return parse_wav(wav).duration

    # --- stats, timeouts, DTMF ------------------------------------------------------------

    async def stats(self, leg_id: str) -> LegStats:
        pair = self._pair(leg_id)
        return await self._stats(pair, pair.slot_of(leg_id))

    async def _query_streams(self, pair: Pair) -> dict[str, dict[str, BValue]]:
        return streams_by_tag(await self._ng("query", pair))

    async def _stats(self, pair: Pair, slot: Slot) -> LegStats:
        try:
            streams = await self._query_streams(pair)
        except NgError:
            return LegStats(slot.leg_id or "?")
        return leg_stats(pair, slot, streams)

    async def _poll_timeouts(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            for pairs in list(self._pairs.values()):
                for pair in list(pairs):
                    try:
                        await self._check_pair(pair)
                    except MediaError as exc:
                        log.warning("rtpengine query for %s failed: %s", pair.ng_call_id, exc)

    async def _check_pair(self, pair: Pair) -> None:
        watched = [s for s in pair.slots if s.leg_id and s.remote and s.remote.peer_sends]
        if not watched:
            return
        streams = await self._query_streams(pair)
        now = time.time()
        for slot in watched:
            last = last_heard(slot, streams.get(slot.tag, {}))
            if slot.timed_out_at is not None:
                if last > slot.timed_out_at:
                    slot.timed_out_at = None
                continue
            if now - last >= self.media_timeout and slot.leg_id is not None:
                slot.timed_out_at = now
                self._emit(MediaTimeout(slot.leg_id, round(now - last, 3)))

    def _on_dtmf_log(self) -> None:
        sock = self._dtmf_sock
        while sock is not None:
            try:
                data = sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            try:
                event = json.loads(data)
                pair = self._by_ng_call.get(str(event["callid"]))
                digit = event_to_digit(int(event["event"]))
                tag = str(event["source_tag"])
                duration = float(event.get("duration", 0)) / 1000
            except (ValueError, KeyError, TypeError):
                log.warning("unreadable rtpengine DTMF log entry: %r", data[:200])
                continue
            if pair is None or digit is None:
                continue
            for slot in pair.slots:
                if slot.tag == tag and slot.leg_id is not None:
                    self._emit(DtmfReceived(slot.leg_id, digit, duration))


def _deliver(handler: EventHandler, event: MediaEvent) -> None:
    try:
        handler(event)
    except Exception:
        log.exception("media event handler failed on %r", event)


def _playable(path: Path) -> Path:
    # rtpengine opens the file itself, relative to its own working directory: pass it an
    # absolute path, and fail here rather than with its vaguer error.
    absolute = Path(os.path.abspath(path))
    if not absolute.is_file():
        raise PromptNotFoundError(f"cannot read {absolute}")
    return absolute


def _duration(path: Path) -> float:
    try:
        return parse_wav(path.read_bytes()).duration
    except (OSError, MediaError):
        return 0.0
