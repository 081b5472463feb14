"""SRTP legs of the embedded engine (SDES keys, RFC 4568; packets RFC 3711), over real UDP.

The phone on the secured leg speaks SRTP through tests/support/srtp_oracle.py, written from
RFC 3711 on ``cryptography`` and sharing no code with libsrtp, which the engine uses; its key
derivation is checked first against the RFC's own test vectors.
"""

from __future__ import annotations

import asyncio
import struct

import pytest

from tests.media.engine.phone import Phone, dominant, pcm_samples, tone_pcm
from tests.support.srtp_oracle import SrtpContext, derive
from zvonar.media.engine import AudioCodec, MediaEngineError, RemoteMedia
from zvonar.media.io import EmbeddedMediaEngine
from zvonar.media.sdes import CryptoSuite, SrtpParams, new_master_key

TAGS = {CryptoSuite.AES_CM_128_HMAC_SHA1_80: 10, CryptoSuite.AES_CM_128_HMAC_SHA1_32: 4}


def test_the_oracle_derives_rfc_3711_b3_session_keys() -> None:
    key = bytes.fromhex("E1F97A0D3E018BE0D64FA32C06DE4139")
    salt = bytes.fromhex("0EC675AD498AFEEBB6960B3AABE6")
    assert derive(key, salt, 0, 16).hex().upper() == "C61E7A93744F39EE10734AFE3FF7A087"
    assert derive(key, salt, 2, 14).hex().upper() == "30CBBC08863D8C85D49DB34A9AE1"
    assert derive(key, salt, 1, 20).hex().upper().startswith("CEBE321F6FF7716B6FD4AB49AF256A15")


def remote(phone: Phone, srtp: SrtpParams | None = None) -> RemoteMedia:
    return RemoteMedia(phone.host, phone.port, AudioCodec.PCMU, 0, 101, srtp=srtp)


class SecurePhone:
    """A phone whose key exchange with leg ``leg_id`` happened (as SDES would do it)."""

    def __init__(self, leg_key: bytes, suite: CryptoSuite) -> None:
        self.key = new_master_key()
        self.suite = suite
        self.tx = SrtpContext(self.key, TAGS[suite])
        self.rx = SrtpContext(leg_key, TAGS[suite])
        self.phone = Phone(wrap=self.tx.protect, unwrap=self.rx.unprotect)
        self.params = SrtpParams(suite, leg_key, self.key)


async def secured_pair(
    engine: EmbeddedMediaEngine, suite: CryptoSuite
) -> tuple[SecurePhone, Phone, tuple[str, int], tuple[str, int]]:
    a = await engine.allocate("call-1", "a")
    b = await engine.allocate("call-1", "b")
    assert a.srtp_key is not None and len(a.srtp_key) == 30 and a.srtp_key != b.srtp_key
    alice, bob = SecurePhone(a.srtp_key, suite), Phone()
    await engine.configure("a", remote(alice.phone, alice.params))
    await engine.configure("b", remote(bob))
    await engine.bridge("a", "b")
    return alice, bob, (a.address, a.port), (b.address, b.port)


@pytest.mark.parametrize("suite", list(CryptoSuite))
async def test_a_secured_leg_decrypts_what_it_hears_and_encrypts_what_it_sends(
    engine: EmbeddedMediaEngine, suite: CryptoSuite
) -> None:
    alice, bob, to_a, to_b = await secured_pair(engine, suite)
    await asyncio.gather(alice.phone.send_tone(to_a, 440, 0.6), bob.send_tone(to_b, 880, 0.6))
    await alice.phone.settle()
    await bob.settle()
    # Bob (plain RTP) hears alice's tone: the engine checked and decrypted every packet.
    assert len(bob.received) == alice.phone.sent == 30
    assert dominant(pcm_samples(bob.audio()), (440, 880)) == 440
    # Alice hears bob's tone, every packet's tag verified by the oracle with the leg's key.
    assert len(alice.phone.received) == bob.sent == 30 and alice.phone.refused == 0
    assert dominant(pcm_samples(alice.phone.audio()), (440, 880)) == 880
    stats = await engine.stats("a")
    assert stats.rx_packets == 30 and stats.dropped == 0 and stats.tx_packets == 30


