"""Learned pinning: an HAProxy in front of an MCP service's pods that learns each session's replica
from the response and sends the session's later requests there, for every client.

``initialize`` carries no session id: the proxy sends it to any pod, reads the ``Mcp-Session-Id``
that pod minted from the response (``stick store-response res.hdr(...)``) and routes every later
request carrying that id to the same pod (``stick match req.hdr(...)``). ``stick match`` only
looks up: an id a client made up is never stored, so no client can fill the table (``stick on``
would store every id sent). Ids are keyed by their SHA-1, so long ids (a JWT) neither get
truncated into collisions nor cost more memory. Sources: HAProxy configuration manual, sections
"stick match", "stick store-response", "stick-table", "peers", "server-template",
"monitor fail", "ulimit-n", "tune.bufsize" (https://docs.haproxy.org/3.0/configuration.html).

The proxy runs as a StatefulSet so each replica has a stable name; the replicas share the stick
table through a ``peers`` section, keyed by the server's address (``srvkey addr``, HAProxy 2.7+),
because each replica discovers the pods (``server-template`` over a headless Service) in its own
order. HAProxy resolves peer names once, at start-up: the peers' headless Service publishes
not-ready addresses and the pods start in parallel, so a replica that starts before its peers
have addresses restarts until they do.

The conformance run (``tools/conformance``) drives this very text, with loopback addresses
substituted, through two peered proxies in front of real MCP servers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PEER_PORT = 10000
SERVE_PORT = 8080
HEALTH_PORT = 8404
PROXY_IMAGE = "docker.io/library/haproxy:3.0"
"""HAProxy 3.0 LTS (``srvkey`` needs 2.7 or later); the Debian 2.6 the conformance run uses reads
the same configuration without ``srvkey`` (its proxies list the servers in one order)."""

BYTES_PER_PIN = 256
"""Memory per learned pin, bytes, with margin: measured 208 B per entry (HAProxy 2.6, ``type binary
len 20``, 20,000 entries learned from responses; ``benchmarks/pin_table_memory.py`` repeats it and
``tests/e2e`` checks the figure stays under this one)."""
BYTES_PER_CONNECTION = 2 * 16384 + 1024
"""Worst case per connection: a request and a response buffer of ``tune.bufsize`` (16 KiB by
default), plus the stream's own state."""
BASE_MEMORY_MIB = 32
"""HAProxy's own footprint before any pin or connection (measured about 15 MiB resident on 2.6)."""
FDS_PER_CONNECTION = 2
"""A proxied connection holds a client and a server socket."""
FDS_OVERHEAD = 64
"""Listeners, peers, health checks, the resolver and log sockets, with margin."""
READY_DELAY_SECONDS = 5
"""A new replica reports ready no earlier than this: HAProxy gives a starting process 5 s to get
the stick table from its peers (``PEER_RESYNC_TIMEOUT``, ``src/peers.c``); the link came up 1.5 to
2.7 s after start in the conformance run."""
HTTP_REQUEST_TIMEOUT_SECONDS = 10
"""A client has this long to send a request's headers (``timeout http-request``)."""
HOP_HEADER = "X-Mcp-Pinning-Hop"
"""Marks a request one proxy replica handed to another; removed before it reaches a pod."""
KEEP_ALIVE_TIMEOUT_SECONDS = 30
"""An idle keep-alive connection between two requests closes after this (``timeout http-keep-alive``);
the client opens a new one, the pin is in the table, not in the connection."""


@dataclass(frozen=True)
class ProxySizing:
    """The proxy's limits, each derived from the two a user sets.

    - ``max_sessions``: pins the stick table holds (its ``size``); the oldest go first when full.
    - ``max_connections``: concurrent client connections (``maxconn``).
    """

    max_sessions: int
    max_connections: int

    @property
    def fd_limit(self) -> int:
        """``ulimit-n``: file descriptors HAProxy asks for at start (it refuses to start without them)."""
        return FDS_PER_CONNECTION * self.max_connections + FDS_OVERHEAD

    @property
    def memory_mib(self) -> int:
        """The container's memory request and limit, MiB, rounded up to 16 MiB."""
        total = BASE_MEMORY_MIB * 2**20 + self.max_sessions * BYTES_PER_PIN + self.max_connections * BYTES_PER_CONNECTION
        return 16 * math.ceil(total / 2**20 / 16)


def peer_names(name: str, replicas: int) -> list[str]:
    """The StatefulSet's pod names: HAProxy takes its local peer name from the host name."""
    return [f"{name}-{index}" for index in range(replicas)]


def server_discovery(pods_service: str, namespace: str, port: int, max_servers: int) -> str:
    """The line that finds the MCP pods: up to ``max_servers`` addresses of a headless Service."""
    return (f"  server-template mcp 1-{max_servers} {pods_service}.{namespace}.svc.cluster.local:{port} "
            "resolvers kubedns init-addr none")


