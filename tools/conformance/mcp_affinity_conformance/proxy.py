"""What routing sits in front of the replicas (:class:`Routing`), and the HAProxy that does it.

``learned`` is the package's own pinning proxy: its configuration is the text the plan deploys
(``pinning_proxy.haproxy_config``, read from the plan's ConfigMap), run by
:class:`LearnedProxies` with loopback addresses substituted (:func:`localize`) and nothing else
changed. Two or more of them share pins through ``peers``, behind a front that spreads requests
over them as the Kubernetes Service in front of the proxy pods does, so a session's requests
alternate between proxies.

The other kinds stand in for a platform's load balancer, each from what a plan configures (an
Istio DestinationRule's ``consistentHash.httpHeaderName``, an ``istio.io/persistent-session``
cookie, Cloud Run's affinity cookie, one instance): :func:`haproxy_config` renders them.
"""

from __future__ import annotations

import http.client
import re
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

from mcp_affinity import pinning_proxy
from mcp_affinity.affinity import DEFAULT_COOKIE, DEFAULT_SESSION_HEADER as DEFAULT_HEADER

from .procs import LOOPBACK, Proc, free_port

RoutingKind = Literal["round-robin", "header-hash", "cookie", "learned", "single"]
ROUTING_KINDS: tuple[RoutingKind, ...] = ("round-robin", "header-hash", "cookie", "learned", "single")
PROXY_HEADER = "X-Pinning-Proxy"
"""Set by the front of :class:`LearnedProxies`: which pinning proxy served the response."""
SEQUENCE_HEADER = "X-Conformance-Seq"
"""A session's request number (the driver sets it): the front of :class:`LearnedProxies` sends
request n to proxy n mod N, so every session's requests alternate between the proxies."""
_TOKEN = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
"""RFC 9110 token: the characters allowed in a header or cookie name."""


@dataclass(frozen=True)
class Routing:
    """How requests pick a replica.

    - ``round-robin``: every request to the next replica.
    - ``header-hash``: ``balance hdr(<header>)`` with ``hash-type consistent`` (what an Istio
      DestinationRule ``consistentHash.httpHeaderName`` does); requests without the header,
      such as ``initialize``, fall back to round robin.
    - ``cookie``: the proxy inserts ``<cookie>`` naming the replica (Istio persistent session,
      Cloud Run session affinity); only clients that keep cookies send it back.
    - ``learned``: the deployed pinning proxy, ``config`` being its ``haproxy.cfg`` from a plan.
    - ``single``: one replica only (a service capped at one instance).

    Source of the behaviour each kind is measured against: the MCP transport specification
    (sessions, ``Mcp-Session-Id``) and the platforms' pages cited in :mod:`.from_plan`.
    """

    kind: RoutingKind
    header: str = DEFAULT_HEADER
    cookie: str = DEFAULT_COOKIE
    config: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ROUTING_KINDS:
            raise ValueError(f"Routing.kind must be one of {ROUTING_KINDS}, got {self.kind!r}")
        for what, value in (("header", self.header), ("cookie", self.cookie)):
            if not _TOKEN.match(value):
                raise ValueError(f"Routing.{what} must be an HTTP token, got {value!r}")
        if (self.kind == "learned") != (self.config is not None):
            raise ValueError("Routing.config is the deployed haproxy.cfg of kind 'learned', and only of it")

    @property
    def label(self) -> str:
        """Short name for tables: the kind, plus the header or cookie when not the default."""
        if self.kind in ("header-hash", "learned") and self.header != DEFAULT_HEADER:
            return f"{self.kind} ({self.header})"
        if self.kind == "cookie" and self.cookie != DEFAULT_COOKIE:
            return f"cookie ({self.cookie})"
        return self.kind


