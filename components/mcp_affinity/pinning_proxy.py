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

Deploys (``sessionDrainSeconds`` > 0): a pod of the old version keeps serving its pinned sessions
while it terminates, and takes no new ones. Three facts make it work:

- Kubernetes runs ``preStop`` before SIGTERM, bounded by ``terminationGracePeriodSeconds``
  (https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-termination): the MCP
  container's ``preStop`` sleeps the drain, so the server keeps serving meanwhile.
- A terminating pod stays in its EndpointSlice (KEP-1672), but CoreDNS publishes only ``ready``
  endpoints, and ``ready`` stays true for a terminating pod only on a Service with
  ``publishNotReadyAddresses: true``: the pods' headless Service sets it, so ``server-template``
  keeps the pod's slot. (A slot whose address leaves DNS goes into maintenance, which even
  ``option persist`` does not override.)
- The proxy marks the pod down while its pins still reach it: its health check goes through a
  **drain signal**, a second HAProxy in the MCP pod (:func:`drain_signal_config`, the same image)
  relaying the check to the server's health path. That container has no ``preStop``: it gets
  SIGTERM when termination starts and HAProxy stops at once on SIGTERM (HAProxy management guide,
  "Stopping and restarting HAProxy"), so the check fails within ``fall x inter`` (4 s) and the pod
  takes no new session (``balance`` skips a down server), while ``option persist`` keeps sending
  pinned requests to it. The check also fails while the server itself is unhealthy.

Slots during a drain: ``server-template`` makes a fixed number of servers (slots), and a slot keeps
its address as long as that address stays in the DNS answer; a new address only takes a slot that
has none (HAProxy 3.0 ``src/resolvers.c`` ``resolv_get_ip_from_response``: a server still linked to
a record of the answer keeps it, an address another server of the backend holds is skipped; a slot
with no address left goes into maintenance, ``src/server.c`` ``snr_resolution_cb``). Terminating pods
stay in the answer for the whole drain, so the slots must hold them beside the new version:
:func:`server_slots` gives ``maxReplicas`` x (1 + :data:`DRAINING_SETS`), i.e. this version plus two
draining ones (a second deploy, or a rollback, inside one window). The Deployment's rollout surge
(Kubernetes' default ``maxSurge`` 25 %, rounded up; the package sets no ``strategy``) adds no pod
beyond these sets: the new ReplicaSet never exceeds ``replicas`` and terminating pods of the old one
are already counted as a draining set. Beyond the bound (a third deploy inside one window, or the
autoscaler cycling pods in and out within it) the newest pods find no free slot and get no sessions
until a draining pod leaves DNS; if no pod of the current version has a slot, new sessions fail
(503) until then.

The DNS answer must carry every address in one message: HAProxy treats a truncated answer as an
error (``RSLV_RESP_TRUNCATED`` in ``resolv_validate_dns_response``), and after ``hold other`` (30 s)
every slot loses its address and the service is down. Over UDP, GKE's kube-dns answers at most
:data:`DNS_PAYLOAD_BYTES` (1232 bytes, about 72 addresses), so the proxy also asks over TCP, which
carries up to 65535 bytes (RFC 1035 4.2.2; about 4090 addresses): its ``resolvers`` section names
the pod's name server twice, ``nameserver udp`` and ``nameserver tcp tcp@`` (HAProxy 2.4+; the
configuration manual, "nameserver", https://docs.haproxy.org/3.0/configuration.html#5.3.2-nameserver),
and announces :data:`DNS_MESSAGE_BYTES` (``accepted_payload_size``: HAProxy counts a longer TCP answer
as ``too_big``, ``resolv_process_responses``; the manual asks for 65535 with TCP name servers).
HAProxy queries every name server and waits for all of them before it acts on an error
(``resolv_process_responses``, "Wait all nameservers response to handle errors"), so the TCP answer
wins over a truncated UDP one, and UDP alone still serves a name server that refuses TCP (an answer
that fits 1232 bytes). ``parse-resolv-conf`` makes UDP name servers only (``dns_dgram_init``), and
the plan does not know the cluster DNS's address: the container's start-up command
(:func:`start_command`) reads the first ``nameserver`` of the pod's ``/etc/resolv.conf`` into
``DNS_SERVER``, which HAProxy expands in the configuration (manual, section 2.3), the server
``parse-resolv-conf`` would have used. The package's cluster (:mod:`mcp_affinity.gke_cluster` sets no
``dns_config``) resolves with kube-dns, whose Service publishes ``dns-tcp`` 53/TCP to dnsmasq's TCP
port, or with NodeLocal DNSCache (on by default from GKE 1.34.1), which binds 169.254.20.10 and
kube-dns's ClusterIP on 53/UDP and 53/TCP (kubernetes/kubernetes ``cluster/addons/dns``,
``kube-dns/kube-dns.yaml.in`` and ``nodelocaldns/nodelocaldns.yaml``). Cloud DNS for GKE (the node's
metadata server, 169.254.169.254) is not the package's choice, and whether it answers over TCP is
not documented. :func:`dns_fault` refuses pods beyond one 65535-byte answer (about 4090 addresses:
1363 ``maxReplicas`` with a drain, 3272 without, for a 45-character name); ``maxReplicas``' own
limit of 1000 stays under it, so what bounds the slots now is their cost: one file descriptor and
one health check every 2 s per slot per proxy replica (3000 slots at 1000 with a drain).

