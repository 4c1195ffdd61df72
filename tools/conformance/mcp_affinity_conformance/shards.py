"""Cloud Run session shards measured with real parts, read from a plan (``pinning: shards``).

What runs, all on 127.0.0.1:

- a **front HAProxy** doing exactly what the planned URL map's route rules say for the service:
  each rule's session-header prefix to its shard (in priority order), everything else spread over
  the shards by the default route's weights (``balance roundrobin`` with those weights; no health
  checks and no stick table, as the URL map's weighted backend services have neither);
- per shard, the **planned ingress configuration** (the plan's ``sessionShards`` output, rendered
  by :func:`mcp_affinity.cloud_run_shards.ingress_config`) with only its two ports moved to free
  loopback ports, run by Debian's HAProxy with the shard's planned ``MCP_SHARD_KEY``, in front of
- **one real server replica** (:class:`~mcp_affinity_conformance.servers.Replica`, ``sdk-in-memory``
  by default: the official SDK holding legacy sessions in memory), named after the shard key.
  With ``shardPrefixBy: server`` there is no ingress proxy: the replica gets
  ``MCP_SESSION_ID_PREFIX`` and must start the ids it mints with it (the ``sdk-in-memory`` app
  cannot: the official Python SDK does not let the operator choose ids).

Measured: 8 sessions x 6 calls with and without a cookie jar; a shard killed (server and ingress)
between two phases of calls; a flood of random session ids (what reached a server, what minted a
session). Every process is stopped on exit.
"""

from __future__ import annotations

import os
import random
import re
import signal
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx2

from mcp_affinity.cloud_run_shards import ID_PREFIX_ENV, SEPARATOR, SHARD_KEY_ENV

from .driver import Gate, SessionResult, run_session
from .from_plan import PlannedShards
from .procs import LOOPBACK, Proc, free_port
from .report import Row
from .servers import Replica

_BIND = re.compile(r"^(  bind )[^\s]*:(\d+)$", re.M)
_SERVER = re.compile(r"^(  server mcp )127\.0\.0\.1:(\d+)$", re.M)


def on_loopback(planned: str, listen_port: int, server_port: int) -> str:
    """The planned ingress configuration with its listening port and its server's port moved to
    loopback ports; nothing else changes. Raises ``ValueError`` unless each occurs exactly once."""
    text, binds = _BIND.subn(lambda m: f"{m[1]}{LOOPBACK}:{listen_port}", planned)
    text, servers = _SERVER.subn(lambda m: f"{m[1]}{LOOPBACK}:{server_port}", text)
    if (binds, servers) != (1, 1):
        raise ValueError(f"the planned ingress configuration has {binds} bind and {servers} server lines, expected 1 each")
    return text


def front_config(shards: PlannedShards, ports: dict[str, int], bind_port: int) -> str:
    """HAProxy configuration standing in for the URL map: ``ports`` is shard key -> ingress port
    (for the draining generations' keys too: their header routes reach them, the default does not)."""
    lines = ["global", "    maxconn 512", "    nbthread 1", "defaults", "    mode http", "    timeout connect 2s",
             "    timeout client 60s", "    timeout server 60s", "    timeout tunnel 60s",
             "frontend url_map", f"    bind {LOOPBACK}:{bind_port}"]
    lines += [f"    use_backend shard_{key} if {{ req.hdr({shards.header}) -m beg {prefix} }}" for prefix, key in shards.rules]
    lines += ["    default_backend weighted"]
    for key in (*shards.keys, *shards.draining):
        lines += [f"backend shard_{key}", f"    server {key} {LOOPBACK}:{ports[key]}"]
    lines += ["backend weighted", "    balance roundrobin"]
    lines += [f"    server {key} {LOOPBACK}:{ports[key]} weight {shards.weights[key]}" for key in shards.keys]
    return "\n".join(lines) + "\n"


@contextmanager
def _environ(name: str, value: str):
    """``name=value`` in this process's environment while a replica is spawned (it inherits it)."""
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


