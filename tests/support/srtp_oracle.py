"""An SRTP of our own for tests (RFC 3711 §3-4, AES-CM with HMAC-SHA1, no MKI, kdr 0), from
``cryptography``'s AES and HMAC: the engine uses libsrtp, so its packets are checked against
an implementation that shares no code with it. The key derivation is itself checked against
RFC 3711 Appendix B.3 (tests/media/engine/test_srtp.py). Slow and minimal: one SSRC per
context, the rollover counter guessed the simple way, no replay list."""

from __future__ import annotations

import hashlib
import hmac
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = ["SrtpContext", "derive"]


def _ctr(key: bytes, iv: int, data: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.CTR(iv.to_bytes(16, "big"))).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def derive(master_key: bytes, master_salt: bytes, label: int, length: int) -> bytes:
    """§4.3.1 with a key derivation rate of 0: x = (label || 0^48) XOR salt, AES-CM from x·2^16."""
    x = int.from_bytes(master_salt, "big") ^ (label << 48)
    return _ctr(master_key, x << 16, bytes(length))


def _header_length(packet: bytes) -> int:
    length = 12 + 4 * (packet[0] & 0x0F)
    if packet[0] & 0x10:
        length += 4 + 4 * struct.unpack_from("!H", packet, length + 2)[0]
    return length


class SrtpContext:
    """One direction of one stream: ``key_salt`` is the 30 bytes of an SDES inline key."""

    def __init__(self, key_salt: bytes, tag_length: int = 10) -> None:
        master_key, master_salt = key_salt[:16], key_salt[16:]
        self.cipher_key = derive(master_key, master_salt, 0, 16)
        self.auth_key = derive(master_key, master_salt, 1, 20)
        self.salt = derive(master_key, master_salt, 2, 14)
        self.tag_length = tag_length
        self.roc = 0
        self.last_seq: int | None = None

    def _index(self, seq: int) -> int:
        if self.last_seq is not None and seq < self.last_seq and self.last_seq - seq > 0x8000:
            self.roc += 1  # the sequence number wrapped
        self.last_seq = seq
        return (self.roc << 16) | seq

    def _crypt(self, packet: bytes, index: int) -> bytes:
        start = _header_length(packet)
        ssrc = struct.unpack_from("!I", packet, 8)[0]
        iv = (int.from_bytes(self.salt, "big") << 16) ^ (ssrc << 64) ^ (index << 16)
        return packet[:start] + _ctr(self.cipher_key, iv, packet[start:])

    def _tag(self, body: bytes, roc: int) -> bytes:
        mac = hmac.new(self.auth_key, body + struct.pack("!I", roc), hashlib.sha1).digest()
        return mac[: self.tag_length]

    def protect(self, rtp: bytes) -> bytes:
        index = self._index(struct.unpack_from("!H", rtp, 2)[0])
        body = self._crypt(rtp, index)
        return body + self._tag(body, index >> 16)

    def unprotect(self, srtp: bytes) -> bytes | None:
        """The RTP inside, or None if the tag does not match."""
        body, tag = srtp[: -self.tag_length], srtp[-self.tag_length :]
        seq = struct.unpack_from("!H", body, 2)[0]
        roc = self.roc + (1 if self.last_seq is not None and self.last_seq - seq > 0x8000 else 0)
        if not hmac.compare_digest(tag, self._tag(body, roc)):
            return None
        return self._crypt(body, self._index(seq))
