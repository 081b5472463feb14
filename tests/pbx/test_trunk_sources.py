"""Trusted trunk sources are remembered per source host, and forgotten when trunks change."""

from __future__ import annotations

from zvonar.container import Container
from zvonar.directory.models import Transport, TrunkAuth
from zvonar.directory.schemas import TrunkIn, TrunkPatch
from zvonar.pbx.invite_auth import TrunkSources

from .conftest import seed_account


async def test_a_trunk_change_is_seen_by_the_next_invite(container: Container) -> None:
    alpha = await seed_account(container)
    sources = TrunkSources(container.db)
    sources.attach(container.bus)
    await sources.load()
    assert not sources.trusted("192.0.2.10")  # remembered as untrusted
    trunk = await container.directory.create_trunk(
        alpha.principal,
        TrunkIn(name="Carrier", host="192.0.2.10", transport=Transport.udp,
                auth_mode=TrunkAuth.ip, allowed_sources=["192.0.2.0/28"]),
    )  # fmt: skip
    assert sources.trusted("192.0.2.10") and sources.trusted("192.0.2.11")
    assert not sources.trusted("192.0.2.16") and not sources.trusted("not-an-ip")
    await container.directory.update_trunk(alpha.principal, trunk.id, TrunkPatch(active=False))
    assert not sources.trusted("192.0.2.10")