async def test_what_goes_out_on_a_secured_leg_is_not_the_clear_audio(
    engine: EmbeddedMediaEngine,
) -> None:
    a = await engine.allocate("call-1", "a")
    b = await engine.allocate("call-1", "b")
    assert a.srtp_key is not None
    listener = Phone()  # has no key: sees the wire as it is
    suite = CryptoSuite.AES_CM_128_HMAC_SHA1_80
    await engine.configure("a", remote(listener, SrtpParams(suite, a.srtp_key, new_master_key())))
    bob = Phone()
    await engine.configure("b", remote(bob))
    await engine.bridge("a", "b")
    await bob.send_tone((b.address, b.port), 440, 0.2)
    await listener.settle()
    assert len(listener.received) == 10
    clear = bob.encode(tone_pcm(440, 0.2))
    wire = b"".join(r.packet.payload for r in listener.received)
    assert len(wire) == len(clear) + 10 * 10  # each packet carries its 80-bit tag
    assert not any(clear[i : i + 160] in wire for i in range(0, len(clear), 160))
    # The oracle with the leg's key recovers the clear packets from those datagrams.
    oracle = SrtpContext(a.srtp_key)
    assert (
        b"".join(
            oracle.unprotect(r.packet.serialize())[12:]  # type: ignore[index]
            for r in listener.received
        )
        == clear
    )


async def test_forged_and_replayed_packets_are_dropped_and_steer_nothing(
    engine: EmbeddedMediaEngine,
) -> None:
    suite = CryptoSuite.AES_CM_128_HMAC_SHA1_80
    alice, bob, to_a, _ = await secured_pair(engine, suite)
    # Before alice speaks, a stranger sends plain RTP and SRTP under a key of its own: had
    # either latched the leg, alice's packets would be refused and bob would hear the stranger.
    stranger = Phone()
    stranger.send_packet(to_a, stranger.encode(tone_pcm(300, 0.02)))
    wrong = Phone(wrap=SrtpContext(new_master_key()).protect)
    wrong.send_packet(to_a, wrong.encode(tone_pcm(300, 0.02)))
    await asyncio.sleep(0.05)
    assert bob.received == [] and (await engine.stats("a")).dropped == 2
    await alice.phone.send_tone(to_a, 440, 0.2)
    await bob.settle()
    assert len(bob.received) == 10
    # A replay of a packet alice sent is refused by the window.
    header_seq = (alice.phone.seq - 1) & 0xFFFF
    replay = SrtpContext(alice.key)
    replay.roc, replay.last_seq = 0, header_seq - 1
    packet = alice.phone.encode(tone_pcm(440, 0.02))
    rtp = struct.pack("!BBHII", 0x80, 0, header_seq, alice.phone.ts, alice.phone.ssrc) + packet
    alice.phone.sock.sendto(replay.protect(rtp), to_a)
    await asyncio.sleep(0.05)
    assert len(bob.received) == 10 and (await engine.stats("a")).dropped == 3


async def test_a_reoffer_with_a_new_key_takes_the_new_key_only(
    engine: EmbeddedMediaEngine,
) -> None:
    suite = CryptoSuite.AES_CM_128_HMAC_SHA1_32
    alice, bob, to_a, to_b = await secured_pair(engine, suite)
    await alice.phone.send_tone(to_a, 440, 0.1)
    await bob.send_tone(to_b, 880, 0.1)
    await alice.phone.settle()
    old_tx = alice.tx
    # The phone re-INVITEs with a new key of its own; ours stays the same.
    rekeyed = SecurePhone(alice.params.local_key, suite)
    rekeyed.phone.close()
    alice.tx = rekeyed.tx
    alice.phone.wrap = rekeyed.tx.protect
    await engine.configure("a", remote(alice.phone, rekeyed.params))
    await alice.phone.send_tone(to_a, 440, 0.1)
    await bob.send_tone(to_b, 880, 0.1)
    await bob.settle()
    await alice.phone.settle()
    assert len(bob.received) == 10
    # Our sending stream went on under the same key: the old receive context still checks it.
    assert len(alice.phone.received) == 10 and alice.phone.refused == 0
    # A packet under the phone's old key is no longer accepted.
    alice.phone.wrap = old_tx.protect
    alice.phone.send_packet(to_a, alice.phone.encode(tone_pcm(440, 0.02)))
    await asyncio.sleep(0.05)
    assert len(bob.received) == 10
    assert (await engine.stats("a")).dropped == 1


async def test_keys_that_are_not_the_legs_own_are_refused(engine: EmbeddedMediaEngine) -> None:
    await engine.allocate("call-1", "a")
    phone = Phone()
    params = SrtpParams(CryptoSuite.AES_CM_128_HMAC_SHA1_80, new_master_key(), new_master_key())
    with pytest.raises(MediaEngineError, match="not the leg's own"):
        await engine.configure("a", remote(phone, params))


async def test_an_engine_without_srtp_gives_legs_no_key() -> None:
    engine = EmbeddedMediaEngine(media_timeout=0, srtp=False)
    await engine.start()
    try:
        assert (await engine.allocate("call-1", "a")).srtp_key is None
    finally:
        await engine.close()