Why not HAProxy's ``agent-check`` with a ``drain`` reply: the agent must keep answering after
SIGTERM, which needs a program of our own in every pod; a relay that simply stops does the same
with a stock image. Why not a blue/green pair of Deployments: it doubles the pods for every
deploy, needs the package (not Kubernetes) to retire the old colour, and a node upgrade or
autoscaler still evicts pods of either colour with the same grace limits. Limits of the grace
period on GKE: node upgrades honour up to one hour, cluster-autoscaler scale-down up to 10 minutes
(https://cloud.google.com/kubernetes-engine/docs/how-to/extended-duration-pods): a pod the autoscaler
removes drains at most 10 minutes, then its sessions re-initialize.

The conformance run (``tools/conformance``) drives this very text, with loopback addresses
substituted, through two peered proxies in front of real MCP servers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

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
"""Listeners, peers, the handover's checks, the resolver and log sockets, with margin."""
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
DRAIN_SIGNAL_PORT = 8405
"""The drain signal's port in each MCP pod (:func:`drain_signal_config`); the proxy's health checks go there."""
DRAIN_SIGNAL_CONTAINER = "drain-signal"
DRAINING_SETS = 2
"""With a session drain, sets of ``maxReplicas`` terminating pods the slots hold beside the current
version: one deploy, plus a second (or a rollback) inside the same window."""
DNS_PAYLOAD_BYTES = 1232
"""The most GKE's cluster DNS returns over UDP: kube-dns runs dnsmasq 2.90 (kubernetes/dns
``images/dnsmasq/Makefile``) without ``--edns-packet-max``, whose default became 1232 in 2.90 (the
DNS flag day 2020 size; 4096 before; dnsmasq's man page). NodeLocal DNSCache fetches over TCP
(``force_tcp``) and answers up to the client's announced size. Cloud DNS for GKE documents no UDP
answer size: 1232 is assumed. A larger answer comes over TCP (:data:`DNS_MESSAGE_BYTES`)."""
DNS_MESSAGE_BYTES = 65535
"""The largest DNS message, which TCP carries (RFC 1035 section 4.2.2, a 16-bit length), and the
``accepted_payload_size`` the proxy announces (HAProxy takes 512 to 65535 and recommends 65535 with
TCP name servers, https://docs.haproxy.org/3.0/configuration.html#5.3.2-accepted_payload_size)."""
DNS_SERVER_VARIABLE = "DNS_SERVER"
"""The environment variable :func:`start_command` sets to the pod's name server; the ``resolvers``
section names it (HAProxy expands ``"${NAME}"`` in its configuration)."""
DNS_PORT = 53
CONFIG_PATH = "/usr/local/etc/haproxy/haproxy.cfg"
"""Where the proxy's and the drain signal's configuration is mounted (the official image's path)."""
DNS_HEADER_BYTES, DNS_OPT_BYTES, DNS_A_RECORD_BYTES = 12, 11, 16
"""A DNS message's header; the EDNS OPT record the answer carries; one A record with its name
compressed to a pointer (2 name + 2 type + 2 class + 4 TTL + 2 length + 4 address)."""
CHECK_INTER_SECONDS, CHECK_FALL = 2, 2
"""Health checks every 2 s; a pod is down after 2 failures (so a terminating pod takes no new session
about 4 s after its termination starts)."""


@dataclass(frozen=True)
class ProxySizing:
    """The proxy's limits, each derived from the two a user sets.

    - ``max_sessions``: pins the stick table holds (its ``size``); the oldest go first when full.
    - ``max_connections``: concurrent client connections (``maxconn``).
    - ``servers``: the pods' slots (:func:`server_slots`); each may hold a health check's socket,
      which ``maxconn`` does not count.
    """

    max_sessions: int
    max_connections: int
    servers: int = 0

    @property
    def fd_limit(self) -> int:
        """``ulimit-n``: file descriptors HAProxy asks for at start (it refuses to start without them)."""
        return FDS_PER_CONNECTION * self.max_connections + FDS_OVERHEAD + self.servers

    @property
    def memory_mib(self) -> int:
        """The container's memory request and limit, MiB, rounded up to 16 MiB."""
        total = BASE_MEMORY_MIB * 2**20 + self.max_sessions * BYTES_PER_PIN + self.max_connections * BYTES_PER_CONNECTION
        return 16 * math.ceil(total / 2**20 / 16)


def server_slots(max_replicas: int, drained: bool) -> int:
    """The ``server-template``'s slots: ``max_replicas`` x (1 + :data:`DRAINING_SETS`) with a session
    drain (terminating pods keep their slots, see the module's docstring), ``max_replicas`` without."""
    return max_replicas * (1 + DRAINING_SETS) if drained else max_replicas


def rollout_surge(replicas: int) -> int:
    """Pods a rolling update may add over ``replicas``: Kubernetes' default ``maxSurge`` 25 %, rounded
    up (https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#max-surge)."""
    return math.ceil(replicas / 4)


def addresses_in_dns(max_replicas: int, drained: bool) -> int:
    """The most pod addresses the pods' headless Service answers with, within the bound the slots are
    sized for: every slot with a drain (terminating pods stay), else the ready pods of a rollout
    (``max_replicas`` plus the surge; terminating pods leave the answer)."""
    return server_slots(max_replicas, True) if drained else max_replicas + rollout_surge(max_replicas)


def dns_answer_bytes(host: str, addresses: int) -> int:
    """Bytes of the answer to an A query for ``host`` with ``addresses`` records (over TCP, without
    the 2-byte length that precedes it)."""
    question = len(host.rstrip(".")) + 2 + 4  # labels with their length bytes, the root, type and class
    return DNS_HEADER_BYTES + question + addresses * DNS_A_RECORD_BYTES + DNS_OPT_BYTES


def dns_fault(host: str, max_replicas: int, drained: bool) -> Optional[str]:
    """Why ``max_replicas`` pods behind headless Service ``host`` are too many for one DNS answer of
    :data:`DNS_MESSAGE_BYTES` (over TCP), or None when they fit."""
    addresses = addresses_in_dns(max_replicas, drained)
    if dns_answer_bytes(host, addresses) <= DNS_MESSAGE_BYTES:
        return None
    fit = (DNS_MESSAGE_BYTES - dns_answer_bytes(host, 0)) // DNS_A_RECORD_BYTES
    most = {drain: max((n for n in range(1, fit + 1) if addresses_in_dns(n, drain) <= fit), default=0)
            for drain in (True, False)}
    why = (f"with a session drain the proxy's DNS answer holds this version's pods and {DRAINING_SETS} draining "
           f"sets ({addresses} addresses)" if drained else
           f"during a rollout the proxy's DNS answer holds {addresses} ready pods (maxReplicas plus 25 % surge)")
    return (f"{max_replicas} is too many for the pinning proxy: {why}, and one DNS answer holds at most "
            f"{fit} addresses of {host} ({DNS_MESSAGE_BYTES} bytes over TCP; HAProxy takes a truncated "
            f"answer as an error and 30 s later takes every pod out): at most {most[drained]}"
            + (f", or sessionDrainSeconds: 0 (then at most {most[False]})" if drained else ""))


def start_command(resolv_conf: str = "/etc/resolv.conf", config_path: str = CONFIG_PATH) -> list[str]:
    """The proxy container's ``command``: sets :data:`DNS_SERVER_VARIABLE` to the first ``nameserver``
    of ``resolv_conf`` (the pod's cluster DNS, as ``parse-resolv-conf`` would take it) and runs HAProxy
    as the official image's entrypoint does (``haproxy -W -db``, docker-library/haproxy
    ``docker-entrypoint.sh``); exits 1 with a message when the file names no name server (HAProxy
    would read an empty address as 0.0.0.0); reads a last line without a newline too. Shell built-ins
    only: the image's /bin/sh is dash."""
    script = (f'while read -r key value rest || [ -n "$key" ]; do [ "$key" = nameserver ] && {DNS_SERVER_VARIABLE}="$value" && break; '
              f'done < {resolv_conf}; '
              f'[ -n "${DNS_SERVER_VARIABLE}" ] || {{ echo "no nameserver in {resolv_conf}" >&2; exit 1; }}; '
              f'export {DNS_SERVER_VARIABLE}; exec haproxy -W -db -f {config_path}')
    return ["/bin/sh", "-c", script]


def resolvers_section() -> str:
    """The ``resolvers kubedns`` section: the pod's name server over UDP and over TCP (see the module's
    docstring), answers up to :data:`DNS_MESSAGE_BYTES`, addresses refreshed every 5 s."""
    server = f'"${{{DNS_SERVER_VARIABLE}}}":{DNS_PORT}'
    return (f"resolvers kubedns\n  nameserver udp {server}\n  nameserver tcp tcp@{server}\n"
            f"  accepted_payload_size {DNS_MESSAGE_BYTES}\n  hold valid 5s\n")


def peer_names(name: str, replicas: int) -> list[str]:
    """The StatefulSet's pod names: HAProxy takes its local peer name from the host name."""
    return [f"{name}-{index}" for index in range(replicas)]


def server_discovery(pods_service: str, namespace: str, port: int, max_servers: int,
                     check_port: Optional[int] = None) -> str:
    """The line that finds the MCP pods: up to ``max_servers`` addresses of a headless Service;
    ``check_port``: where their health checks go (the drain signal), on these servers only (the
    handover backend's peers are checked on their own port)."""
    return (f"  server-template mcp 1-{max_servers} {pods_service}.{namespace}.svc.cluster.local:{port} "
            "resolvers kubedns init-addr none" + (f" port {check_port}" if check_port else ""))


def drain_signal_config(*, listen_port: int, server_port: int, listen_address: str = "",
                        server_address: str = "127.0.0.1") -> str:
    """The drain signal's ``haproxy.cfg``: relays HTTP on ``listen_port`` to the MCP server on
    ``server_port`` (localhost in the pod; the proxy's health check passes through it) until the pod's
    termination starts, when it stops at once (SIGTERM). ``listen_address`` / ``server_address``:
    all addresses / localhost (tests bind loopback)."""
    return f"""global
  maxconn 64

defaults
  mode http
  timeout connect 2s
  timeout client 10s
  timeout server 10s

frontend drain_signal
  bind {listen_address}:{listen_port}
  default_backend server

backend server
  server mcp {server_address}:{server_port}
"""


def haproxy_config(*, name: str, namespace: str, pods_service: str, peers_service: str, replicas: int,
                   header: str, port: int, max_servers: int, stream_timeout_seconds: int,
                   session_idle_seconds: int, sizing: ProxySizing, srvkey: bool = True,
                   drain_check_path: Optional[str] = None) -> str:
    """The proxy's ``haproxy.cfg``.

    - ``name``: the StatefulSet (peers ``{name}-0`` ...); ``peers_service`` its headless Service.
    - ``pods_service``: a headless Service of the MCP pods on ``port``; up to ``max_servers`` pods
      (:func:`server_slots`: with a drain, room for the terminating pods too).
    - ``header``: the session header learned from responses (``Mcp-Session-Id``).
    - ``stream_timeout_seconds``: the longest a request or stream may stay silent (client, server
      and tunnel timeouts); independent of how long a shutdown drains.
    - ``session_idle_seconds``: an idle session's pin expires after this (the server's idle-session
      timeout); every request of the session renews it.
    - ``sizing``: table size, ``maxconn`` and ``ulimit-n`` (:class:`ProxySizing`).
    - ``srvkey``: key pins by server address so peers agree (False for HAProxy 2.6).
    - ``drain_check_path``: with a drain, the server's health path, checked over HTTP through each
      pod's drain signal (:data:`DRAIN_SIGNAL_PORT`); a terminating pod fails it and keeps only its
      pinned sessions (see the module's docstring). None checks the server's port (TCP).

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
    check = f"check inter {CHECK_INTER_SECONDS}s fall {CHECK_FALL} rise 2"
    drain_check, check_port = "", None
    if drain_check_path is not None:
        # HTTP/1.1 with a Host: a sidecar's Envoy refuses HTTP/1.0, HAProxy's default for checks.
        check_port = DRAIN_SIGNAL_PORT
        drain_check = (f"  option httpchk\n  http-check send meth GET uri {drain_check_path} ver HTTP/1.1 "
                       f"hdr Host {pods_service}\n")
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
  default-server {check}

{resolvers_section()}
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
{drain_check}  http-request del-header {HOP_HEADER}
  stick-table type binary len 20 size {sizing.max_sessions} expire {session_idle_seconds}s{key} peers pinning
  stick match req.hdr({header}),sha1
  stick store-response res.hdr({header}),sha1
{server_discovery(pods_service, namespace, port, max_servers, check_port)}
{handover}"""