def haproxy_config(*, name: str, namespace: str, pods_service: str, peers_service: str, replicas: int,
                   header: str, port: int, max_servers: int, stream_timeout_seconds: int,
                   session_idle_seconds: int, sizing: ProxySizing, srvkey: bool = True) -> str:
    """The proxy's ``haproxy.cfg``.

    - ``name``: the StatefulSet (peers ``{name}-0`` ...); ``peers_service`` its headless Service.
    - ``pods_service``: a headless Service of the MCP pods on ``port``; up to ``max_servers`` pods.
    - ``header``: the session header learned from responses (``Mcp-Session-Id``).
    - ``stream_timeout_seconds``: the longest a request or stream may stay silent (client, server
      and tunnel timeouts); independent of how long a shutdown drains.
    - ``session_idle_seconds``: an idle session's pin expires after this (the server's idle-session
      timeout); every request of the session renews it.
    - ``sizing``: table size, ``maxconn`` and ``ulimit-n`` (:class:`ProxySizing`).
    - ``srvkey``: key pins by server address so peers agree (False for HAProxy 2.6).

    A pinned request goes to its pod even while this replica's health checks still call the pod
    down (``option persist``): each proxy replica checks on its own, and one that has not yet
    seen a restarted pod come back would otherwise send the pod's new sessions elsewhere
    (measured: FastMCP sessions lost after a pod restart). Only a refused connection moves the
    request on (``option redispatch``), to a pod that answers 404 and so ends the session.

    A request whose session id this replica has no pin for is handed to the proxy replicas in
    turn (``backend handover``, ``retry-on 404``; the body is buffered first, as a retry needs
    it), each of which routes it by its own table and hands it on no further (``HOP_HEADER``).
    This covers the pin still on its way from the replica that learned it: the session's next
    request can reach another replica first (measured: 3 of 8 FastMCP sessions lost behind two
    proxies without it), while the replica that saw the ``initialize`` response holds the pin
    before the client can send anything. An id no server minted costs at most one request to a
    pod per proxy replica, and stores nothing.

    ``/healthz`` on :data:`HEALTH_PORT` fails while no MCP pod is up; ``/metrics`` there is
    HAProxy's Prometheus exporter (``haproxy_sticktable_used`` counts the pins), which the official
    image is built with (``USE_PROMEX=1``, docker-library/haproxy ``3.0/Dockerfile``, which also
    runs HAProxy as uid 99, the pod's ``runAsUser``).
    """
    domain = f"{namespace}.svc.cluster.local"
    names = peer_names(name, replicas)
    peers = "\n".join(f"  peer {peer} {peer}.{peers_service}.{domain}:{PEER_PORT}" for peer in names)
    handover_rule = handover = ""
    if replicas > 1:
        unpinned = f"{{ req.hdr({header}) -m found }} !{{ req.hdr({header}),sha1,in_table(replicas) }}"
        handover_rule = f"  use_backend handover if {unpinned} !{{ req.hdr({HOP_HEADER}) -m found }}\n"
        handover = "\n".join([
            "", "backend handover", "  balance roundrobin", "  retry-on 404", "  option http-buffer-request",
            f"  retries {replicas - 1}", f"  http-request set-header {HOP_HEADER} 1",
            *(f"  server {peer} {peer}.{peers_service}.{domain}:{SERVE_PORT} resolvers kubedns init-addr none"
              for peer in names), ""])
    key = " srvkey addr" if srvkey else ""
    stream = f"{stream_timeout_seconds}s"
    return f"""global
  log stdout format raw local0 info
  maxconn {sizing.max_connections}
  ulimit-n {sizing.fd_limit}

defaults
  mode http
  log global
  option httplog
  option redispatch 1
  retries 2
  timeout connect 5s
  timeout http-request {HTTP_REQUEST_TIMEOUT_SECONDS}s
  timeout http-keep-alive {KEEP_ALIVE_TIMEOUT_SECONDS}s
  timeout client {stream}
  timeout server {stream}
  timeout tunnel {stream}
  default-server check inter 2s fall 2 rise 2

resolvers kubedns
  parse-resolv-conf
  hold valid 5s

peers pinning
{peers}

frontend health
  bind :{HEALTH_PORT}
  monitor-uri /healthz
  monitor fail if {{ nbsrv(replicas) lt 1 }}
  http-request use-service prometheus-exporter if {{ path /metrics }}

frontend mcp
  bind :{SERVE_PORT}
{handover_rule}  default_backend replicas

backend replicas
  balance roundrobin
  option persist
  http-request del-header {HOP_HEADER}
  stick-table type binary len 20 size {sizing.max_sessions} expire {session_idle_seconds}s{key} peers pinning
  stick match req.hdr({header}),sha1
  stick store-response res.hdr({header}),sha1
{server_discovery(pods_service, namespace, port, max_servers)}
{handover}"""
