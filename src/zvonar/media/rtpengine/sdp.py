"""The SDP the rtpengine adapter shows rtpengine on behalf of each phone (sans-IO).

rtpengine learns a side's address, codec and direction only from SDP. The B2BUA already
negotiated with the phone; :func:`remote_sdp` restates the result (one audio stream, the
chosen codec, telephone-event if any, ptime, and the *phone's* direction, which is ours
reversed) and :func:`placeholder_sdp` stands in for a side that has not negotiated yet:
``a=sendonly`` from the discard port: rtpengine never sends towards it, yet the other
side counts as receiving, which ``play media`` needs.
"""

from __future__ import annotations

from zvonar.media.engine import AddressFamily, MediaEngineError, RemoteMedia
from zvonar.media.errors import SdpParseError
from zvonar.media.sdp import parse_sdp

__all__ = ["placeholder_sdp", "remote_sdp", "sdp_endpoint"]

_DISCARD_PORT = 9  # RFC 863; nothing is sent there anyway (a=sendonly)


def _session(address: str, session_id: int, version: int, media: list[str]) -> str:
    addrtype = "IP6" if ":" in address else "IP4"
    lines = [
        "v=0",
        f"o=zvonar {session_id} {version} IN {addrtype} {address}",
        "s=zvonar",
        f"c=IN {addrtype} {address}",
        "t=0 0",
        *media,
    ]
    return "\r\n".join(lines) + "\r\n"


def placeholder_sdp(family: AddressFamily) -> str:
    address = "::1" if family is AddressFamily.IP6 else "127.0.0.1"
    media = [
        f"m=audio {_DISCARD_PORT} RTP/AVP 0 8 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "a=sendonly",
    ]
    return _session(address, 1, 1, media)


def remote_sdp(remote: RemoteMedia, *, session_id: int, version: int) -> str:
    formats = [str(remote.payload_type)]
    attributes = [f"a=rtpmap:{remote.payload_type} {remote.codec.value}/8000"]
    if remote.telephone_event_pt is not None:
        formats.append(str(remote.telephone_event_pt))
        attributes.append(f"a=rtpmap:{remote.telephone_event_pt} telephone-event/8000")
        attributes.append(f"a=fmtp:{remote.telephone_event_pt} 0-16")
    attributes.append(f"a=ptime:{remote.ptime_ms}")
    # The phone's own direction attribute: what we send it is what it receives.
    attributes.append(f"a={remote.direction.reversed().value}")
    media = [f"m=audio {remote.port} RTP/AVP {' '.join(formats)}", *attributes]
    return _session(remote.address, session_id, version, media)


def sdp_endpoint(sdp: object) -> tuple[str, int]:
    """(address, port) of the first audio stream of an SDP rtpengine returned."""
    if not isinstance(sdp, bytes | str):
        raise MediaEngineError("rtpengine returned no SDP")
    try:
        description = parse_sdp(sdp)
    except SdpParseError as exc:
        raise MediaEngineError(f"rtpengine returned unreadable SDP: {exc}") from None
    for media in description.media:
        if media.media == "audio" and media.port:
            connection = description.connection_for(media)
            if connection is None:
                break
            return connection.address, media.port
    raise MediaEngineError("rtpengine's SDP has no audio stream")
