"""The official ``mcp`` client driving sessions, tool calls, streams and subscriptions.

Every HTTP exchange goes through an ``httpx2.AsyncClient`` (the SDK's HTTP library, handed to
``streamable_http_client(url, http_client=...)``, ``mcp/client/streamable_http.py``) whose
response hook records method, status, the serving replica (``X-Replica``) and
``Mcp-Session-Id``. A client "keeps cookies" with httpx2's default jar, or keeps none with a
jar whose policy accepts no domain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from .proxy import PROXY_HEADER

CLIENT_KINDS = ("keeps cookies", "no cookie jar")
"""Client kinds, in table order (the official SDK's HTTP client keeps cookies within a session,
``mcp/client/streamable_http.py``; clients without a cookie jar lose them)."""


@dataclass(frozen=True)
class Exchange:
    """One HTTP exchange seen by a client: ``status`` is None for a request sent and not (yet)
    answered; ``proxy`` names the pinning proxy that served it (``X-Pinning-Proxy``), if any."""

    method: str
    status: int | None
    replica: str | None
    session_id: str | None
    proxy: str | None = None


def http_client(keep_cookies: bool, log: list[Exchange], timeout: float) -> httpx2.AsyncClient:
    """An httpx2 client that records every request sent and every response in ``log``;
    ``timeout`` in seconds.

    Plain HTTP to 127.0.0.1 only, so no TLS context is built (``verify=False``): loading the CA
    bundle costs about 0.1 s of CPU per client, most of a run's time on 2 cores.
    """

    async def sent(request: httpx2.Request) -> None:
        log.append(Exchange(request.method, None, None, request.headers.get("mcp-session-id")))

    async def record(response: httpx2.Response) -> None:
        headers = response.headers
        log.append(Exchange(response.request.method, response.status_code, headers.get("x-replica"),
                            headers.get("mcp-session-id"), headers.get(PROXY_HEADER)))

    jar = None if keep_cookies else CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
    return httpx2.AsyncClient(cookies=jar, event_hooks={"request": [sent], "response": [record]}, verify=False,
                              timeout=httpx2.Timeout(timeout, read=max(timeout, 30.0)))


class Gate:
    """A barrier between phases of concurrent sessions: sessions ``park``; a failed one ``leaves``."""

    def __init__(self, parties: int) -> None:
        self.parties, self.parked, self.left = parties, 0, 0
        self.resume = anyio.Event()

    async def park(self) -> None:
        """Wait here until the orchestrator calls ``resume.set()``."""
        self.parked += 1
        await self.resume.wait()

    def leave(self) -> None:
        """A session that ended early will not park."""
        self.left += 1

    async def all_parked(self, timeout: float) -> None:
        """Wait until every session parked or left; ``timeout`` in seconds."""
        with anyio.fail_after(timeout):
            while self.parked + self.left < self.parties:
                await anyio.sleep(0.02)


@dataclass
class SessionResult:
    """What one client session saw: calls ok/failed, the replica that created it, GET streams."""

    planned: int
    ok: int = 0
    failed: int = 0
    creator: str | None = None
    error: str | None = None
    log: list[Exchange] = field(default_factory=list)

    @property
    def lost(self) -> bool:
        """A session is lost when any of its calls failed."""
        return self.failed > 0

    @property
    def get_stream_ok(self) -> bool:
        """The client's GET/SSE stream was accepted (200) by the replica holding the session."""
        return any(e.method == "GET" and e.status == 200 for e in self.log)

    @property
    def get_answered(self) -> bool:
        """The client's GET/SSE stream got an answer, whatever its status."""
        return any(e.method == "GET" and e.status is not None for e in self.log)

    @property
    def proxies(self) -> set[str]:
        """The pinning proxies that served this session's requests."""
        return {e.proxy for e in self.log if e.proxy}


