"""Learned pinning: an HAProxy in front of an MCP service's pods that learns each session's replica
from the response and sends the session's later requests there, for every client.

``initialize`` carries no session id: the proxy sends it to any pod, reads the ``Mcp-Session-Id``
that pod minted from the response (``stick store-response res.hdr(...)``) and routes every later
request carrying that id to the same pod (``stick on req.hdr(...)``). Measured with two replicas
of an official ``mcp`` 2.3 server behind HAProxy: 0 of 48 calls failed, against 26 with round
robin and whole sessions lost with a header hash (the conformance run, ``tests/e2e/conformance-table.md``). Envoy cannot learn
a pin from a response header the server chose, so the mesh alone cannot do this.

The proxy runs as a StatefulSet so each replica has a stable name; the replicas share the stick
table through a ``peers`` section, keyed by the server's address (``srvkey addr``, HAProxy 2.7+),
because each replica discovers the pods (``server-template`` over a headless Service) in its own
order. HAProxy resolves peer names once, at start-up: the peers' headless Service publishes
not-ready addresses and the pods start in parallel, so a replica that starts before its peers
have addresses restarts until they do. Sources: HAProxy configuration manual, sections "stick store-response", "peers",
"server-template" and "stick-table" (https://docs.haproxy.org/3.0/configuration.html).
"""

from __future__ import annotations

PEER_PORT = 10000
SERVE_PORT = 8080
HEALTH_PORT = 8404
PROXY_IMAGE = "docker.io/library/haproxy:3.0"
"""HAProxy 3.0 LTS (``srvkey`` needs 2.7 or later); the Debian 2.6 the conformance run uses reads
the same configuration without ``srvkey`` (one proxy there, nothing to share)."""


def peer_names(name: str, replicas: int) -> list[str]:
    """The StatefulSet's pod names: HAProxy takes its local peer name from the host name."""
    return [f"{name}-{index}" for index in range(replicas)]


def haproxy_config(*, name: str, namespace: str, pods_service: str, peers_service: str, replicas: int,
                   header: str, port: int, max_servers: int, timeout_seconds: int,
                   session_ttl_seconds: int = 86400, srvkey: bool = True) -> str:
    """The proxy's ``haproxy.cfg``.

    - ``name``: the StatefulSet (peers ``{name}-0`` ...); ``peers_service`` its headless Service.
    - ``pods_service``: a headless Service of the MCP pods on ``port``; up to ``max_servers`` pods.
    - ``header``: the session header learned from responses (``Mcp-Session-Id``).
    - ``timeout_seconds``: the longest a request or stream lives (client, server and tunnel timeouts).
    - ``session_ttl_seconds``: how long an idle session stays pinned.
    - ``srvkey``: key pins by server address so peers agree (False for HAProxy 2.6).
    """
    domain = f"{namespace}.svc.cluster.local"
    peers = "\n".join(f"  peer {peer} {peer}.{peers_service}.{domain}:{PEER_PORT}" for peer in peer_names(name, replicas))
    key = " srvkey addr" if srvkey else ""
    return f"""global
  log stdout format raw local0 info
  maxconn 20000

defaults
  mode http
  log global
  option httplog
  timeout connect 5s
  timeout client {timeout_seconds}s
  timeout server {timeout_seconds}s
  timeout tunnel {timeout_seconds}s

resolvers kubedns
  parse-resolv-conf
  hold valid 5s

peers pinning
{peers}

frontend health
  bind :{HEALTH_PORT}
  monitor-uri /healthz

frontend mcp
  bind :{SERVE_PORT}
  default_backend replicas

backend replicas
  balance roundrobin
  stick-table type string len 128 size 1m expire {session_ttl_seconds}s{key} peers pinning
  stick store-response res.hdr({header})
  stick on req.hdr({header})
  server-template mcp 1-{max_servers} {pods_service}.{domain}:{port} check resolvers kubedns init-addr none
"""
