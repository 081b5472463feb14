"""A private dnsmasq on loopback serving a test's own NAPTR, SRV and address records.

dnsmasq (Debian ``dnsmasq-base``, installed by ``make peers``) is a real DNS server: the PBX's
RFC 3263 lookups go over UDP to it exactly as they would to a carrier's DNS. It answers only
for the names given (``--local`` makes every other name under the zone NXDOMAIN) and never
forwards anywhere (``--no-resolv``): no query leaves loopback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.sip.peers.harness import free_port
from tests.support.procs import stop_process
from zvonar.pbx.dns import HostResolver
from zvonar.pbx.dns_client import DnsClient

__all__ = ["DNSMASQ", "Zone", "dnsmasq", "needs_dnsmasq", "resolver", "servers_zone"]

DNSMASQ = shutil.which("dnsmasq") or (
    "/usr/sbin/dnsmasq" if Path("/usr/sbin/dnsmasq").exists() else None
)
needs_dnsmasq = pytest.mark.skipif(
    DNSMASQ is None, reason="dnsmasq not installed (Debian package dnsmasq-base)"
)


@dataclass
class Zone:
    """Records under ``domain``; hosts and targets are written without the trailing dot."""

    domain: str = "zvonar.test"
    ttl: int = 30
    naptr: list[tuple[str, int, int, str, str, str]] = field(default_factory=list)
    srv: list[tuple[str, str, int, int, int]] = field(default_factory=list)
    hosts: list[tuple[str, Sequence[str]]] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)  # SRV names whose target is "."

    def args(self) -> list[str]:
        out = [f"--local=/{self.domain}/", f"--local-ttl={self.ttl}"]
        for name, order, pref, flags, service, replacement in self.naptr:
            out.append(f"--naptr-record={name},{order},{pref},{flags},{service},,{replacement}")
        for name, target, port, priority, weight in self.srv:
            out.append(f"--srv-host={name},{target},{port},{priority},{weight}")
        for name in self.unavailable:
            out.append(f"--srv-host={name}")
        for name, addresses in self.hosts:
            out.append(f"--host-record={name},{','.join(addresses)}")
        return out


def servers_zone(domain: str, *ports: int, transport: str = "udp") -> Zone:
    """``domain``'s SRV for ``transport`` listing one server per port on 127.0.0.1
    (``sbc1.<domain>`` first at priority 10, ``sbc2`` at 20…): a carrier with a primary and
    its backups."""
    srv = f"_sip._{transport}.{domain}"
    names = [f"sbc{i}.{domain}" for i in range(1, len(ports) + 1)]
    return Zone(
        srv=[(srv, name, port, 10 * i, 0) for i, (name, port) in enumerate(zip(names, ports), 1)],
        hosts=[(name, ["127.0.0.1"]) for name in names],
    )


def resolver(dns_port: int, **options: object) -> HostResolver:
    """The PBX's resolver asking only the dnsmasq on ``dns_port`` (A/AAAA included)."""
    client = DnsClient([("127.0.0.1", dns_port)], timeout=1.0)
    return HostResolver(records=client, lookup=client.addresses, **options)  # type: ignore[arg-type]


def _bound(port: int) -> bool:
    want = f"0100007F:{port:04X}"
    table = Path("/proc/net/udp").read_text().splitlines()[1:]
    return any(line.split()[1] == want for line in table if line.strip())


@contextmanager
def dnsmasq(zone: Zone, tmp_path: Path) -> Iterator[int]:
    """Serve ``zone`` on 127.0.0.1:<port> while the block runs; yields the port."""
    assert DNSMASQ is not None
    port = free_port()
    log = tmp_path / f"dnsmasq-{port}.log"
    cmd = [
        DNSMASQ,
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        "--listen-address=127.0.0.1",
        f"--port={port}",
        "--pid-file=",
        "--log-facility=-",
        "--log-queries",
        *(["--user=root"] if os.geteuid() == 0 else []),
        *zone.args(),
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not _bound(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dnsmasq did not start: {log.read_text()[-2000:]}")
            time.sleep(0.01)
        yield port
    finally:
        stop_process(proc)
