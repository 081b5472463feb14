"""What TLS costs the SIP stack: handshakes/s at the TLS listener, and OPTIONS round trips/s
over one connection, TLS against plain TCP.

Server (``serve_sip``, TLS listener with an EC P-256 certificate) and client (asyncio streams)
share one process and one event loop, so each figure is the whole exchange's CPU, both ends.

    .venv/bin/python bench/bench_sip_tls.py
    .venv/bin/python bench/bench_sip_tls.py --handshakes 300 --requests 5000
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.support.certs import make_pki  # noqa: E402

from zvonar.sip.io.server import SipServerConfig, serve_sip  # noqa: E402
from zvonar.sip.io.tls import TlsConfig, client_context, server_context  # noqa: E402
from zvonar.sip.security import SecurityConfig  # noqa: E402


def options(port: int, n: int, transport: str) -> bytes:
    return (
        f"OPTIONS sip:answer@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} 127.0.0.1:{port};branch=z9hG4bKbench{n}\r\n"
        f"From: <sip:bench@127.0.0.1>;tag=b{n}\r\nTo: <sip:answer@127.0.0.1>\r\n"
        f"Call-ID: bench{n}@t\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()


async def round_trips(port: int, ctx: ssl.SSLContext | None, count: int) -> float:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ctx, server_hostname="pbx.zvonar.test" if ctx else None
    )
    local = writer.get_extra_info("sockname")[1]
    transport = "TLS" if ctx else "TCP"
    began = time.process_time()
    for n in range(count):
        writer.write(options(local, n, transport))
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"SIP/2.0 200"):
            raise RuntimeError(head[:80])
    spent = time.process_time() - began
    writer.close()
    return spent


async def handshakes(port: int, ctx: ssl.SSLContext, count: int) -> float:
    began = time.process_time()
    for _ in range(count):
        _, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname="pbx.zvonar.test"
        )
        writer.close()
        await writer.wait_closed()
    return time.process_time() - began


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        pki = make_pki(Path(tmp))
        leaf = pki.issue("pbx", dns=("pbx.zvonar.test",))
        tls = TlsConfig(
            client=client_context(ca=pki.ca), server=server_context(leaf.cert, leaf.key)
        )
        srv = await serve_sip(
            SipServerConfig(
                listen=(("127.0.0.1", 0),),
                udp=False,
                tcp=True,
                tls=tls,
                security=SecurityConfig(trusted=("127.0.0.0/8",)),
            )
        )
        phone = ssl.create_default_context(cafile=str(pki.ca))
        try:
            tls_port, tcp_port = srv.flow("TLS").port, srv.flow("TCP").port
            spent = await handshakes(tls_port, phone, args.handshakes)
            print(
                f"TLS handshakes (TLS 1.3, EC P-256)  {args.handshakes / spent:10,.0f} /s"
                f"  ({spent / args.handshakes * 1e6:7.0f} us CPU each, both ends)"
            )
            for name, port, ctx in (("TCP", tcp_port, None), ("TLS", tls_port, phone)):
                spent = await round_trips(port, ctx, args.requests)
                print(
                    f"OPTIONS round trips over {name}      {args.requests / spent:10,.0f} /s"
                    f"  ({spent / args.requests * 1e6:7.1f} us CPU each, both ends)"
                )
        finally:
            await srv.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--handshakes", type=int, default=200)
    ap.add_argument("--requests", type=int, default=3000)
    asyncio.run(main(ap.parse_args()))
