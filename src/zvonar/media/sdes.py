"""SDES: SRTP keys exchanged in SDP ``a=crypto`` attributes (RFC 4568), sans-IO.

A phone that reaches us over TLS can keep its voice private too: each side writes the master
key and salt it *sends* with into its SDP (``inline:`` + base64 of key || salt), which TLS
protects on the way, and both encrypt RTP with SRTP (RFC 3711). The offerer lists one or more
``a=crypto`` lines, each with a tag and a suite; the answerer picks the first it accepts and
answers with one line of the same tag and suite and its own key (§5.1.1, §6.1).

What we accept, and why the rest is refused (a refused line is skipped; an offer with no line
left is refused as a whole, RFC 4568 §7.1.2):

* the suites every SDES phone speaks, ``AES_CM_128_HMAC_SHA1_80`` and ``_32`` (§6.2);
* one key per line, with an optional lifetime and no MKI: the media engine keeps one master
  key per direction and never re-keys within a call (a call does not come near 2^31 packets);
* no session parameters: §6.3 makes an unknown one a reason to refuse the line, and the ones
  defined (``KDR``, ``UNENCRYPTED_SRTP``, ...) would weaken or complicate what we promise.

Keys are secrets: :class:`SrtpParams` and :class:`Crypto` keep them out of their ``repr``, and
nothing here logs them.
"""

from __future__ import annotations

import base64
import binascii
import enum
import secrets
from dataclasses import dataclass, field

from zvonar.media.errors import SdpParseError

__all__ = [
    "KEY_LENGTH",
    "Crypto",
    "CryptoSuite",
    "SrtpParams",
    "choose_crypto",
    "new_master_key",
    "offer_lines",
    "parse_crypto",
]

KEY_LENGTH = 30
"""Master key (16 bytes) and master salt (14 bytes) of both AES_CM_128 suites (§6.2)."""


class CryptoSuite(enum.Enum):
    """The SRTP crypto suites we speak, in our order of preference (RFC 4568 §6.2)."""

    AES_CM_128_HMAC_SHA1_80 = "AES_CM_128_HMAC_SHA1_80"
    AES_CM_128_HMAC_SHA1_32 = "AES_CM_128_HMAC_SHA1_32"


@dataclass(frozen=True)
class Crypto:
    """One ``a=crypto`` line: ``<tag> <suite> <key-params> [<session-params>]`` (§9.1).

    ``suite`` is None for a suite we do not speak; ``key`` is None when the key parameters
    are not ones we can use (several keys, an MKI, another key method, a wrong length)."""

    tag: int
    suite_name: str
    suite: CryptoSuite | None
    key: bytes | None = field(repr=False)
    session_params: tuple[str, ...] = ()

    @property
    def acceptable(self) -> bool:
        return self.suite is not None and self.key is not None and not self.session_params

    def serialize(self) -> str:
        if self.key is None:
            raise ValueError("a crypto line without a usable key cannot be written")
        return format_crypto(self.tag, CryptoSuite(self.suite_name), self.key)


@dataclass(frozen=True)
class SrtpParams:
    """What SRTP needs for one leg once offer/answer picked a line: the suite, the key we
    send with and the key the peer sends with."""

    suite: CryptoSuite
    local_key: bytes = field(repr=False)
    remote_key: bytes = field(repr=False)


def new_master_key() -> bytes:
    """A fresh master key and salt for one leg's sending direction."""
    return secrets.token_bytes(KEY_LENGTH)


def format_crypto(tag: int, suite: CryptoSuite, key: bytes) -> str:
    """The value of an ``a=crypto`` attribute (after ``crypto:``)."""
    return f"{tag} {suite.value} inline:{base64.b64encode(key).decode('ascii')}"


def _inline_key(key_params: str) -> bytes | None:
    """The key of ``inline:<key||salt>[|<lifetime>]``; None for what we cannot use."""
    if ";" in key_params:  # several keys (§9.1): needs MKIs to tell them apart
        return None
    method, _, info = key_params.partition(":")
    if method.lower() != "inline":
        return None
    parts = info.split("|")
    if len(parts) > 2 or (len(parts) == 2 and ":" in parts[1]):
        return None  # an MKI (<value>:<length>), with or without a lifetime
    if len(parts) == 2 and not _lifetime_ok(parts[1]):
        return None
    try:
        key = base64.b64decode(parts[0], validate=True)
    except (binascii.Error, ValueError):
        return None
    return key if len(key) == KEY_LENGTH else None


def _lifetime_ok(text: str) -> bool:
    """``2^31`` or a decimal count of packets (§6.1); any lifetime is longer than a call."""
    if text.startswith("2^"):
        return text[2:].isdigit()
    return text.isdigit() and int(text) > 0


def parse_crypto(value: str) -> Crypto:
    """Parse the value of an ``a=crypto`` attribute; SdpParseError if it is not one at all."""
    fields = value.split()
    if len(fields) < 3:
        raise SdpParseError(f"a=crypto needs a tag, a suite and key parameters: {value!r}")
    tag_text, suite_name, key_params, *session = fields
    if not tag_text.isdigit() or len(tag_text) > 9:  # 1*9DIGIT
        raise SdpParseError(f"a=crypto tag is not a number: {tag_text!r}")
    try:
        suite: CryptoSuite | None = CryptoSuite(suite_name)
    except ValueError:
        suite = None
    return Crypto(int(tag_text), suite_name, suite, _inline_key(key_params), tuple(session))


def offer_lines(key: bytes) -> tuple[str, ...]:
    """Our ``a=crypto`` values for an offer: each suite we speak, best first, one key (only
    one line is ever taken, so the key never protects two streams)."""
    return tuple(format_crypto(i, suite, key) for i, suite in enumerate(CryptoSuite, start=1))


def choose_crypto(values: list[str]) -> Crypto | None:
    """The first acceptable line of an offer (the offerer's preference), None if none is."""
    for value in values:
        try:
            crypto = parse_crypto(value)
        except SdpParseError:
            continue  # one malformed line does not spoil the others
        if crypto.acceptable:
            return crypto
    return None
