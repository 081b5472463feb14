"""The embedded media engine: RTP sockets and timers on the asyncio loop (see engine.py)."""

from zvonar.media.io.engine import EmbeddedMediaEngine

__all__ = ["EmbeddedMediaEngine"]
