"""A caller's SRTP offer through the B2BUA: answered in SRTP by an engine that can encrypt,
refused at once (488, nobody rung) by one that cannot — never after a target answered."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import pytest

from tests.calls.conftest import Phone
from tests.calls.rig import ACCOUNT, Pbx, running
from tests.calls.test_b2bua import dial, final_status, hang_up, target
from zvonar.calls.events import Disposition
from zvonar.calls.plan import Plan, Wave
from zvonar.media.io import EmbeddedMediaEngine
from zvonar.media.sdes import CryptoSuite, new_master_key, parse_crypto

KEY = new_master_key()
SAVP = (
    "v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 40000 RTP/SAVP 0\r\n"
    f"a=crypto:7 AES_CM_128_HMAC_SHA1_32 inline:{base64.b64encode(KEY).decode()}\r\n"
).encode()


@pytest.fixture
async def plain_pbx() -> AsyncIterator[Pbx]:
    async with running(EmbeddedMediaEngine(media_timeout=0, host6=None, srtp=False)) as rig:
        yield rig


async def test_an_srtp_offer_is_answered_in_srtp(pbx: Pbx, phones: tuple[Phone, Phone]) -> None:
    caller, callee = phones
    pbx.resolver.plans["100"] = Plan(ACCOUNT, (Wave((target(callee, "answer"),), 5),))
    leg = dial(caller, pbx, "100", sdp=SAVP)
    assert await final_status(leg) == 200
    answer = leg.remote_sdp.decode()
    assert "m=audio" in answer and "RTP/SAVP" in answer
    (line,) = [x[len("a=crypto:") :] for x in answer.split("\r\n") if x.startswith("a=crypto:")]
    crypto = parse_crypto(line)
    assert crypto.tag == 7 and crypto.suite is CryptoSuite.AES_CM_128_HMAC_SHA1_32
    assert crypto.key is not None and crypto.key != KEY  # ours, not an echo of theirs
    hang_up(caller, leg)
    (ended,) = await pbx.wait_ended()
    assert ended.disposition is Disposition.answered


async def test_an_engine_without_srtp_refuses_it_before_ringing_anyone(
    plain_pbx: Pbx, phones: tuple[Phone, Phone]
) -> None:
    caller, callee = phones
    plain_pbx.resolver.plans["100"] = Plan(ACCOUNT, (Wave((target(callee, "answer"),), 5),))
    leg = dial(caller, plain_pbx, "100", sdp=SAVP)
    assert await final_status(leg) == 488
    (ended,) = await plain_pbx.wait_ended()
    assert ended.disposition is Disposition.failed
    assert callee.app.calls_answered == 0  # nobody was rung, let alone answered
