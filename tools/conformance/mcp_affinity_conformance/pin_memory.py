"""Bytes per learned pin: the deployed pinning proxy's memory, measured with its own table.

The deployed configuration (localized as the conformance run does) is run with one stand-in
server, an HAProxy frontend that answers every request with a fresh ``Mcp-Session-Id``
(``%[uuid]``), so each request through the proxy stores one pin. The proxy's resident memory
(``VmRSS``) before and after, over the pins its ``/metrics`` counts, is the figure
``pinning_proxy.BYTES_PER_PIN`` must cover.
"""

from __future__ import annotations

import http.client
import re
from dataclasses import dataclass
from pathlib import Path

from .procs import LOOPBACK, Proc, free_port
from .proxy import Ports, haproxy_supports_srvkey, localize, peer_names, pins_at, wait_ready


@dataclass(frozen=True)
class PinMemory:
    """``pins`` stored, the proxy's resident memory growth in bytes, and their ratio."""

    pins: int
    grown_bytes: int

    @property
    def bytes_per_pin(self) -> float:
        return self.grown_bytes / max(self.pins, 1)


def measure(config: str, pins: int, workdir: Path, header: str = "Mcp-Session-Id") -> PinMemory:
    """Store ``pins`` pins in the proxy ``config`` (a deployed ``haproxy.cfg``) and measure it."""
    minting = free_port()
    fake = workdir / "minting.cfg"
    fake.write_text("defaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n"
                    f"frontend minting\n  bind {LOOPBACK}:{minting}\n"
                    f"  http-request return status 200 hdr {header} \"%[uuid]\"\n")
    names = peer_names(config)
    ports = Ports.free(names)
    path = workdir / "pin-memory.cfg"
    # With a drain check the stand-in also answers the health check (any request gets 200).
    path.write_text(localize(config, [("minting", minting)], ports, names[0], haproxy_supports_srvkey(),
                             {"minting": minting}))
    procs = [Proc(["haproxy", "-db", "-f", str(fake)], workdir / "minting.log")]
    try:
        procs[0].wait_port(minting, 10.0)
        procs.append(Proc(["haproxy", "-db", "-L", names[0], "-f", str(path)], workdir / "pin-memory.log"))
        procs[1].wait_port(ports.serve[names[0]], 10.0)
        wait_ready(ports.health[names[0]], 15.0)
        before, start = _rss(procs[1]), pins_at(ports.health[names[0]])
        connection = http.client.HTTPConnection(LOOPBACK, ports.serve[names[0]], timeout=10)
        for _ in range(pins):
            connection.request("POST", "/mcp", body=b"{}")
            connection.getresponse().read()
        connection.close()
        return PinMemory(pins_at(ports.health[names[0]]) - start, _rss(procs[1]) - before)
    finally:
        for proc in procs:
            proc.stop()


def _rss(proc: Proc) -> int:
    status = Path(f"/proc/{proc.popen.pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB$", status, re.M)[1]) * 1024
