"""The MCP server apps under test, one ASGI app per server mode.

Every app answers two tools: ``whoami`` (returns the replica's name) and ``notify`` (publishes
``notifications/tools/list_changed`` to the app's subscription bus, then returns the name), and
every HTTP response carries an ``X-Replica`` header naming the replica that served it, so the
driver can tell where a session or stream landed.

Modes (https://modelcontextprotocol.io/specification/2025-11-25/basic/transports):

- ``sdk-in-memory``: ``MCPServer(...).streamable_http_app()``, the official SDK's default:
  legacy sessions held in the replica's memory (``mcp/server/streamable_http_manager.py``);
  the same app answers 2026-07-28 requests statelessly.
- ``sdk-stateless``: the same with ``stateless_http=True``.
- ``fastmcp`` / ``fastmcp-stateless``: FastMCP's ``http_app()``, stateful by default (sessions
  in the SDK's session manager, in memory) or with ``stateless_http=True``.
- ``litestar``: litestar-mcp 0.16 (2026-07-28 only, ``litestar_mcp/mcp/routes.py``) whose
  ``SubscriptionManager`` fans notifications out through a Redis-backed Litestar channels
  broker (``litestar_mcp/core/sse.py``).
"""

from typing import Any

# No ``from __future__ import annotations`` here: the SDK and Litestar read the tools'
# annotations at registration, and each app imports only its own framework (a replica of one
# framework need not pay the other's import time).

REPLICA_HEADER = b"x-replica"
HEALTH_PATH = "/healthz"
"""The health path every replica answers 200 on (the planned ``healthPath`` default)."""
PYTHON_APPS = ("sdk-in-memory", "sdk-stateless", "fastmcp", "fastmcp-stateless", "litestar")
"""Apps served by this module; ``ts`` and ``ts-stateless`` are ``tools/conformance/ts/server.mjs``."""


class ReplicaHeader:
    """ASGI middleware adding ``X-Replica: <name>`` to every HTTP response of ``app``."""

    def __init__(self, app: Any, name: str) -> None:
        self.app, self.name = app, name.encode()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["path"] == HEALTH_PATH:  # what the planned probes and the pinning proxy's checks ask
            await send({"type": "http.response.start", "status": 200, "headers": [(REPLICA_HEADER, self.name)]})
            return await send({"type": "http.response.body", "body": b"ok"})

        async def tagged(message: dict) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (REPLICA_HEADER, self.name)]
            await send(message)

        await self.app(scope, receive, tagged)


def sdk_app(name: str, *, stateless: bool) -> Any:
    """The official SDK server (``mcp==2.3.0``); sessions in memory unless ``stateless``."""
    from mcp.server.mcpserver import Context, MCPServer

    server = MCPServer("conformance")

    @server.tool()
    def whoami() -> str:
        return name

    @server.tool()
    async def notify(ctx: Context) -> str:
        await ctx.notify_tools_changed()
        return name

    app = server.streamable_http_app(stateless_http=stateless, session_idle_timeout=120.0)
    return ReplicaHeader(app, name)


def fastmcp_app(name: str, *, stateless: bool) -> Any:
    """A FastMCP server (pinned in ``tools/conformance/pyproject.toml``): stateful by default
    (``stateless_http: bool = False``, ``fastmcp/settings.py``), or ``stateless_http=True``."""
    from fastmcp import FastMCP

    server = FastMCP("conformance")

    @server.tool
    def whoami() -> str:
        return name

    return ReplicaHeader(server.http_app(path="/mcp", stateless_http=stateless), name)


def litestar_app(name: str, *, redis_url: str) -> Any:
    """A litestar-mcp 0.16 app whose subscriptions fan out through Redis pub/sub."""
    from litestar import Litestar, get
    from litestar.channels import ChannelsPlugin
    from litestar.channels.backends.redis import RedisChannelsPubSubBackend
    from litestar_mcp import LitestarMCP, MCPConfig
    from redis.asyncio import Redis

    channels = ChannelsPlugin(
        backend=RedisChannelsPubSubBackend(redis=Redis.from_url(redis_url)),
        arbitrary_channels_allowed=True,
    )
    plugin = LitestarMCP(MCPConfig(subscription_channels=channels, subscription_keepalive_seconds=5.0))

    @get("/whoami", mcp_tool="whoami", sync_to_thread=False)
    def whoami() -> str:
        return name

    @get("/notify", mcp_tool="notify")
    async def notify() -> str:
        await plugin.registry.notify_tools_list_changed()
        return name

    app = Litestar(route_handlers=[whoami, notify], plugins=[channels, plugin])
    return ReplicaHeader(app, name)


def build(mode: str, name: str, redis_url: str | None = None) -> Any:
    """The ASGI app for ``mode`` (one of :data:`PYTHON_APPS`)."""
    if mode == "litestar":
        if not redis_url:
            raise ValueError("litestar mode needs --redis-url")
        return litestar_app(name, redis_url=redis_url)
    if mode in ("sdk-in-memory", "sdk-stateless"):
        return sdk_app(name, stateless=mode == "sdk-stateless")
    if mode in ("fastmcp", "fastmcp-stateless"):
        return fastmcp_app(name, stateless=mode == "fastmcp-stateless")
    raise ValueError(f"unknown server mode {mode!r}")


def main(argv: list[str] | None = None) -> None:
    """Serve one replica: ``python apps.py --mode M --port P --name N [--redis-url U]``.

    Run as a script by path (not ``-m``) so a replica does not import ``mcp_affinity`` and
    its Pulumi dependencies: each replica starts in about a second.
    """
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--mode", required=True, choices=PYTHON_APPS)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--redis-url")
    args = parser.parse_args(argv)
    app = build(args.mode, args.name, args.redis_url)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", lifespan="on")


if __name__ == "__main__":
    main()
