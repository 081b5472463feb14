"""SRTP for one leg of the embedded engine (RFC 3711), keyed by SDES (:mod:`zvonar.media.sdes`).

The packet transforms are libsrtp's (Cisco's C library, through ``pylibsrtp``): key
derivation, AES counter mode, HMAC-SHA1 tags, the rollover counter and the replay window are
the parts of a media stack least worth writing again, and libsrtp is what the phones on the
other end run too. This module only binds the negotiated keys to its two sessions: one
protecting what the leg sends (our key, our one SSRC) and one checking what it receives (the
peer's key, any SSRC it uses — a phone may restart its stream with a new one).

A packet that fails its check (wrong key, a forged or damaged tag, a replay) is dropped and
counted by the leg, like any other datagram it cannot use; it never raises into the socket's
reader. The same two sessions carry the leg's RTCP as SRTCP (RFC 3711 §3.4: SDES keys cover
both, and SRTCP's authentication is mandatory), with its own index and replay window.
"""

from __future__ import annotations

from collections.abc import Callable

import pylibsrtp

from zvonar.media.sdes import CryptoSuite, SrtpParams

__all__ = ["SrtpStreams"]

_PROFILES = {
    CryptoSuite.AES_CM_128_HMAC_SHA1_80: pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    CryptoSuite.AES_CM_128_HMAC_SHA1_32: pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
}


def _session(suite: CryptoSuite, key: bytes, ssrc_type: int) -> pylibsrtp.Session:
    policy = pylibsrtp.Policy(key=key, ssrc_type=ssrc_type, srtp_profile=_PROFILES[suite])
    return pylibsrtp.Session(policy)


def _sends_as(params: SrtpParams) -> tuple[CryptoSuite, bytes]:
    return params.suite, params.local_key


class SrtpStreams:
    """Both directions of one leg's SRTP. ``previous``: the leg's streams before a re-offer;
    the sending side is kept when its suite and key did not change, so the stream's packet
    index (and with it the keystream) never starts over under the same key."""

    def __init__(self, params: SrtpParams, previous: SrtpStreams | None = None) -> None:
        self.params = params
        self._tx: pylibsrtp.Session
        self._rx: pylibsrtp.Session
        if previous is not None and _sends_as(previous.params) == _sends_as(params):
            self._tx = previous._tx
        else:
            self._tx = _session(params.suite, params.local_key, pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
        self._rx = _session(params.suite, params.remote_key, pylibsrtp.Policy.SSRC_ANY_INBOUND)

    # libsrtp raises for every packet it refuses; each of these answers None instead, so the
    # leg counts and drops it. (One helper for the four would cost the RTP path, which runs
    # 50 times a second per secured leg, a call frame per packet.)

    def protect(self, packet: bytes) -> bytes | None:
        """``packet`` (RTP) encrypted and tagged; None if libsrtp refuses it (the same
        sequence number sent twice: encrypting it again would reuse its keystream)."""
        try:
            return self._tx.protect(packet)
        except pylibsrtp.Error:
            return None

    def unprotect(self, packet: bytes) -> bytes | None:
        """The RTP inside an SRTP ``packet``; None if its tag is wrong or it is a replay."""
        try:
            return self._rx.unprotect(packet)
        except pylibsrtp.Error:
            return None

    def protect_rtcp(self, packet: bytes) -> bytes | None:
        """``packet`` (a compound RTCP packet) as SRTCP; None if libsrtp refuses it."""
        return _refused_as_none(self._tx.protect_rtcp, packet)

    def unprotect_rtcp(self, packet: bytes) -> bytes | None:
        """The RTCP inside an SRTCP ``packet``; None if its tag is wrong or it is a replay."""
        return _refused_as_none(self._rx.unprotect_rtcp, packet)


def _refused_as_none(transform: Callable[[bytes], bytes], packet: bytes) -> bytes | None:
    try:
        return transform(packet)
    except pylibsrtp.Error:
        return None
