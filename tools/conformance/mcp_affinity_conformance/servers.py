"""Server modes under test and their replicas, each replica a separate process on 127.0.0.1."""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from .procs import LOOPBACK, Proc, free_port

_APPS = Path(__file__).with_name("apps.py")


@dataclass(frozen=True)
class ServerMode:
    """One server x client-protocol combination.

    ``app`` names the replica app (see ``apps.py``); ``client_mode`` is the ``mode=`` given to
    ``mcp.Client`` (``mcp/client/client.py``: ``"legacy"`` forces the initialize handshake,
    ``"auto"``, the default, probes ``server/discover`` and speaks 2026-07-28 when offered).
    ``holds_sessions``: the replica keeps legacy sessions in memory; ``get_stream``: the client
    opens a GET/SSE stream (legacy stateful only, ``mcp/client/streamable_http.py``);
    ``listen``: the mode offers ``subscriptions/listen`` (2026-07-28).
    """

    key: str
    label: str
    app: str
    client_mode: str
    holds_sessions: bool
    get_stream: bool
    listen: bool


SERVER_MODES: tuple[ServerMode, ...] = (
    ServerMode("sdk-in-memory", "mcp 2.3, legacy, in-memory sessions", "sdk-in-memory", "legacy", True, True, False),
    ServerMode("sdk-stateless", "mcp 2.3, legacy, stateless_http=True", "sdk-stateless", "legacy", False, False, False),
    ServerMode("sdk-2026", "mcp 2.3, 2026-07-28 (client default)", "sdk-in-memory", "auto", False, False, True),
    ServerMode("fastmcp-in-memory", "FastMCP 4.2.3, default (in-memory sessions)", "fastmcp", "legacy", True, True, False),
    ServerMode("fastmcp-stateless", "FastMCP 4.2.3, stateless_http=True", "fastmcp-stateless", "legacy", False, False, False),
    ServerMode("ts-in-memory", "TypeScript SDK 1.32.2, sessionIdGenerator: randomUUID", "ts", "legacy", True, True, False),
    ServerMode("ts-stateless", "TypeScript SDK 1.32.2, sessionIdGenerator: undefined", "ts-stateless", "legacy", False, False, False),
    ServerMode("litestar-2026", "litestar-mcp 0.16, 2026-07-28, Redis broker", "litestar", "auto", False, False, True),
)
"""Sources: the MCP transport specification (modelcontextprotocol.io/specification/2025-11-25/basic/transports);
``mcp/server/streamable_http_manager.py`` (sessions in ``_server_instances``, a per-process dict);
``fastmcp/settings.py`` (``stateless_http: bool = False``); the TypeScript SDK's
``StreamableHTTPServerTransport`` (``sessionIdGenerator``); ``litestar_mcp/core/sse.py`` (broker
fan-out). The TypeScript SDK's newest protocol is 2025-11-25, so its client speaks legacy."""
TS_SERVER = Path(__file__).resolve().parents[1] / "ts" / "server.mjs"
"""The TypeScript replicas (``npm ci --prefix tools/conformance/ts`` installs the SDK beside it)."""


class Replica:
    """One server process of ``app`` named ``name`` on a fixed free loopback port."""

    def __init__(self, app: str, name: str, workdir: Path, redis_url: str | None) -> None:
        self.app, self.name, self.workdir, self.redis_url = app, name, workdir, redis_url
        self.port = free_port()
        self.proc: Proc | None = None

    @property
    def url(self) -> str:
        """The replica's own MCP endpoint (bypassing any proxy)."""
        return f"http://{LOOPBACK}:{self.port}/mcp"

    def start(self) -> None:
        """Spawn the process (returns at once; see :meth:`wait`)."""
        if self.app.startswith("ts"):
            argv = ["node", str(TS_SERVER), "--port", str(self.port), "--name", self.name]
            argv += ["--stateless"] if self.app == "ts-stateless" else []
        else:
            argv = [sys.executable, str(_APPS), "--mode", self.app, "--port", str(self.port), "--name", self.name]
        if self.redis_url:
            argv += ["--redis-url", self.redis_url]
        self.proc = Proc(argv, self.workdir / f"{self.app}-{self.name}.log")

    def wait(self, timeout: float = 30.0) -> None:
        """Block until the replica listens; ``timeout`` in seconds."""
        assert self.proc is not None
        self.proc.wait_port(self.port, timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash or an evicted pod would: its in-memory sessions are gone."""
        if self.proc is not None:
            self.proc.stop(signal.SIGKILL)

    def stop(self) -> None:
        """Graceful stop."""
        if self.proc is not None:
            self.proc.stop()


class ReplicaSet:
    """``count`` replicas of ``app`` (names ``r0``, ``r1``, ...), started together."""

    def __init__(self, app: str, count: int, workdir: Path, redis_url: str | None = None) -> None:
        self.replicas = [Replica(app, f"r{i}", workdir, redis_url) for i in range(count)]

    def start(self, timeout: float = 30.0) -> None:
        """Start all replicas in parallel and wait for each; ``timeout`` in seconds."""
        for replica in self.replicas:
            replica.start()
        for replica in self.replicas:
            replica.wait(timeout)

    @property
    def servers(self) -> list[tuple[str, int]]:
        """(name, port) of each replica, for the proxy config."""
        return [(r.name, r.port) for r in self.replicas]

    def stop(self) -> None:
        """Stop every replica."""
        for replica in self.replicas:
            replica.stop()
