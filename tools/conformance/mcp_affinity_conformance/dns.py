"""The pinning proxy's DNS discovery against a name server on 127.0.0.1.

:class:`LoopbackDns` answers A queries for one host with a list of addresses as GKE's kube-dns
does: over UDP an answer fits the size the query announces (EDNS0 ``OPT``; 512 bytes without it)
and at most :data:`~mcp_affinity.pinning_proxy.DNS_PAYLOAD_BYTES` (its dnsmasq 2.90 caps EDNS
answers there); a larger answer goes out truncated: the records that fit, and ``TC`` (as
``Truncate`` of miekg/dns, the DNS library of kube-dns and CoreDNS, makes it). Over TCP, on the
same port, every answer goes out whole (up to 65535 bytes, RFC 1035 section 4.2.2).

:func:`discover` runs the shipped ``resolvers`` section and ``server-template`` line of a planned
``haproxy.cfg`` through the container's shipped start-up command
(:func:`~mcp_affinity.pinning_proxy.start_command`), reading a ``resolv.conf`` that names
127.0.0.1, with nothing else of the proxy: no health check, no frontend, so HAProxy contacts no
address an answer gives it. :func:`slot_addresses` and :func:`resolver_counters` read the outcome
over HAProxy's runtime API (``show servers state``, ``show resolvers``; HAProxy management guide,
section 9.3).
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
    """A name server on 127.0.0.1 (``port``, UDP and TCP) answering A queries for ``host`` with
    ``addresses`` (all in 127.0.0.0/8), other types with no data, other names with NXDOMAIN;
    ``start`` / ``stop`` its threads. ``tcp`` False: the port refuses TCP connections (a name server
    that answers over UDP only)."""

    def __init__(self, host: str, addresses: Sequence[str], tcp: bool = True) -> None:
        if not all(address.startswith("127.") for address in addresses):
            raise ValueError("loopback addresses only")
        self.host, self.addresses = host.rstrip(".") + ".", list(addresses)
        self._udp, self._tcp = _udp_and_tcp_sockets()
        self.port = self._udp.getsockname()[1]
        self._stopped = threading.Event()
        self._threads = [threading.Thread(target=self._serve_udp, daemon=True)]
        if tcp:
            self._threads.append(threading.Thread(target=self._serve_tcp, daemon=True))
        else:
            self._tcp.close()  # nothing listens on the port's TCP side: connections are refused

    def start(self) -> "LoopbackDns":
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        for thread in list(self._threads):
            if thread.is_alive():
                thread.join(5)
        self._udp.close()
        self._tcp.close()

    def _serve_udp(self) -> None:
        while not self._stopped.is_set():
            try:
                data, peer = self._udp.recvfrom(65535)
            except TimeoutError:
                continue
            self._udp.sendto(answer(data, self.host, self.addresses), peer)

    def _serve_tcp(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._tcp.accept()
            except TimeoutError:
                continue
            thread = threading.Thread(target=self._serve_connection, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve_connection(self, conn: socket.socket) -> None:
        """Messages framed by a 2-byte length (RFC 1035 4.2.2), answered whole, until the client
        closes or the server stops."""
        conn.settimeout(0.2)
        with conn:
            buffer = b""
            while not self._stopped.is_set():
                try:
                    chunk = conn.recv(65537)
                except TimeoutError:
                    continue
                if not chunk:
                    return
                buffer += chunk
                while len(buffer) >= 2 and len(buffer) >= 2 + int.from_bytes(buffer[:2], "big"):
                    size = int.from_bytes(buffer[:2], "big")
                    wire = answer(buffer[2:2 + size], self.host, self.addresses, tcp=True)
                    buffer = buffer[2 + size:]
                    conn.sendall(len(wire).to_bytes(2, "big") + wire)


def _udp_and_tcp_sockets(attempts: int = 20) -> tuple[socket.socket, socket.socket]:
    """A UDP and a listening TCP socket on one free port of 127.0.0.1 (a few tries: the TCP port of
    a free UDP port may be taken)."""
    for _ in range(attempts):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind((LOOPBACK, 0))
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            tcp.bind((LOOPBACK, udp.getsockname()[1]))
        except OSError:
            udp.close()
            tcp.close()
            continue
        tcp.listen(8)
        udp.settimeout(0.2)
        tcp.settimeout(0.2)
        return udp, tcp
    raise OSError(f"no port of {LOOPBACK} free for both UDP and TCP in {attempts} tries")


def answer(query_wire: bytes, host: str, addresses: Sequence[str], tcp: bool = False) -> bytes:
    """The cluster DNS's answer to ``query_wire``: A records of ``addresses`` for ``host``; over
    UDP truncated when they exceed what the query announced or
    :data:`~mcp_affinity.pinning_proxy.DNS_PAYLOAD_BYTES`, over TCP (``tcp``) whole up to
    :data:`~mcp_affinity.pinning_proxy.DNS_MESSAGE_BYTES`."""
    query = dns.message.from_wire(query_wire)
    udp_limit = min(query.payload if query.edns >= 0 else 512, pinning_proxy.DNS_PAYLOAD_BYTES)
    limit = pinning_proxy.DNS_MESSAGE_BYTES if tcp else udp_limit
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


def answer_to(host: str, addresses: Sequence[str], payload: int, tcp: bool = False) -> dns.message.Message:
    """The answer to an A query for ``host`` announcing ``payload`` bytes (EDNS0), over UDP or TCP,
    parsed, with ``wire_size`` (bytes) set on it."""
    query = dns.message.make_query(host, "A", use_edns=0, payload=payload)
    wire = answer(query.to_wire(), host, addresses, tcp=tcp)
    message = dns.message.from_wire(wire)
    message.wire_size = len(wire)
    return message


def template_host(config: str) -> str:
    """The headless Service host of the shipped ``server-template`` line."""
    return _TEMPLATE.search(config)[1]


def discovery_config(config: str, dns_port: int, socket_path: Path) -> str:
    """The shipped ``resolvers`` section and ``server-template`` line of ``config``, with its name
    servers' port (53) moved to ``dns_port`` (their address stays the start-up command's
    ``"${DNS_SERVER}"``) and a runtime API socket at ``socket_path``."""
    (resolvers,) = [m[0] for m in _RESOLVERS.finditer(config)]
    servers = re.findall(r"^  nameserver .*$", resolvers, re.M)
    if not servers or not all(line.endswith(f":{pinning_proxy.DNS_PORT}") for line in servers):
        raise ValueError(f"the resolvers section has no name server, or one off port {pinning_proxy.DNS_PORT}")
    resolvers = resolvers.replace(f":{pinning_proxy.DNS_PORT}\n", f":{dns_port}\n")
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


def resolver_counters(socket_path: Path, section: str) -> dict[str, dict[str, int]]:
    """``show resolvers <section>``: each name server's counters (``valid``, ``truncated``, ...),
    by the name server's name."""
    counters: dict[str, dict[str, int]] = {}
    current: dict[str, int] = {}
    for line in runtime(socket_path, f"show resolvers {section}").splitlines():
        if header := re.match(r"^\s*nameserver (\S+):$", line):
            current = counters.setdefault(header[1], {})
        elif counter := re.match(r"^\s+(\w+):\s+(\d+)$", line):
            current[counter[1]] = int(counter[2])
    return counters


