from tests.media.rtpengine.conftest import rtpengine_daemon

__all__ = ["rtpengine_daemon"]
