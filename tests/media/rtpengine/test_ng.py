"""The ng protocol state (sans-IO): cookies, retransmission schedule, reply matching."""

from __future__ import annotations

import pytest

from zvonar.media.rtpengine.bencode import decode
from zvonar.media.rtpengine.ng import (
    NgCommandError,
    NgError,
    NgProtocol,
    as_dict,
    as_int,
    check_reply,
)


def test_request_datagram_is_cookie_space_bencoded_dict() -> None:
    ng = NgProtocol(prefix="z")
    cookie, datagram = ng.request("offer", {"call-id": "c1", "from-tag": "a", "sdp": "v=0"}, 0.0)
    assert cookie == "z_1"
    head, _, body = datagram.partition(b" ")
    assert head == b"z_1"
    assert decode(body) == {
        "call-id": b"c1",
        "command": b"offer",
        "from-tag": b"a",
        "sdp": b"v=0",
    }
    assert ng.request("ping", {}, 0.0)[0] == "z_2"  # unique per request


def test_retransmits_same_datagram_with_backoff_then_times_out() -> None:
    ng = NgProtocol(interval=0.25, attempts=3, prefix="z")
    cookie, first = ng.request("query", {"call-id": "c"}, 10.0)
    assert ng.next_deadline() == 10.25
    assert ng.datagrams_to_send(10.2) == []
    assert ng.datagrams_to_send(10.25) == [first]  # attempt 2, same cookie and bytes
    assert ng.next_deadline() == pytest.approx(10.75)  # interval doubled
    assert ng.handle_timer(10.75) == []
    assert ng.datagrams_to_send(10.75) == [first]  # attempt 3, the last
    assert ng.next_deadline() == pytest.approx(11.75)
    assert ng.datagrams_to_send(11.75) == []
    assert ng.handle_timer(11.75) == [(cookie, "query")]
    assert ng.pending == 0 and ng.next_deadline() is None


def test_reply_matched_by_cookie_once() -> None:
    ng = NgProtocol(prefix="z")
    ng.request("ping", {}, 0.0)
    cookie, _ = ng.request("delete", {"call-id": "c"}, 0.0)
    reply = ng.receive(cookie.encode() + b" d6:result2:ok7:warning3:hm!e")
    assert reply is not None
    assert (reply.command, reply.result, reply.warning) == ("delete", "ok", "hm!")
    assert ng.pending == 1
    # A duplicate (answer to a retransmission) or someone else's cookie is ignored.
    assert ng.receive(cookie.encode() + b" d6:result2:oke") is None
    assert ng.receive(b"other_1 d6:result2:oke") is None


def test_error_replies_and_malformed_datagrams() -> None:
    ng = NgProtocol(prefix="z")
    cookie, _ = ng.request("answer", {}, 0.0)
    reply = ng.receive(cookie.encode() + b" d6:result5:error12:error-reason12:Unknown calle")
    assert reply is not None
    with pytest.raises(NgCommandError, match="Unknown call"):
        check_reply(reply)
    with pytest.raises(NgError):
        ng.receive(b"no-space-here")
    cookie, _ = ng.request("query", {}, 0.0)
    with pytest.raises(NgError):
        ng.receive(cookie.encode() + b" d6:result")
    cookie, _ = ng.request("query", {}, 0.0)
    with pytest.raises(NgError):
        ng.receive(cookie.encode() + b" l2:oke")


def test_value_accessors() -> None:
    assert as_int(5) == 5 and as_int(b"17") == 17
    assert as_dict({"a": 1}) == {"a": 1}
    with pytest.raises(NgError):
        as_int(b"x")
    with pytest.raises(NgError):
        as_dict([1])


def test_unencodable_request_is_refused() -> None:
    ng = NgProtocol()
    with pytest.raises(NgError):
        ng.request("offer", {"flags": True}, 0.0)
    assert ng.pending == 0
