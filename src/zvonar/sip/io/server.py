"""`serve_sip(...)` and `python -m zvonar.sip.io.server`: the SIP stack as a runnable server.

Hosts, on UDP and/or TCP listeners (IPv4 and IPv6): the registrar with digest auth over a
user table, the security policy, and the `EchoPbx` test/demo application (see
testserver.py). Example:

    python -m zvonar.sip.io.server --listen 127.0.0.1:5060 --tcp \\
        --user alice:secret --user bob:secret --realm zvonar.test
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import resource
import secrets
import signal
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from zvonar.sip.auth import Credentials, DigestChallenger, InMemoryCredentialStore
from zvonar.sip.io.runner import SipRunner
from zvonar.sip.io.tcp import TcpLimits
from zvonar.sip.io.testserver import EchoPbx
from zvonar.sip.io.tls import TlsConfig
from zvonar.sip.location import LocationService
from zvonar.sip.registrar import Registrar, RegistrarConfig
from zvonar.sip.security import SecurityConfig, SecurityPolicy
from zvonar.sip.transaction import TimerConfig
from zvonar.sip.ua import Flow, UserAgent

__all__ = ["SipServer", "SipServerConfig", "main", "parse_listen", "serve_sip", "tune_gc"]

log = logging.getLogger(__name__)


def parse_listen(text: str) -> tuple[str, int]:
    """ "127.0.0.1:5060", "[::1]:5060", "::1" (port 5060) → (host, port)."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 5060
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, int(port)
    return text, 5060


@dataclass(frozen=True)
class SipServerConfig:
    listen: tuple[tuple[str, int], ...] = (("127.0.0.1", 5060),)
    udp: bool = True
    tcp: bool = False
    realm: str = "zvonar"
    users: Mapping[str, str] = field(default_factory=dict)  # username → password
    ha1: Mapping[str, str] = field(default_factory=dict)  # username → MD5 HA1 hex
    algorithms: tuple[str, ...] = ("MD5",)  # SIPp and baresip 1.0 speak MD5 only
    auth_invites: bool = False  # 407 for INVITEs (§22.3)
    security: SecurityConfig | None = field(default_factory=SecurityConfig)
    registrar: RegistrarConfig = field(default_factory=RegistrarConfig)
    timers: TimerConfig = field(default_factory=TimerConfig)
    tcp_limits: TcpLimits = field(default_factory=TcpLimits)
    nonce_secret: bytes | None = None
    tls: TlsConfig | None = None  # also listen on TLS, at tls_port of each listen host
    tls_port: int = 0


class SipServer:
    """A started server: the runner, the UA core and the application, plus `close()`."""

    def __init__(self, runner: SipRunner, pbx: EchoPbx, flows: list[Flow]) -> None:
        self.runner = runner
        self.ua = runner.ua
        self.pbx = pbx
        self.flows = flows

    def flow(self, transport: str = "UDP", family: int = 4) -> Flow:
        for f in self.flows:
            if f.transport == transport and (":" in f.host) == (family == 6):
                return f
        raise LookupError(f"not listening on {transport} IPv{family}")

    def stats(self) -> dict[str, int]:
        return self.runner.all_stats()

    async def close(self) -> None:
        await self.runner.close()


def _credentials(config: SipServerConfig) -> InMemoryCredentialStore:
    store = InMemoryCredentialStore()
    for user, password in config.users.items():
        store.add(Credentials.from_password(user, config.realm, password, config.algorithms))
    for user, ha1 in config.ha1.items():
        store.add(Credentials(user, config.realm, (("MD5", ha1),)))
    return store


