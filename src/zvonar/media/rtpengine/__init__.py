"""rtpengine behind the MediaEngine interface: bencode, the ng protocol, client, adapter."""

from zvonar.media.rtpengine.adapter import RtpengineMediaEngine
from zvonar.media.rtpengine.client import NgClient

__all__ = ["NgClient", "RtpengineMediaEngine"]
