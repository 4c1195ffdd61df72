"""The pinning proxy's DNS discovery against a name server on 127.0.0.1.

:class:`LoopbackDns` answers A queries for one host with a list of addresses as GKE's kube-dns
does over UDP: an answer fits the size the query announces (EDNS0 ``OPT``; 512 bytes without it)
and at most :data:`~mcp_affinity.pinning_proxy.DNS_PAYLOAD_BYTES` (its dnsmasq 2.90 caps EDNS
answers there); a larger answer goes out truncated: the records that fit, and ``TC`` (as
``Truncate`` of miekg/dns, the DNS library of kube-dns and CoreDNS, makes it).

:func:`discovery_config` runs the shipped ``resolvers`` section and ``server-template`` line of a
planned ``haproxy.cfg`` with ``parse-resolv-conf`` pointed at that server and nothing else of
the proxy: no health check, no frontend, so HAProxy contacts no address an answer gives it.
:func:`slot_addresses` and :func:`resolver_counters` read the outcome over HAProxy's runtime API
(``show servers state``, ``show resolvers``; HAProxy management guide, section 9.3).
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.rdatatype
import dns.rrset

from mcp_affinity import pinning_proxy

from .procs import LOOPBACK, Proc

_RESOLVERS = re.compile(r"^resolvers (\S+)\n(?:  .*\n)+", re.M)
_TEMPLATE = re.compile(r"^  server-template mcp 1-\d+ (\S+):\d+ .*$", re.M)


A_OUTCOMES = ("valid", "truncated", "too_big", "invalid", "other")
"""``show resolvers`` counters an answer with records ends in (the AAAA query before it, answered
with no data, counts ``any_err``)."""


class LoopbackDns:
    """A UDP name server on 127.0.0.1 (``port``) answering A queries for ``host`` with ``addresses``
    (all in 127.0.0.0/8), other types with no data, other names with NXDOMAIN; ``start`` / ``stop``
    its thread."""

    def __init__(self, host: str, addresses: Sequence[str]) -> None:
        if not all(address.startswith("127.") for address in addresses):
            raise ValueError("loopback addresses only")
        self.host, self.addresses = host.rstrip(".") + ".", list(addresses)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((LOOPBACK, 0))
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> "LoopbackDns":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                data, peer = self._sock.recvfrom(65535)
            except TimeoutError:
                continue
            self._sock.sendto(answer(data, self.host, self.addresses), peer)


def answer(query_wire: bytes, host: str, addresses: Sequence[str]) -> bytes:
    """The cluster DNS's UDP answer to ``query_wire``: A records of ``addresses`` for ``host``,
    truncated when they exceed what the query announced or
    :data:`~mcp_affinity.pinning_proxy.DNS_PAYLOAD_BYTES`."""
    query = dns.message.from_wire(query_wire)
    limit = min(query.payload if query.edns >= 0 else 512, pinning_proxy.DNS_PAYLOAD_BYTES)
    response = dns.message.make_response(query)
    (question,) = query.question
    if question.name.to_text().lower() != host.rstrip(".").lower() + ".":
        response.set_rcode(3)  # NXDOMAIN
        return response.to_wire()
    if question.rdtype != dns.rdatatype.A:  # the pods have no IPv6 address: no data
        return response.to_wire()
    for count in range(len(addresses), -1, -1):  # the records that fit, as miekg/dns Truncate
        response.answer = [dns.rrset.from_text_list(question.name, 5, "IN", "A", list(addresses[:count]))]
        if count < len(addresses):
            response.flags |= dns.flags.TC
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            continue
    raise ValueError(f"no answer fits {limit} bytes")


def answer_to(host: str, addresses: Sequence[str], payload: int) -> dns.message.Message:
    """The answer to an A query for ``host`` announcing ``payload`` bytes (EDNS0), parsed, with
    ``wire_size`` (bytes) set on it."""
    query = dns.message.make_query(host, "A", use_edns=0, payload=payload)
    wire = answer(query.to_wire(), host, addresses)
    message = dns.message.from_wire(wire)
    message.wire_size = len(wire)
    return message


def template_host(config: str) -> str:
    """The headless Service host of the shipped ``server-template`` line."""
    return _TEMPLATE.search(config)[1]


def discovery_config(config: str, dns_port: int, socket_path: Path) -> str:
    """The shipped ``resolvers`` section and ``server-template`` line of ``config``, with the
    name server on 127.0.0.1:``dns_port`` and a runtime API socket at ``socket_path``."""
    (resolvers,) = [m[0] for m in _RESOLVERS.finditer(config)]
    if resolvers.count("  parse-resolv-conf\n") != 1:
        raise ValueError("the resolvers section has no parse-resolv-conf line")
    resolvers = resolvers.replace("  parse-resolv-conf\n", f"  nameserver loopback {LOOPBACK}:{dns_port}\n")
    (template,) = [m[0] for m in _TEMPLATE.finditer(config)]
    return (f"global\n  stats socket {socket_path} level admin\n\n"
            "defaults\n  mode http\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\n\n"
            f"{resolvers}\nbackend replicas\n{template}\n")


def runtime(socket_path: Path, command: str) -> str:
    """One command over HAProxy's runtime API."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(socket_path))
        sock.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def resolver_counters(socket_path: Path, section: str) -> dict[str, int]:
    """``show resolvers <section>``: its name server's counters (``valid``, ``truncated``, ...)."""
    text = runtime(socket_path, f"show resolvers {section}")
    return {k: int(v) for k, v in re.findall(r"^\s+(\w+):\s+(\d+)$", text, re.M)}


def slot_addresses(socket_path: Path) -> list[str]:
    """The address of each slot of ``backend replicas`` that has one (``show servers state``)."""
    rows = [line.split() for line in runtime(socket_path, "show servers state replicas").splitlines()
            if line and not line.startswith("#") and line[0].isdigit()]
    return [row[4] for row in rows if len(row) > 4 and row[4].startswith("127.")]


def discover(config: str, addresses: Sequence[str], workdir: Path, timeout: float = 30.0) -> tuple[dict, list]:
    """Run the shipped discovery of ``config`` against :class:`LoopbackDns` serving ``addresses``;
    returns (resolver counters, slot addresses) once HAProxy took two answers to its A query
    (valid or not; the second comes ``hold valid`` or a retry later), waiting at most ``timeout``
    seconds. Every process and thread is stopped on return."""
    server = LoopbackDns(template_host(config), addresses).start()
    socket_path = workdir / "haproxy.sock"
    path = workdir / "discovery.cfg"
    path.write_text(discovery_config(config, server.port, socket_path))
    proc = Proc(["haproxy", "-f", str(path)], workdir / "discovery.log")
    try:
        deadline = time.monotonic() + timeout
        counters: dict = {}
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                raise RuntimeError(f"haproxy exited: {proc.tail()}")
            if socket_path.exists():
                counters = resolver_counters(socket_path, _RESOLVERS.search(config)[1])
                if sum(counters.get(k, 0) for k in A_OUTCOMES) >= 2:  # the first one fully processed
                    return counters, slot_addresses(socket_path)
            time.sleep(0.1)
        raise TimeoutError(f"no DNS answer reached HAProxy within {timeout}s: {counters} {proc.tail()}")
    finally:
        proc.stop()
        server.stop()