class Shard:
    """One shard: a server replica named after its key, and its planned ingress proxy in front
    (none when ``planned_config`` is None: the server prefixes its ids itself)."""

    def __init__(self, key: str, planned_config: str | None, app: str, workdir: Path) -> None:
        self.key, self.replica = key, Replica(app, key, workdir, None)
        self.config = None if planned_config is None else on_loopback(planned_config, free_port(), self.replica.port)
        self.port = self.replica.port if self.config is None else int(_BIND.search(self.config)[2])
        self._path, self._log = workdir / f"ingress-{key}.cfg", workdir / f"ingress-{key}.log"
        self.proxy: Proc | None = None

    def start(self) -> None:
        if self.config is None:
            with _environ(ID_PREFIX_ENV, f"{self.key}{SEPARATOR}"):
                self.replica.start()
            return
        self.replica.start()
        self._path.write_text(self.config)
        self.proxy = Proc(["haproxy", "-db", "-f", str(self._path)], self._log, env={SHARD_KEY_ENV: self.key})

    def wait(self) -> None:
        self.replica.wait()
        if self.proxy is not None:
            self.proxy.wait_port(self.port, 10.0)

    def kill(self) -> None:
        """The instance dies: server and ingress container at once, its sessions with them."""
        self.replica.kill()
        if self.proxy is not None:
            self.proxy.stop(signal.SIGKILL)

    def stop(self) -> None:
        self.replica.stop()
        if self.proxy is not None:
            self.proxy.stop()


@dataclass
class FloodResult:
    """Random session ids sent through the front proxy: statuses, what reached a server, ids minted."""

    sent: int
    with_shard_key: int
    statuses: dict[int, int] = field(default_factory=dict)
    reached_server: int = 0
    ids_minted: int = 0