async def run_session(url: str, mode: str, keep_cookies: bool, phases: Sequence[int],
                      gate: Gate | None = None, timeout: float = 20.0, get_stream: bool = False) -> SessionResult:
    """One ``mcp.Client`` session: ``phases[0]`` ``whoami`` calls, then (with a ``gate``) park
    once and make ``phases[1]`` more. Bounded by ``timeout`` seconds; calls not made count as
    failed.

    With ``get_stream`` (a legacy stateful server), the session stays open after its calls until
    its GET/SSE stream is answered: the client opens that stream in the background
    (``mcp/client/streamable_http.py``, after ``notifications/initialized``), and on a busy
    machine six quick calls can end before it, which would count a stream never answered as one
    refused."""
    if gate is not None and len(phases) != 2:
        raise ValueError("a gated session has exactly two phases")
    result = SessionResult(planned=sum(phases))
    parked = False
    try:
        with anyio.move_on_after(timeout):
            async with http_client(keep_cookies, result.log, 5.0) as http:
                client = Client(streamable_http_client(url, http_client=http), mode=mode, read_timeout_seconds=5.0)
                async with client:
                    result.creator = _creator(result.log)
                    for index, count in enumerate(phases):
                        if index and gate is not None:
                            await gate.park()
                            parked = True
                        await _calls(client, count, result)
                    if get_stream:
                        await _stream_answered(result)
    except Exception as exc:  # a failed initialize or a broken transport: the session is lost
        result.error = f"{type(exc).__name__}: {exc}"[:200]
    finally:
        if gate is not None and not parked:
            gate.leave()
    result.failed = result.planned - result.ok
    return result


async def _calls(client: Client, count: int, result: SessionResult) -> None:
    for _ in range(count):
        try:
            reply = await client.call_tool("whoami", {})
            result.ok += 0 if reply.is_error else 1
        except Exception as exc:  # HTTP 404 for an unknown session arrives as MCPError
            result.error = result.error or f"{type(exc).__name__}: {exc}"[:200]


async def _stream_answered(result: SessionResult, timeout: float = 10.0) -> None:
    """Wait (at most ``timeout`` seconds) for the session's GET stream to be answered."""
    with anyio.move_on_after(timeout):
        while not result.get_answered:
            await anyio.sleep(0.02)


def _creator(log: list[Exchange]) -> str | None:
    """The replica that minted the session id (first response carrying ``Mcp-Session-Id``)."""
    return next((e.replica for e in log if e.session_id and e.status is not None), None)


@dataclass(frozen=True)
class ListenResult:
    """A ``subscriptions/listen`` check: listener's replica, notifier's replica, delivered?"""

    listener: str | None
    notifier: str | None
    delivered: bool
    error: str | None = None


async def check_listen(url: str, replicas: Sequence[tuple[str, str]], keep_cookies: bool,
                       wait: float = 1.5) -> ListenResult:
    """Hold a ``subscriptions/listen`` stream through ``url`` (the proxy), call ``notify`` on a
    *different* replica directly (``replicas``: (name, url)), and wait ``wait`` seconds for
    ``notifications/tools/list_changed`` to arrive (``mcp/client/subscriptions.py``)."""
    log: list[Exchange] = []
    listener = notifier = None
    try:
        with anyio.fail_after(wait + 10.0):
            async with http_client(keep_cookies, log, 5.0) as http, \
                    Client(streamable_http_client(url, http_client=http), read_timeout_seconds=5.0) as client:
                async with client.listen(tools_list_changed=True) as subscription:
                    listener = next((e.replica for e in reversed(log) if e.method == "POST" and e.replica), None)
                    notifier, notifier_url = next((n, u) for n, u in replicas if n != listener)
                    async with http_client(False, [], 5.0) as direct, \
                            Client(streamable_http_client(notifier_url, http_client=direct)) as other:
                        await other.call_tool("notify", {})
                    return ListenResult(listener, notifier, await _first_event(subscription, wait))
    except Exception as exc:
        return ListenResult(listener, notifier, False, f"{type(exc).__name__}: {exc}"[:200])


async def _first_event(subscription, wait: float) -> bool:  # noqa: ANN001 - mcp.client.subscriptions.Subscription
    with anyio.move_on_after(wait):
        async for _event in subscription:
            return True
    return False