def haproxy_config(routing: Routing, servers: Sequence[tuple[str, int]], bind_port: int,
                   check_interval_ms: int = 200) -> str:
    """HAProxy 2.6 configuration text standing in for a platform's ``routing`` (not ``learned``)
    in front of ``servers`` (name, port). Replicas get TCP health checks every
    ``check_interval_ms`` milliseconds, so a killed one is taken out quickly."""
    if routing.kind == "learned":
        raise ValueError("learned pinning runs the deployed configuration: use LearnedProxies")
    lines = [
        "global", "    maxconn 512", "    nbthread 1",
        "defaults", "    mode http", "    timeout connect 2s", "    timeout client 60s",
        "    timeout server 60s", "    retries 2", "    option redispatch 1",
        "frontend mcp", f"    bind {LOOPBACK}:{bind_port}", "    default_backend replicas",
        "backend replicas", *_balance(routing), *_servers(routing, servers, check_interval_ms),
    ]
    return "\n".join(lines) + "\n"


def _balance(routing: Routing) -> list[str]:
    if routing.kind == "header-hash":
        return [f"    balance hdr({routing.header})", "    hash-type consistent"]
    if routing.kind == "cookie":
        return ["    balance roundrobin", f"    cookie {routing.cookie} insert indirect nocache httponly"]
    return ["    balance roundrobin"]


def _servers(routing: Routing, servers: Sequence[tuple[str, int]], check_ms: int) -> list[str]:
    chosen = servers[:1] if routing.kind == "single" else servers
    cookie = routing.kind == "cookie"
    return [f"    server {name} {LOOPBACK}:{port} check inter {check_ms} fall 1 rise 1"
            + (f" cookie {name}" if cookie else "") for name, port in chosen]


# --- the deployed pinning proxy on loopback ---------------------------------------------------

_DISCOVERY = re.compile(r"^  server-template (\S+) 1-(\d+) \S+:\d+ resolvers \S+ init-addr none( port \d+)?$", re.M)
_PEER = re.compile(rf"^  peer (\S+) \S+:{pinning_proxy.PEER_PORT}$", re.M)
_HANDOVER = re.compile(rf"^  server (\S+) \S+:{pinning_proxy.SERVE_PORT} resolvers \S+ init-addr none$", re.M)
_BIND = re.compile(r"^  bind :(\d+)$", re.M)


@dataclass(frozen=True)
class Ports:
    """Loopback ports of a set of pinning proxies, by peer name: serving, health and peer ports."""

    serve: dict[str, int]
    health: dict[str, int]
    peer: dict[str, int]

    @classmethod
    def free(cls, names: Sequence[str]) -> "Ports":
        """Free ports for proxies ``names``."""
        return cls(*({name: free_port() for name in names} for _ in range(3)))


def peer_names(config: str) -> list[str]:
    """The peers a deployed configuration lists, in order."""
    return _PEER.findall(config)


def drain_checked(config: str) -> bool:
    """Whether a deployed configuration checks the pods through their drain signal (a session drain)."""
    return re.search(rf"^  server-template .* port {pinning_proxy.DRAIN_SIGNAL_PORT}$", config, re.M) is not None


