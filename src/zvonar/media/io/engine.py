"""The embedded media engine: every leg of every call relayed by one asyncio loop.

Sockets and timers live here (and in the modules next to it) only; what a datagram means is
decided by :mod:`zvonar.media.io.leg` with the sans-IO helpers of :mod:`zvonar.media`
(DTMF receiver and detector, receiver statistics, G.711 tables, the WAV writer).

One clock drives everything periodic: a tick every 20 ms scheduled as ``start + k * 20 ms``
with ``loop.call_at`` (never ``sleep(0.02)``, which accumulates the loop's lateness). Each
tick sends the playback frames and the monitor mixes that are due; every 10th tick (200 ms)
runs the DTMF end-of-event timers, the media-timeout check (no RTP from a peer that should
send; no RTCP from one that holds the call but has reported during the hold) and the RTCP
reports that are due (io/leg.py; a leg's RTCP arrives on its second socket, port + 1);
recordings are flushed round-robin, a fiftieth of them per tick, so each is flushed about
once a second and no tick pays for all.

Recordings and monitors (:mod:`zvonar.media.io.monitor`) are *taps* that follow a leg: they
get its received audio and, while it is bridged, its peer's, so a bridge made or undone later
(a transfer, an agent after a queue) moves them along.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from zvonar.media.dtmf import DtmfDigit, DtmfSource, digit_to_event
from zvonar.media.engine import (
    AddressFamily,
    DtmfReceived,
    EngineClosedError,
    EventHandler,
    LegEndpoint,
    LegStats,
    MediaEngineError,
    MediaEvent,
    MediaTimeout,
    PlaybackFinished,
    PlaybackId,
    PlaybackReason,
    RecordingFinished,
    RecordingId,
    RemoteMedia,
    UnknownLegError,
    UnsupportedError,
)
from zvonar.media.io.dtmf_out import DtmfSender
from zvonar.media.io.leg import Leg, Tap
from zvonar.media.io.monitor import Mixer
from zvonar.media.io.player import AudioCache, Player
from zvonar.media.io.recorder import StereoRecorder
from zvonar.media.io.sockets import PortPool, SocketMux
from zvonar.media.rtcp_session import MIN_INTERVAL
from zvonar.media.sdes import new_master_key

__all__ = ["EmbeddedMediaEngine"]

log = logging.getLogger(__name__)

TICK = 0.02
_SLOW_EVERY = 10  # ticks between timeout / DTMF timer checks
_FLUSH_EVERY = 50  # ticks over which all recordings are flushed once
_BUFFER_SIZE = 65536  # any UDP datagram fits: nothing is silently truncated


class EmbeddedMediaEngine:
    """The default :class:`zvonar.media.engine.MediaEngine`.

    ``host4``/``host6`` are the addresses RTP sockets bind to (``host6=None``: no IPv6);
    ``advertise4``/``advertise6`` what goes into SDP when it differs (a public address in
    front of a 1:1 NAT). ``port_range`` picks even ports from an inclusive range (None: the
    kernel chooses). ``media_timeout`` seconds without RTP from a peer that should send, or
    without RTCP from one that holds the call (once it reported during the hold), raise
    :class:`MediaTimeout` (0 disables). ``mux`` is ``"epoll"``, ``"loop"`` or
    ``"auto"`` (see :mod:`zvonar.media.io.sockets`). ``rtcp_interval``: the minimum report
    interval of RFC 3550 §6.2 (5 s; tests shorten it).
    """

    bridges_any_legs = True

    def __init__(
        self,
        *,
        host4: str = "127.0.0.1",
        host6: str | None = "::1",
        advertise4: str | None = None,
        advertise6: str | None = None,
        port_range: tuple[int, int] | None = None,
        media_timeout: float = 30.0,
        inband_dtmf: bool = True,
        mux: str = "auto",
        recording_margin: float = 0.3,
        srtp: bool = True,
        rtcp_interval: float = MIN_INTERVAL,
    ) -> None:
        self.host4 = host4
        self.host6 = host6
        self.advertise4 = advertise4 or host4
        self.advertise6 = advertise6 or host6
        self.media_timeout = media_timeout
        self.inband_dtmf = inband_dtmf
        self.recording_margin = recording_margin
        self.srtp = srtp  # legs get SRTP keys, so RTP/SAVP (SDES) can be offered and accepted
        self._mux_mode = mux
        self.rtcp_interval = rtcp_interval
        self._ports = PortPool(port_range)
        self._buf = bytearray(_BUFFER_SIZE)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._mux: SocketMux | None = None
        self._legs: dict[str, Leg] = {}
        self._players: dict[str, Player] = {}
        self._dtmf_out: dict[str, DtmfSender] = {}  # by leg: digits we send (dtmf_out.py)
        self._recorders: dict[str, StereoRecorder] = {}
        self._monitors: dict[str, Mixer] = {}  # by monitor leg
        self._flush_order: list[str] = []
        self._handlers: list[EventHandler] = []
        self._cache = AudioCache()
        self._ids = itertools.count(1)
        self._timer: asyncio.TimerHandle | None = None
        self._tick_start = 0.0
        self._tick_count = 0
        self._closed = False

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def mux_mode(self) -> str:
        return self._mux.mode if self._mux is not None else self._mux_mode

    async def start(self) -> None:
        if self._closed:
            raise EngineClosedError("engine is closed")
        if self._loop is not None:
            return
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._mux = SocketMux(loop, self._mux_mode)
        self._tick_start = loop.time()
        self._tick_count = 0
        self._schedule()

    async def close(self) -> None:
        if self._closed:
            return
        for leg_id in list(self._legs):
            self._release(leg_id)
        for recording_id in list(self._recorders):
            self._finish_recording(recording_id)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._mux is not None:
            self._mux.close()
        self._ports.close()
        self._closed = True

    def subscribe(self, handler: EventHandler) -> Callable[[], None]:
        self._handlers.append(handler)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._handlers.remove(handler)

        return unsubscribe

    def _emit(self, event: MediaEvent) -> None:
        loop = self._loop
        for handler in self._handlers:
            # Never from inside the datagram handler: a handler may call back into us.
            if loop is not None:
                loop.call_soon(self._deliver, handler, event)

    @staticmethod
    def _deliver(handler: EventHandler, event: MediaEvent) -> None:
        try:
            handler(event)
        except Exception:
            log.exception("media event handler failed on %r", event)

    def _require(self) -> SocketMux:
        if self._closed:
            raise EngineClosedError("engine is closed")
        if self._mux is None:
            raise MediaEngineError("engine not started")
        return self._mux

    def _leg(self, leg_id: str) -> Leg:
        leg = self._legs.get(leg_id)
        if leg is None:
            raise UnknownLegError(f"no such leg: {leg_id!r}")
        return leg

    @property
    def leg_count(self) -> int:
        return len(self._legs)

    # --- legs ---------------------------------------------------------------------------

    async def allocate(
        self, call_id: str, leg_id: str, *, family: AddressFamily = AddressFamily.IP4
    ) -> LegEndpoint:
        mux = self._require()
        if leg_id in self._legs:
            raise MediaEngineError(f"leg {leg_id!r} already allocated")
        if family is AddressFamily.IP6:
            if self.host6 is None or self.advertise6 is None:
                raise MediaEngineError("IPv6 media is not configured")
            host, advertised = self.host6, self.advertise6
        else:
            host, advertised = self.host4, self.advertise4
        try:
            sock, rtcp_sock = self._ports.bind(host, family)
        except OSError as exc:  # out of descriptors (EMFILE), an address not ours...
            raise MediaEngineError(f"cannot open media sockets on {host}: {exc}") from exc
        leg = Leg(
            leg_id=leg_id,
            call_id=call_id,
            family=family,
            sock=sock,
            advertised=advertised,
            buf=self._buf,
            emit_dtmf=self._on_dtmf,
            srtp_key=new_master_key() if self.srtp else None,
            rtcp_sock=rtcp_sock,
            rtcp_interval=self.rtcp_interval,
        )
        leg.inband_enabled = self.inband_dtmf
        self._legs[leg_id] = leg
        mux.add(leg.fd, leg.on_readable)
        mux.add(leg.rtcp_end.fd, functools.partial(leg.rtcp_end.on_readable, leg))
        return LegEndpoint(
            leg_id,
            call_id,
            advertised,
            leg.port,
            family,
            leg.srtp_key,
            rtcp_port=leg.rtcp_end.port,
            rtcp_mux=True,
        )

    async def configure(self, leg_id: str, remote: RemoteMedia) -> None:
        self._require()
        leg = self._leg(leg_id)
        if remote.family is not leg.family:
            raise MediaEngineError(
                f"leg {leg_id!r} is {leg.family.value}, remote media is {remote.family.value}"
            )
        if remote.srtp is not None and remote.srtp.local_key != leg.srtp_key:
            raise MediaEngineError(f"leg {leg_id!r}: SRTP keys that are not the leg's own")
        leg.configure(remote, time.monotonic())

    async def release(self, leg_id: str) -> LegStats:
        self._require()
        self._leg(leg_id)
        return self._release(leg_id)

    def _release(self, leg_id: str) -> LegStats:
        leg = self._legs.pop(leg_id)
        self._unbridge(leg)
        self._stop_player(leg, PlaybackReason.RELEASED)
        sender = self._dtmf_out.pop(leg_id, None)
        if sender is not None:
            sender.stop()
        for recording_id, recorder in list(self._recorders.items()):
            if recorder.leg_id == leg_id:
                self._finish_recording(recording_id)
        if self._monitors:  # as a listener, or as the leg listened to: nothing more to mix
            self._drop_monitor(leg_id)
            for monitor_leg, mixer in list(self._monitors.items()):
                if mixer.leg_id == leg_id:
                    self._drop_monitor(monitor_leg)
        if self._mux is not None:
            self._mux.remove(leg.fd)
            self._mux.remove(leg.rtcp_end.fd)
        leg.rtcp_end.leave(leg, time.monotonic())  # its BYE may go out on the RTP socket
        self._ports.release(leg.sock, leg.rtcp_end.sock, leg.family)
        return leg.stats()

    async def stats(self, leg_id: str) -> LegStats:
        return self._leg(leg_id).stats()

    # --- bridging -----------------------------------------------------------------------

    async def bridge(self, leg_a: str, leg_b: str) -> None:
        self._require()
        a, b = self._leg(leg_a), self._leg(leg_b)
        if a is b:
            raise MediaEngineError("cannot bridge a leg to itself")
        if a.peer is b:
            return
        if self._monitors:  # a monitor leg that is bridged talks: it listens no more
            self._drop_monitor(leg_a)
            self._drop_monitor(leg_b)
        self._unbridge(a)
        self._unbridge(b)
        a.peer, b.peer = b, a
        a.restart_source()
        b.restart_source()
        # A recording or monitor of either leg now hears the other on its channel 1.
        if self._recorders or self._monitors:
            for tap in self._taps():
                if tap.leg_id == a.leg_id:
                    b.taps.append((tap, 1 - tap.channel))
                elif tap.leg_id == b.leg_id:
                    a.taps.append((tap, 1 - tap.channel))

    def _taps(self) -> Iterator[Tap]:
        yield from self._recorders.values()
        yield from self._monitors.values()

    async def unbridge(self, leg_id: str) -> None:
        self._require()
        self._unbridge(self._leg(leg_id))

    def _unbridge(self, leg: Leg) -> None:
        peer = leg.peer
        if peer is None:
            return
        leg.peer = None
        peer.peer = None
        # Each drops the taps that heard it only as the other's peer.
        peer.taps = [(r, c) for r, c in peer.taps if r.leg_id != leg.leg_id]
        leg.taps = [(r, c) for r, c in leg.taps if r.leg_id != peer.leg_id]

    # --- playback -----------------------------------------------------------------------

    async def play(self, leg_id: str, path: Path, *, loop: bool = False) -> PlaybackId:
        self._require()
        leg = self._leg(leg_id)
        audio = await self._cache.load(Path(path), leg.codec)
        if self._legs.get(leg_id) is not leg:  # released while the file loaded
            raise UnknownLegError(f"no such leg: {leg_id!r}")
        self._stop_player(leg, PlaybackReason.STOPPED)
        playback_id = f"pb-{next(self._ids)}"
        now = time.monotonic()
        player = Player(playback_id, leg, audio, loop=loop, start=now)
        leg.player = player
        self._players[playback_id] = player
        self._run_player(player, now)  # the first frame goes out now, not at the next tick
        return playback_id

    async def stop_playback(self, leg_id: str) -> None:
        self._require()
        self._stop_player(self._leg(leg_id), PlaybackReason.STOPPED)

    def _stop_player(self, leg: Leg, reason: PlaybackReason) -> None:
        player = leg.player
        if player is None:
            return
        leg.player = None
        self._players.pop(player.playback_id, None)
        self._emit(PlaybackFinished(leg.leg_id, player.playback_id, reason))

    def _run_player(self, player: Player, now: float) -> None:
        if player.tick(now):
            self._stop_player(player.leg, PlaybackReason.COMPLETED)

    # --- keys we send -------------------------------------------------------------------

    async def send_dtmf(
        self, leg_id: str, digit: str, duration: float = 0.1, *, inband: bool = False
    ) -> None:
        self._require()
        leg = self._leg(leg_id)
        if leg.te_pt < 0 and not inband:
            raise UnsupportedError(f"leg {leg_id!r} negotiated no telephone-event")
        digit_to_event(digit)  # DtmfError for a key there is no event for
        self._key_out(leg, digit, duration)

    def _key_out(self, leg: Leg, digit: str, duration: float) -> None:
        sender = self._dtmf_out.get(leg.leg_id)
        if sender is None:
            sender = self._dtmf_out[leg.leg_id] = DtmfSender(leg)
        sender.add(digit, min(max(duration, 0.04), 8.0))
        if sender.tick(time.monotonic()):  # the first packet goes out now
            del self._dtmf_out[leg.leg_id]

    # --- recording ----------------------------------------------------------------------

    async def start_recording(self, leg_id: str, path: Path) -> RecordingId:
        self._require()
        leg = self._leg(leg_id)
        recording_id = f"rec-{next(self._ids)}"
        try:
            recorder = StereoRecorder(
                recording_id, leg_id, Path(path), time.monotonic(), margin=self.recording_margin
            )
        except OSError as exc:
            raise MediaEngineError(f"cannot record to {path}: {exc.strerror}") from None
        self._recorders[recording_id] = recorder
        self._flush_order.append(recording_id)
        leg.taps.append((recorder, 0))
        if leg.peer is not None:
            leg.peer.taps.append((recorder, 1))
        return recording_id

    async def stop_recording(self, recording_id: RecordingId) -> Path:
        self._require()
        recorder = self._recorders.get(recording_id)
        if recorder is None:
            raise MediaEngineError(f"no such recording: {recording_id!r}")
        self._finish_recording(recording_id)
        return recorder.path

    async def move_recording(self, recording_id: RecordingId, leg_id: str) -> None:
        self._require()
        recorder = self._recorders.get(recording_id)
        if recorder is None:
            raise MediaEngineError(f"no such recording: {recording_id!r}")
        leg = self._leg(leg_id)
        if leg.peer is None or leg.peer.leg_id != recorder.leg_id:
            raise MediaEngineError(f"leg {leg_id!r} is not bridged to {recorder.leg_id!r}")
        # Both legs already feed it (the peer on the other channel): only who it follows
        # changes, so nothing is lost or heard twice at the switch.
        recorder.leg_id = leg_id
        recorder.channel = 1 - recorder.channel

    def _finish_recording(self, recording_id: str) -> None:
        recorder = self._recorders.pop(recording_id)
        self._flush_order.remove(recording_id)
        for leg in self._legs.values():
            if leg.taps:
                leg.taps = [(r, c) for r, c in leg.taps if r is not recorder]
        try:
            duration = recorder.close(time.monotonic())
        except OSError:
            log.exception("closing recording %s failed", recording_id)
            duration = recorder.written / 8000
        self._emit(RecordingFinished(recording_id, recorder.leg_id, recorder.path, duration))

    # --- monitoring (a silent listener) -------------------------------------------------

    async def monitor(self, monitor_leg: str, leg_id: str) -> None:
        self._require()
        out, leg = self._leg(monitor_leg), self._leg(leg_id)
        if out is leg:
            raise MediaEngineError("a leg cannot monitor itself")
        if out is leg.peer:
            raise MediaEngineError(f"{monitor_leg!r} is bridged to {leg_id!r}: it would be heard")
        # Silent means bridged to nobody: what the listener's phone sends then goes nowhere.
        self._unbridge(out)
        self._drop_monitor(monitor_leg)
        mixer = Mixer(leg_id, out, time.monotonic())
        self._monitors[monitor_leg] = mixer
        leg.taps.append((mixer, 0))
        if leg.peer is not None:
            leg.peer.taps.append((mixer, 1))
        out.restart_source()

    async def unmonitor(self, monitor_leg: str) -> None:
        self._require()
        self._leg(monitor_leg)
        self._drop_monitor(monitor_leg)

    def _drop_monitor(self, monitor_leg: str) -> None:
        mixer = self._monitors.pop(monitor_leg, None)
        if mixer is None:
            return
        for leg in self._legs.values():
            if leg.taps:
                leg.taps = [(t, c) for t, c in leg.taps if t is not mixer]
        mixer.out.restart_source()

    # --- events from legs ---------------------------------------------------------------

    def _on_dtmf(self, leg: Leg, digit: DtmfDigit) -> None:
        inband = digit.source is DtmfSource.INBAND
        peer = leg.peer
        if not inband and peer is not None and peer.te_pt < 0 and peer.dest is not None:
            # The other side took no telephone-event (an in-band-only trunk): the relay had
            # nothing to pass the key on as, so it hears the key's tones instead.
            self._key_out(peer, digit.digit, digit.duration)
        self._emit(DtmfReceived(leg.leg_id, digit.digit, digit.duration, inband))

    # --- the clock ----------------------------------------------------------------------

    def _schedule(self) -> None:
        loop = self._loop
        if loop is None or self._closed:
            return
        self._tick_count += 1
        when = self._tick_start + self._tick_count * TICK
        now = loop.time()
        if when < now - 5 * TICK:  # the loop stalled: resynchronise instead of firing a burst
            self._tick_count = int((now - self._tick_start) / TICK) + 1
            when = self._tick_start + self._tick_count * TICK
        self._timer = loop.call_at(when, self._tick)

    def _tick(self) -> None:
        try:
            now = time.monotonic()
            for player in list(self._players.values()):
                self._run_player(player, now)
            for leg_id, sender in list(self._dtmf_out.items()):
                if sender.tick(now):
                    del self._dtmf_out[leg_id]
            for mixer in self._monitors.values():
                mixer.tick(now)
            count = self._tick_count
            if count % _SLOW_EVERY == 0:
                self._check_legs(now)
            self._flush_some(count, now)
        except Exception:
            log.exception("media engine tick failed")
        finally:
            self._schedule()

    def _check_legs(self, now: float) -> None:
        timeout = self.media_timeout
        for leg in self._legs.values():
            if leg.dtmf is not None:
                leg.dtmf_timer(now)
            leg.rtcp_end.tick(leg, now)
            remote = leg.remote
            if timeout <= 0 or remote is None or leg.configured_at is None:
                continue
            if remote.peer_sends:
                last = leg.last_rx if leg.last_rx is not None else leg.configured_at
            elif (heard := leg.rtcp_end.last_heard) is not None and heard > leg.configured_at:
                # A peer holding the call sends no RTP, but RTCP goes on whatever the
                # direction (RFC 3264 §5.1): one that reported during this hold and then
                # falls silent is gone. Some phones stop RTCP when they hold; having sent
                # none since, they are never cut.
                last = heard
            else:
                continue
            last = max(last, leg.configured_at)
            if leg.timed_out_at is not None:
                if last > leg.timed_out_at:
                    leg.timed_out_at = None  # media came back; arm again
                continue
            if now - last >= timeout:
                leg.timed_out_at = now
                self._emit(MediaTimeout(leg.leg_id, round(now - last, 3)))

    def _flush_some(self, count: int, now: float) -> None:
        order = self._flush_order
        if not order:
            return
        slot = count % _FLUSH_EVERY
        for index in range(slot, len(order), _FLUSH_EVERY):
            recorder = self._recorders[order[index]]
            try:
                recorder.flush(now)
            except OSError:
                log.exception("recording %s: write failed; stopping it", recorder.recording_id)
                self._finish_recording(recorder.recording_id)
                return
