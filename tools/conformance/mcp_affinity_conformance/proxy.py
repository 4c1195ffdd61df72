"""What routing sits in front of the replicas (:class:`Routing`), and the HAProxy 2.6 config for it.

:class:`Routing` is the single input of proxy generation: whatever a Pulumi plan says (an Istio
DestinationRule's ``consistentHash.httpHeaderName``, an ``istio.io/persistent-session`` cookie,
an HAProxy stick table, Cloud Run's affinity cookie) is mapped onto one elsewhere, then
:func:`haproxy_config` renders it. The proxy stands in for the plan's load balancer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .procs import LOOPBACK, Proc, free_port

RoutingKind = Literal["round-robin", "header-hash", "cookie", "learned", "single"]
ROUTING_KINDS: tuple[RoutingKind, ...] = ("round-robin", "header-hash", "cookie", "learned", "single")
from mcp_affinity.affinity import DEFAULT_COOKIE, DEFAULT_SESSION_HEADER as DEFAULT_HEADER  # noqa: E402
_TOKEN = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
"""RFC 9110 token: the characters allowed in a header or cookie name."""


@dataclass(frozen=True)
class Routing:
    """How the proxy picks a replica for each request.

    - ``round-robin``: every request to the next replica.
    - ``header-hash``: ``balance hdr(<header>)`` with ``hash-type consistent`` (what an Istio
      DestinationRule ``consistentHash.httpHeaderName`` does); requests without the header,
      such as ``initialize``, fall back to round robin.
    - ``cookie``: the proxy inserts ``<cookie>`` naming the replica (Istio persistent session,
      Cloud Run session affinity); only clients that keep cookies send it back.
    - ``learned``: a stick table learns ``<header>`` from each response and routes later
      requests that carry it to that replica (``stick store-response res.hdr(...)`` +
      ``stick on req.hdr(...)``); proxy replicas share the table through ``peers``.
    - ``single``: one replica only (a service capped at one instance).

    The behaviour each kind is measured against: the repository's ``tests/e2e/conformance-table.md``.
    """

    kind: RoutingKind
    header: str = DEFAULT_HEADER
    cookie: str = DEFAULT_COOKIE

    def __post_init__(self) -> None:
        if self.kind not in ROUTING_KINDS:
            raise ValueError(f"Routing.kind must be one of {ROUTING_KINDS}, got {self.kind!r}")
        for what, value in (("header", self.header), ("cookie", self.cookie)):
            if not _TOKEN.match(value):
                raise ValueError(f"Routing.{what} must be an HTTP token, got {value!r}")

    @property
    def label(self) -> str:
        """Short name for tables: the kind, plus the header or cookie when not the default."""
        if self.kind in ("header-hash", "learned") and self.header != DEFAULT_HEADER:
            return f"{self.kind} ({self.header})"
        if self.kind == "cookie" and self.cookie != DEFAULT_COOKIE:
            return f"cookie ({self.cookie})"
        return self.kind


@dataclass(frozen=True)
class Peer:
    """One HAProxy replica in a ``peers`` section: its name and its peer port on 127.0.0.1."""

    name: str
    port: int


def haproxy_config(
    routing: Routing,
    servers: Sequence[tuple[str, int]],
    bind_port: int,
    peers: Sequence[Peer] = (),
    check_interval_ms: int = 200,
) -> str:
    """HAProxy 2.6 configuration text for ``routing`` in front of ``servers`` (name, port).

    ``peers`` (first entry is this proxy) adds a ``peers`` section so several proxy replicas
    share the ``learned`` stick table; ignored for the other kinds. Replicas get TCP health
    checks every ``check_interval_ms`` milliseconds, so a killed one is taken out quickly and
    its pinned clients are redispatched (and find their session gone).
    """
    stick = routing.kind == "learned"
    lines = [
        "global",
        "    maxconn 512",
        "    nbthread 1",
        *([f"    localpeer {peers[0].name}"] if stick and peers else []),
        "defaults",
        "    mode http",
        "    timeout connect 2s",
        "    timeout client 60s",
        "    timeout server 60s",
        "    timeout tunnel 60s",
        "    retries 2",
        "    option redispatch 1",
        *(_peers_section(peers) if stick else []),
        "frontend mcp",
        f"    bind {LOOPBACK}:{bind_port}",
        "    default_backend replicas",
        "backend replicas",
        *_balance(routing, peers if stick else ()),
        *_servers(routing, servers, check_interval_ms),
    ]
    return "\n".join(lines) + "\n"


def _peers_section(peers: Sequence[Peer]) -> list[str]:
    if not peers:
        return []
    return ["peers mcp_sessions", *(f"    peer {p.name} {LOOPBACK}:{p.port}" for p in peers)]


def _balance(routing: Routing, peers: Sequence[Peer]) -> list[str]:
    if routing.kind == "header-hash":
        return [f"    balance hdr({routing.header})", "    hash-type consistent"]
    lines = ["    balance roundrobin"]
    if routing.kind == "cookie":
        lines.append(f"    cookie {routing.cookie} insert indirect nocache httponly")
    if routing.kind == "learned":
        table = "    stick-table type string len 128 size 100k expire 30m"
        lines += [
            table + (" peers mcp_sessions" if peers else ""),
            f"    stick store-response res.hdr({routing.header})",
            f"    stick on req.hdr({routing.header})",
        ]
    return lines


def _servers(routing: Routing, servers: Sequence[tuple[str, int]], check_ms: int) -> list[str]:
    chosen = servers[:1] if routing.kind == "single" else servers
    cookie = routing.kind == "cookie"
    return [
        f"    server {name} {LOOPBACK}:{port} check inter {check_ms} fall 1 rise 1"
        + (f" cookie {name}" if cookie else "")
        for name, port in chosen
    ]


class HAProxy:
    """Debian's ``haproxy`` (2.6) in the foreground on a free loopback port, for one :class:`Routing`."""

    def __init__(self, routing: Routing, servers: Sequence[tuple[str, int]], workdir: Path, tag: str) -> None:
        self.port = free_port()
        peers = [Peer("proxy-0", free_port())] if routing.kind == "learned" else []
        self.config = haproxy_config(routing, servers, self.port, peers)
        path = workdir / f"haproxy-{tag}.cfg"
        path.write_text(self.config)
        argv = ["haproxy", "-db", "-f", str(path)]
        self.proc = Proc(argv, workdir / f"haproxy-{tag}.log")
        self.proc.wait_port(self.port, 10.0)

    @property
    def url(self) -> str:
        """The MCP endpoint behind the proxy."""
        return f"http://{LOOPBACK}:{self.port}/mcp"

    def stop(self) -> None:
        """Stop the proxy."""
        self.proc.stop()