def slot_addresses(socket_path: Path) -> list[str]:
    """The address of each slot of ``backend replicas`` that has one (``show servers state``)."""
    rows = [line.split() for line in runtime(socket_path, "show servers state replicas").splitlines()
            if line and not line.startswith("#") and line[0].isdigit()]
    return [row[4] for row in rows if len(row) > 4 and row[4].startswith("127.")]


def answers_taken(counters: dict[str, dict[str, int]]) -> int:
    """Answers to A queries HAProxy took, from every name server (an answer arriving after another
    name server's valid one counts ``outdated``)."""
    return sum(n.get(k, 0) for n in counters.values() for k in (*A_OUTCOMES, "outdated"))


def discover(config: str, addresses: Sequence[str], workdir: Path, timeout: float = 30.0,
             tcp: bool = True) -> tuple[dict, list]:
    """Run the shipped discovery of ``config`` with the shipped start-up command against
    :class:`LoopbackDns` serving ``addresses`` (over TCP too unless ``tcp`` is False); returns (each name server's counters, slot
    addresses) once HAProxy took two rounds of answers to its A query (valid or not; the second
    comes ``hold valid`` or a retry later), waiting at most ``timeout`` seconds. Every process and
    thread is stopped on return."""
    server = LoopbackDns(template_host(config), addresses, tcp=tcp).start()
    socket_path = workdir / "haproxy.sock"
    path = workdir / "discovery.cfg"
    path.write_text(discovery_config(config, server.port, socket_path))
    resolv_conf = workdir / "resolv.conf"
    resolv_conf.write_text(f"search svc.cluster.local cluster.local\nnameserver {LOOPBACK}\noptions ndots:5\n")
    proc = Proc(pinning_proxy.start_command(str(resolv_conf), str(path)), workdir / "discovery.log")
    try:
        deadline = time.monotonic() + timeout
        counters: dict = {}
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                raise RuntimeError(f"haproxy exited: {proc.tail()}")
            if socket_path.exists():
                counters = resolver_counters(socket_path, _RESOLVERS.search(config)[1])
                answering = len(counters) if tcp else 1  # a refused TCP name server answers nothing
                if answers_taken(counters) >= 2 * answering:  # the first round fully processed
                    return counters, slot_addresses(socket_path)
            time.sleep(0.1)
        raise TimeoutError(f"no DNS answer reached HAProxy within {timeout}s: {counters} {proc.tail()}")
    finally:
        proc.stop()
        server.stop()