def localize(config: str, servers: Sequence[tuple[str, int]], ports: Ports, me: str, srvkey: bool,
             checks: Optional[dict[str, int]] = None) -> str:
    """``config`` (the deployed ``haproxy.cfg``) for proxy ``me`` of a set, with its addresses
    moved to 127.0.0.1 and nothing else changed:

    - ``bind :PORT`` -> ``bind 127.0.0.1:<port>`` (``me``'s serving and health ports);
    - the ``server-template`` over the pods' headless Service -> one ``server`` line per replica
      in ``servers`` (name, port), named as the template names its slots;
    - each ``peer NAME HOST:PORT`` -> ``peer NAME 127.0.0.1:<ports.peer[NAME]>``, and each
      handover ``server NAME HOST:PORT ...`` -> ``server NAME 127.0.0.1:<ports.serve[NAME]>``;
    - the name server the start-up command fills in (``"${DNS_SERVER}"``) -> 127.0.0.1 (nothing
      resolves through it here);
    - ``srvkey addr`` dropped when ``srvkey`` is False (HAProxy before 2.7; every local proxy
      lists the servers in one order, so server ids agree across peers);
    - with a drain check (``server-template ... port 8405``), each server line gets ``port <p>``,
      ``checks[name]`` being that replica's drain signal on loopback (in a pod it is on 8405).

    Raises ``ValueError`` when a line it substitutes is not found exactly as the generator writes
    it, so a change of the generator cannot slip past the conformance run.
    """
    for _, slots, _ in _expect(_DISCOVERY, config, 1):
        if len(servers) > int(slots):
            raise ValueError(f"{len(servers)} replicas but the template has {slots} slots")
    drained = drain_checked(config)
    if drained and set(checks or {}) != {name for name, _ in servers}:
        raise ValueError("the configuration checks pods through their drain signal: give each replica's signal port")
    config = _DISCOVERY.sub(lambda m: "\n".join(
        f"  server {m[1]}{index} {LOOPBACK}:{port}" + (f" port {checks[name]}" if drained else "")
        for index, (name, port) in enumerate(servers, 1)), config)
    local = {pinning_proxy.SERVE_PORT: ports.serve[me], pinning_proxy.HEALTH_PORT: ports.health[me]}
    _expect(_BIND, config, len(local))
    config = _BIND.sub(lambda m: f"  bind {LOOPBACK}:{local[int(m[1])]}", config)
    _expect(_PEER, config, len(ports.peer))
    config = _PEER.sub(lambda m: f"  peer {m[1]} {LOOPBACK}:{ports.peer[m[1]]}", config)
    _expect(_HANDOVER, config, len(ports.serve) if len(ports.serve) > 1 else 0)
    config = _HANDOVER.sub(lambda m: f"  server {m[1]} {LOOPBACK}:{ports.serve[m[1]]}", config)
    config = dns_server_at(config, LOOPBACK)
    return config if srvkey else config.replace(" srvkey addr", "")


def dns_server_at(config: str, address: str) -> str:
    """``config`` with its ``resolvers`` section's name servers (UDP and TCP, the address the
    container's start-up command fills in) at ``address``; ``ValueError`` unless the section
    is exactly the one :func:`~mcp_affinity.pinning_proxy.resolvers_section` writes."""
    section = pinning_proxy.resolvers_section()
    if config.count(section) != 1:
        raise ValueError("the configuration has no resolvers section naming the pod's name server over UDP and TCP")
    server = f'"${{{pinning_proxy.DNS_SERVER_VARIABLE}}}":{pinning_proxy.DNS_PORT}'
    return config.replace(section, section.replace(server, f"{address}:{pinning_proxy.DNS_PORT}"))


def _expect(pattern: re.Pattern[str], text: str, count: int) -> list:
    found = pattern.findall(text)
    if len(found) != count:
        raise ValueError(f"expected {count} line(s) matching {pattern.pattern!r} in the deployed config, found {len(found)}")
    return found


def haproxy_supports_srvkey() -> bool:
    """Whether the local ``haproxy`` is 2.7 or later (``srvkey`` in ``stick-table``)."""
    version = subprocess.run(["haproxy", "-v"], capture_output=True, text=True, timeout=10).stdout
    major, minor = (int(x) for x in re.search(r"version (\d+)\.(\d+)", version).groups())
    return (major, minor) >= (2, 7)