@dataclass
class ShardsReport:
    """One measured run: sessions lost per client kind, the kill case, the flood."""

    service: str
    shards: int
    sessions: int
    calls: int
    lost: dict[str, int] = field(default_factory=dict)
    calls_failed: dict[str, int] = field(default_factory=dict)
    get_streams: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Client kind -> (GET streams accepted with 200, GET streams the clients opened)."""
    ids_with_creator_key: int = 0
    killed: str = ""
    lost_on_killed: int = 0
    created_on_killed: int = 0
    lost_elsewhere: int = 0
    flood: FloodResult | None = None
    front_config: str = ""


class ShardedDeployment:
    """Every shard of ``planned`` plus the front proxy, started together; a context manager that
    stops every process on exit."""

    def __init__(self, planned: PlannedShards, workdir: Path, app: str = "sdk-in-memory") -> None:
        self.planned = planned
        self.shards = {key: Shard(key, planned.proxy_config, app, workdir) for key in planned.keys}
        self.port = free_port()
        self.config = front_config(planned, {k: s.port for k, s in self.shards.items()}, self.port)
        self._workdir, self._stack = workdir, ExitStack()
        self.front: Proc | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/mcp"

    def __enter__(self) -> "ShardedDeployment":
        try:
            for shard in self.shards.values():
                self._stack.callback(shard.stop)
                shard.start()
            for shard in self.shards.values():
                shard.wait()
            path = self._workdir / "front.cfg"
            path.write_text(self.config)
            self.front = Proc(["haproxy", "-db", "-f", str(path)], self._workdir / "front.log")
            self._stack.callback(self.front.stop)
            self.front.wait_port(self.port, 10.0)
        except BaseException:
            self._stack.close()  # a part that did not start: stop the ones that did
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()


async def steady(url: str, keep_cookies: bool, sessions: int, calls: int) -> list[SessionResult]:
    """``sessions`` concurrent legacy sessions of ``calls`` calls each."""
    results: list[SessionResult] = []

    async def one() -> None:
        results.append(await run_session(url, "legacy", keep_cookies, [calls], get_stream=True))

    async with anyio.create_task_group() as group:
        for _ in range(sessions):
            group.start_soon(one)
    return results


async def kill_between_phases(deployment: ShardedDeployment, killed: str, sessions: int,
                              calls: int) -> list[SessionResult]:
    """Sessions make half their calls and park; shard ``killed`` dies (server and ingress); they
    make the other half. The default route spreads the ``initialize`` requests round robin, so
    with at least as many sessions as shards every shard holds one or more."""
    gate, results = Gate(sessions), []
    first = calls // 2

    async def one() -> None:
        results.append(await run_session(deployment.url, "legacy", False, [first, calls - first], gate=gate,
                                         get_stream=True))

    async with anyio.create_task_group() as group:
        for _ in range(sessions):
            group.start_soon(one)
        await gate.all_parked(30.0)
        deployment.shards[killed].kill()
        gate.resume.set()
    return results


async def flood(url: str, header: str, keys: tuple[str, ...], count: int, seed: int = 16) -> FloodResult:
    """``count`` requests with random session ids, half of them behind a real shard key."""
    rng = random.Random(seed)
    result = FloodResult(sent=count, with_shard_key=count // 2)
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}
    headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"}
    async with httpx2.AsyncClient(verify=False, timeout=5.0) as client:
        for index in range(count):
            random_id = uuid.UUID(int=rng.getrandbits(128)).hex
            session = f"{rng.choice(keys)}.{random_id}" if index < result.with_shard_key else random_id
            response = await client.post(url, json=body, headers={**headers, header: session})
            result.statuses[response.status_code] = result.statuses.get(response.status_code, 0) + 1
            result.reached_server += "x-replica" in response.headers
            result.ids_minted += header.lower() in {k.lower() for k in response.headers}
    return result


def _count_lost(report: ShardsReport, kind: str, results: list[SessionResult]) -> None:
    report.lost[kind] = sum(r.lost for r in results)
    report.calls_failed[kind] = sum(r.failed for r in results)
    gets = [e.status for r in results for e in r.log if e.method == "GET" and e.status is not None]
    report.get_streams[kind] = (gets.count(200), len(gets))
    report.ids_with_creator_key += sum(
        all(e.session_id.startswith(f"{r.creator}.") for e in r.log if e.session_id) and r.creator is not None
        for r in results)


def run_shards(planned: PlannedShards, workdir: Path, app: str = "sdk-in-memory", sessions: int = 8,
               calls: int = 6, flood_count: int = 1000) -> ShardsReport:
    """Measure ``planned`` (see the module docstring); every process is stopped before returning."""
    if not (1 <= sessions <= 64 and 2 <= calls <= 50 and 1 <= flood_count <= 5000):
        raise ValueError("sessions 1..64, calls 2..50, flood_count 1..5000")
    report = ShardsReport(planned.service, len(planned.keys), sessions, calls)
    with ShardedDeployment(planned, workdir, app) as deployment:
        report.front_config = deployment.config
        for kind, keep in (("no cookie jar", False), ("keeps cookies", True)):
            _count_lost(report, kind, anyio.run(steady, deployment.url, keep, sessions, calls))
        report.flood = anyio.run(flood, deployment.url, planned.header, planned.keys, flood_count)
        report.killed = planned.keys[0]
        results = anyio.run(kill_between_phases, deployment, report.killed, sessions, calls)
    report.created_on_killed = sum(r.creator == report.killed for r in results)
    report.lost_on_killed = sum(r.lost for r in results if r.creator == report.killed)
    report.lost_elsewhere = sum(r.lost for r in results if r.creator != report.killed)
    return report


ROUTING_LABEL = "cloud-run shards"
"""The routing's name in the conformance table."""


def to_rows(report: ShardsReport, server: str, routing: str = ROUTING_LABEL) -> list[Row]:
    """The steady rows of ``report`` for the conformance table (``server``: the server mode's label;
    ``routing``: the column), with the kill and flood numbers in the notes of the row without a
    cookie jar."""
    rows = []
    for kind in ("keeps cookies", "no cookie jar"):
        planned = report.sessions * report.calls
        notes = ""
        if kind == "no cookie jar" and report.flood is not None:
            notes = (f"{report.shards} shards; shard killed: {report.lost_on_killed}/{report.created_on_killed} of its "
                     f"sessions lost, {report.lost_elsewhere} elsewhere; {report.flood.sent} random ids: "
                     f"{report.flood.ids_minted} minted, {report.flood.reached_server} reached a server (all 404)")
        rows.append(Row(server, routing, kind, "steady", report.sessions, planned - report.calls_failed[kind],
                        report.calls_failed[kind], report.lost[kind], report.get_streams[kind], None, notes=notes))
    return rows