async def serve_sip(config: SipServerConfig | None = None, **overrides: object) -> SipServer:
    """Start listening per `config` (fields may also be given as keyword overrides)."""
    if config is None:
        config = SipServerConfig(**overrides)  # type: ignore[arg-type]
    elif overrides:
        raise TypeError("pass either a config or keyword fields, not both")
    challenger = None
    if config.users or config.ha1:
        challenger = DigestChallenger(
            config.realm,
            config.nonce_secret or secrets.token_bytes(32),
            _credentials(config),
            algorithms=config.algorithms,
        )
    ua = UserAgent(
        timers=config.timers,
        security=SecurityPolicy(config.security) if config.security is not None else None,
        registrar=Registrar(LocationService(), config.registrar),
        challenger=challenger,
    )
    pbx = EchoPbx(ua, auth_invites=config.auth_invites and challenger is not None)
    runner = SipRunner(ua, pbx, tcp_limits=config.tcp_limits)
    flows: list[Flow] = []
    try:
        for host, port in config.listen:
            if config.udp and config.tcp:
                flows.extend(await runner.listen_pair(host, port))
            elif config.udp:
                flows.append(await runner.listen_udp(host, port))
            elif config.tcp:
                flows.append(await runner.listen_tcp(host, port))
            if config.tls is not None:
                flows.append(await runner.listen_tls(host, config.tls_port, config.tls))
    except BaseException:
        await runner.close()
        raise
    return SipServer(runner, pbx, flows)


def _user(text: str) -> tuple[str, str]:
    user, sep, secret = text.partition(":")
    if not sep or not user:
        raise argparse.ArgumentTypeError("expected USER:PASSWORD")
    return user, secret


def _arguments(argv: Iterable[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m zvonar.sip.io.server", description=__doc__)
    p.add_argument("--listen", action="append", default=[], help="HOST:PORT (repeatable)")
    p.add_argument("--tcp", action="store_true", help="also listen on TCP")
    p.add_argument("--no-udp", action="store_true", help="do not listen on UDP")
    p.add_argument("--user", action="append", type=_user, default=[], help="USER:PASSWORD")
    p.add_argument("--ha1", action="append", type=_user, default=[], help="USER:MD5-HA1")
    p.add_argument("--realm", default="zvonar")
    p.add_argument("--auth-invites", action="store_true", help="challenge INVITEs (407)")
    p.add_argument("--no-security", action="store_true", help="no blocker / rate limits")
    p.add_argument("--trust", action="append", default=[], help="CIDR exempt from limits")
    p.add_argument("--min-expires", type=int, default=60)
    p.add_argument("--uvloop", action="store_true", help="run on uvloop")
    p.add_argument("--cpu", type=int, default=None, help="pin the process to this CPU")
    p.add_argument("--duration", type=float, default=None, help="exit after N seconds")
    p.add_argument("--no-gc-tuning", action="store_true", help="keep CPython's GC defaults")
    p.add_argument("--profile", default=None, help="write cProfile stats to this file")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(None if argv is None else list(argv))


async def _run(args: argparse.Namespace) -> None:
    security = None if args.no_security else SecurityConfig(trusted=tuple(args.trust))
    config = SipServerConfig(
        listen=tuple(parse_listen(x) for x in args.listen) or (("127.0.0.1", 5060),),
        udp=not args.no_udp,
        tcp=args.tcp,
        realm=args.realm,
        users=dict(args.user),
        ha1=dict(args.ha1),
        auth_invites=args.auth_invites,
        security=security,
        registrar=RegistrarConfig(min_expires=args.min_expires),
    )
    server = await serve_sip(config)
    for f in server.flows:
        print(f"listening {f.transport} {f.host}:{f.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), args.duration)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"cpu {usage.ru_utime + usage.ru_stime:.3f}", flush=True)
    print(f"stats {json.dumps(server.stats())}", flush=True)
    await server.close()


def tune_gc() -> None:
    """Make the cyclic GC cheap for a SIP server's object churn.

    Every UDP transaction lives 32 s after its last message (Timers J, L, §17), so a busy
    server holds ~64 k transactions per 1,000 calls/s; with CPython's default thresholds
    (700, 10, 10) the collector re-walks them so often it took 35-55 % of the CPU in our
    benchmark. Freezing the start-up heap and collecting young objects less often cut the
    per-call CPU by about a third (measured with bench/bench_sip_uas.py).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 100, 100)


def main(argv: Iterable[str] | None = None) -> None:
    args = _arguments(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    if not args.no_gc_tuning:
        tune_gc()
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    try:
        if args.uvloop:
            import uvloop

            uvloop.run(_run(args))
        else:
            asyncio.run(_run(args))
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)


if __name__ == "__main__":
    main()