def wait_ready(health_port: int, timeout: float) -> None:
    """Block until the pinning proxy's readiness check (``/healthz``) answers 200, as the kubelet
    waits before the Service sends it traffic; ``timeout`` in seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        connection = http.client.HTTPConnection(LOOPBACK, health_port, timeout=2)
        try:
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.05)
    raise TimeoutError(f"the pinning proxy on health port {health_port} was not ready within {timeout} s")


def metrics(health_port: int, scope: str) -> str:
    """The Prometheus exporter's text of ``scope`` (``sticktable``, ``server``, ...) on the pinning
    proxy whose health port is ``health_port``."""
    connection = http.client.HTTPConnection(LOOPBACK, health_port, timeout=10)
    try:
        connection.request("GET", f"/metrics?scope={scope}")
        return connection.getresponse().read().decode()
    finally:
        connection.close()


def pins_at(health_port: int) -> int:
    """Entries in the stick tables of the pinning proxy whose health port is ``health_port``
    (``haproxy_sticktable_used`` of HAProxy's Prometheus exporter on ``/metrics``)."""
    text = metrics(health_port, "sticktable")
    return sum(int(float(v)) for v in re.findall(r"^haproxy_sticktable_used\{[^}]*\} (\S+)$", text, re.M))


class HAProxy:
    """Debian's ``haproxy`` in the foreground on a free loopback port, standing in for ``routing``."""

    def __init__(self, routing: Routing, servers: Sequence[tuple[str, int]], workdir: Path, tag: str) -> None:
        self.port = free_port()
        self.config = haproxy_config(routing, servers, self.port)
        path = workdir / f"haproxy-{tag}.cfg"
        path.write_text(self.config)
        self.proc = Proc(["haproxy", "-db", "-f", str(path)], workdir / f"haproxy-{tag}.log")
        self.proc.wait_port(self.port, 10.0)

    @property
    def url(self) -> str:
        """The MCP endpoint behind the proxy."""
        return f"http://{LOOPBACK}:{self.port}/mcp"

    def stop(self) -> None:
        """Stop the proxy."""
        self.proc.stop()


class DrainSignals:
    """Each replica's drain signal (the pod's ``drain-signal`` container): the planned relay
    configuration (:func:`mcp_affinity.pinning_proxy.drain_signal_config`) on a loopback port in
    front of the replica. Stopping one (SIGTERM) is what Kubernetes does when the pod's termination
    starts, while the replica (whose ``preStop`` sleeps) keeps serving."""

    def __init__(self, servers: Sequence[tuple[str, int]], workdir: Path, tag: str) -> None:
        self.servers, self.workdir, self.tag = dict(servers), workdir, tag
        self.ports = {name: free_port() for name in self.servers}
        self.procs: dict[str, Proc] = {}

    def start(self, name: str) -> None:
        """Start replica ``name``'s signal and wait until it listens."""
        path = self.workdir / f"drain-signal-{self.tag}-{name}.cfg"
        path.write_text(pinning_proxy.drain_signal_config(listen_port=self.ports[name], server_port=self.servers[name],
                                                          listen_address=LOOPBACK))
        proc = Proc(["haproxy", "-db", "-f", str(path)], self.workdir / f"drain-signal-{self.tag}-{name}.log")
        proc.wait_port(self.ports[name], 10.0)
        self.procs[name] = proc

    def terminate(self, name: str) -> None:
        """Replica ``name``'s pod starts terminating: its signal gets SIGTERM and stops."""
        self.procs.pop(name).stop()

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.stop()
        self.procs.clear()


def server_states(health_port: int) -> dict[str, str]:
    """Server name -> ``UP`` / ``DOWN`` / ... in the ``replicas`` backend of the pinning proxy whose
    health port is ``health_port`` (``haproxy_server_status`` of its Prometheus exporter)."""
    states = {}
    for labels, value in re.findall(r"^haproxy_server_status\{([^}]*)\} (\S+)$", metrics(health_port, "server"), re.M):
        fields = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if fields.get("proxy") == "replicas" and float(value) == 1 and "state" in fields:
            states[fields["server"]] = fields["state"]
    return states


class LearnedProxies:
    """The deployed pinning proxies (one per peer the configuration lists), sharing pins through
    ``peers``, behind a front standing in for the Kubernetes Service in front of them: a session's
    request n goes to proxy n mod N (:data:`SEQUENCE_HEADER`; round robin without it, and for a
    proxy its ``/healthz`` check calls down), and the response names it in :data:`PROXY_HEADER`."""

    def __init__(self, routing: Routing, servers: Sequence[tuple[str, int]], workdir: Path, tag: str,
                 signals: Optional[DrainSignals] = None) -> None:
        assert routing.config is not None
        self.workdir, self.tag, self.servers = workdir, tag, list(servers)
        self.signals = signals
        if signals is None and drain_checked(routing.config):  # every pod has its signal, all running
            self.signals = DrainSignals(servers, workdir, tag)
            for name, _ in servers:
                self.signals.start(name)
        self.names = peer_names(routing.config)
        self.ports = Ports.free(self.names)
        srvkey = haproxy_supports_srvkey()
        checks = self.signals.ports if self.signals else None
        self.configs = {name: localize(routing.config, servers, self.ports, name, srvkey, checks) for name in self.names}
        self.procs: dict[str, Proc] = {}
        for name in self.names:
            self.start(name)
        self.port = free_port()
        self.front = self._front()

    def start(self, name: str) -> None:
        """Start proxy ``name`` (``-L`` gives its peer name, as the pod's host name does)."""
        path = self.workdir / f"haproxy-{self.tag}-{name}.cfg"
        path.write_text(self.configs[name])
        proc = Proc(["haproxy", "-db", "-L", name, "-f", str(path)], self.workdir / f"haproxy-{self.tag}-{name}.log")
        proc.wait_port(self.ports.serve[name], 10.0)
        wait_ready(self.ports.health[name], 15.0)
        self.procs[name] = proc

    def restart(self, name: str) -> None:
        """Stop proxy ``name`` (its table goes with it) and start it again."""
        self.procs.pop(name).stop()
        self.start(name)

    def pins(self, name: str) -> int:
        """Entries in proxy ``name``'s stick table."""
        return pins_at(self.ports.health[name])

    def wait_table(self, name: str, timeout: float) -> float:
        """Seconds until proxy ``name`` holds as many pins as its fullest peer; ``timeout`` bounds it."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.pins(name) >= max(self.pins(other) for other in self.names if other != name):
                return time.monotonic() - start
            time.sleep(0.05)
        raise TimeoutError(f"{name} did not get its peers' pins within {timeout} s")

    def _front(self) -> Proc:
        lines = [
            "global", "    maxconn 512", "    nbthread 1",
            "defaults", "    mode http", "    timeout connect 2s", "    timeout client 60s", "    timeout server 60s",
            "frontend front", f"    bind {LOOPBACK}:{self.port}", "    default_backend proxies",
            "backend proxies", "    balance roundrobin", "    option httpchk GET /healthz",
            f"    http-request set-var(txn.seq) req.hdr({SEQUENCE_HEADER})",
            f"    http-request del-header {SEQUENCE_HEADER}",
            *(f"    use-server {name} if {{ var(txn.seq),mod({len(self.names)}) -m int {index} }}"
              for index, name in enumerate(self.names)),
            f"    http-response set-header {PROXY_HEADER} %[srv_name]",
            *(f"    server {name} {LOOPBACK}:{self.ports.serve[name]} check port {self.ports.health[name]} "
              "inter 200 fall 1 rise 1" for name in self.names),
        ]
        path = self.workdir / f"haproxy-{self.tag}-front.cfg"
        path.write_text("\n".join(lines) + "\n")
        proc = Proc(["haproxy", "-db", "-f", str(path)], self.workdir / f"haproxy-{self.tag}-front.log")
        proc.wait_port(self.port, 10.0)
        return proc

    @property
    def url(self) -> str:
        """The MCP endpoint behind the front."""
        return f"http://{LOOPBACK}:{self.port}/mcp"

    def slot(self, replica: str) -> str:
        """The proxies' server name for ``replica`` (``mcp1`` ... in the order of ``servers``)."""
        return f"mcp{[name for name, _ in self.servers].index(replica) + 1}"

    def states(self, name: str) -> dict[str, str]:
        """Replica -> its state (``UP``, ``DOWN``, ...) in proxy ``name``."""
        by_slot = server_states(self.ports.health[name])
        return {replica: by_slot.get(self.slot(replica), "?") for replica, _ in self.servers}

    def wait_states(self, wanted: dict[str, str], timeout: float) -> float:
        """Seconds until every proxy sees each replica of ``wanted`` in its state; ``timeout`` bounds it."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if all(self.states(name).get(r) == s for name in self.names for r, s in wanted.items()):
                return time.monotonic() - start
            time.sleep(0.1)
        raise TimeoutError(f"replica states {wanted} not reached within {timeout} s: "
                           f"{ {name: self.states(name) for name in self.names} }")

    def stop(self) -> None:
        """Stop the front, every proxy and every drain signal."""
        self.front.stop()
        for proc in self.procs.values():
            proc.stop()
        self.procs.clear()
        if self.signals is not None:
            self.signals.stop()
