"""Trusted trunk sources are remembered per source host, and forgotten when trunks change."""

from __future__ import annotations

from zvonar.container import Container
from zvonar.directory.models import Transport, TrunkAuth
from zvonar.directory.schemas import TrunkIn, TrunkPatch
from zvonar.pbx.invite_auth import TrunkSources

from .conftest import seed_account


async def _sources(container: Container) -> TrunkSources:
    """The gate's trunk sources, loaded and following the directory's changes."""
    sources = TrunkSources(container.db)
    sources.attach(container.bus)
    await sources.load()
    return sources


async def test_a_trunk_change_is_seen_by_the_next_invite(container: Container) -> None:
    alpha = await seed_account(container)
    sources = await _sources(container)
    assert not sources.trunk_caller("192.0.2.10")  # remembered as untrusted
    trunk = await container.directory.create_trunk(
        alpha.principal,
        TrunkIn(name="Carrier", host="192.0.2.10", transport=Transport.udp,
                auth_mode=TrunkAuth.ip, allowed_sources=["192.0.2.0/28"]),
    )  # fmt: skip
    assert sources.trunk_caller("192.0.2.10") and sources.trunk_caller("192.0.2.11")
    assert not sources.trunk_caller("192.0.2.16") and not sources.trunk_caller("not-an-ip")
    await container.directory.update_trunk(alpha.principal, trunk.id, TrunkPatch(active=False))
    assert not sources.trunk_caller("192.0.2.10")


async def test_a_trunk_that_requires_srtp_marks_its_callers(container: Container) -> None:
    alpha = await seed_account(container)
    sources = await _sources(container)
    plain = TrunkIn(name="Plain", host="192.0.2.10", transport=Transport.udp,
                    auth_mode=TrunkAuth.ip, allowed_sources=["192.0.2.0/28"])  # fmt: skip
    await container.directory.create_trunk(alpha.principal, plain)
    caller = sources.trunk_caller("192.0.2.10")
    assert caller is not None and caller.vouches(alpha.account_id)
    assert not caller.srtp_for(alpha.account_id)
    secure = TrunkIn(name="Secure", host="198.51.100.7", transport=Transport.tls, srtp=True,
                     auth_mode=TrunkAuth.ip, allowed_sources=["198.51.100.7"])  # fmt: skip
    await container.directory.create_trunk(alpha.principal, secure)
    caller = sources.trunk_caller("198.51.100.7")
    assert caller is not None and caller.srtp_for(alpha.account_id)
    caller = sources.trunk_caller("192.0.2.10")
    assert caller is not None and not caller.srtp_for(alpha.account_id)


async def test_a_trunk_vouches_for_its_own_account_only(container: Container) -> None:
    """Any tenant may list any address as its trunk's source; the verdict names whose trunks
    list it, so a call from there is a trunk's only towards those accounts' numbers. Two
    tenants of one carrier share its address, each with its own SRTP setting."""
    alpha = await seed_account(container)
    beta = await seed_account(container, "beta", number="+74951230002")
    gamma = await seed_account(container, "gamma", number="+74951230003")
    sources = await _sources(container)
    await container.directory.create_trunk(
        alpha.principal,
        TrunkIn(name="Carrier", host="192.0.2.10", auth_mode=TrunkAuth.ip,
                allowed_sources=["192.0.2.10"]),
    )  # fmt: skip
    caller = sources.trunk_caller("192.0.2.10")
    assert caller is not None and caller.vouches(alpha.account_id)
    assert not caller.vouches(beta.account_id) and not caller.vouches(None)
    await container.directory.create_trunk(
        beta.principal,
        TrunkIn(name="Carrier", host="192.0.2.10", transport=Transport.tls, srtp=True,
                auth_mode=TrunkAuth.ip, allowed_sources=["192.0.2.0/24"]),
    )  # fmt: skip
    caller = sources.trunk_caller("192.0.2.10")
    assert caller is not None
    assert caller.vouches(alpha.account_id) and caller.vouches(beta.account_id)
    assert not caller.vouches(gamma.account_id)
    assert caller.srtp_for(beta.account_id) and not caller.srtp_for(alpha.account_id)
    only_beta = sources.trunk_caller("192.0.2.99")
    assert only_beta is not None and only_beta.trunk_of == {beta.account_id}


async def test_a_registration_trunk_lists_its_carriers_other_addresses(
    container: Container,
) -> None:
    """A registering carrier whose calls come from SBCs other than its registrar: the trunk
    lists them, and calls from there are its calls."""
    alpha = await seed_account(container)
    sources = await _sources(container)
    await container.directory.create_trunk(
        alpha.principal,
        TrunkIn(name="Carrier", host="sip.carrier.example", auth_mode=TrunkAuth.registration,
                username="7001", password="pass-7001-x", allowed_sources=["203.0.113.0/29"]),
    )  # fmt: skip
    caller = sources.trunk_caller("203.0.113.5")
    assert caller is not None and caller.trunk_of == {alpha.account_id}
    assert sources.trunk_caller("203.0.113.8") is None
