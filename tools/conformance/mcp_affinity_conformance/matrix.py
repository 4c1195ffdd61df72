"""The conformance matrix: server modes x routings x client kinds, steady and under failures.

Failures: a replica killed and restarted (``KILL_CASES``); one of the learned-pinning proxies
restarted while sessions are open (``PROXY_RESTART_CASES``: its table must come back from its
peer); a flood of requests carrying random session ids through the pinning proxies
(``FLOOD_CASES``: no pin may be stored for an id no server minted).
"""

from __future__ import annotations

import asyncio

import logging
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import anyio
import httpx2

from .driver import CLIENT_KINDS, Gate, ListenResult, SessionResult, check_listen, run_session
from .procs import missing_binaries, redis_server
from .proxy import HAProxy, LearnedProxies, Routing
from .report import SCENARIOS, Row
from .servers import SERVER_MODES, ReplicaSet, ServerMode

IN_MEMORY_MODES = tuple(m.key for m in SERVER_MODES if m.holds_sessions)
KILL_CASES: tuple[tuple[str, str, str], ...] = (
    ("sdk-in-memory", "cookie", "keeps cookies"),
    *((mode, "learned", "no cookie jar") for mode in IN_MEMORY_MODES),
    ("sdk-stateless", "round-robin", "no cookie jar"),
    ("sdk-2026", "round-robin", "no cookie jar"),
    ("litestar-2026", "round-robin", "no cookie jar"),
)
"""(server mode key, routing kind, client kind) that also run the kill + restart scenario: each
mode under a routing that keeps its sessions, so any loss is the kill's."""
PROXY_RESTART_CASES: tuple[tuple[str, str, str], ...] = tuple(
    (mode, "learned", "no cookie jar") for mode in IN_MEMORY_MODES)
"""Cases that also restart one pinning proxy between a session's calls."""
FLOOD_CASES: dict[str, int] = {mode: 10_000 if mode == "sdk-in-memory" else 1_000 for mode in IN_MEMORY_MODES}
"""Server mode -> requests with random session ids sent through its learned-pinning proxies
(10,000 for the official SDK; 1,000 show the other servers answer such ids without the header)."""
HEALTH_SETTLE = 0.7
"""Seconds for the stand-in proxies' 200 ms health checks to see a replica or proxy go or come back."""
@dataclass(frozen=True)
class Budget:
    """Counts and wall-clock limits (seconds) of one run."""

    replicas: int = 3
    sessions: int = 8
    calls: int = 6
    session_timeout: float = 20.0
    listen_wait: float = 1.0
    deadline: float = 600.0

    def __post_init__(self) -> None:
        if not 2 <= self.replicas <= 8:
            raise ValueError("Budget.replicas must be 2..8 (a kill and a cross-replica listen need two)")
        if not (1 <= self.sessions <= 64 and 2 <= self.calls <= 50):
            raise ValueError("Budget.sessions must be 1..64 and Budget.calls 2..50")
        if not 0 < self.deadline <= 900 or self.session_timeout <= 0 or self.listen_wait <= 0:
            raise ValueError("Budget times must be positive, the deadline at most 900 s")



def run_matrix(routings: Sequence[Routing], modes: Sequence[ServerMode] = SERVER_MODES,
               clients: Sequence[str] = CLIENT_KINDS, budget: Budget = Budget(),
               kill_cases: Sequence[tuple[str, str, str]] = KILL_CASES,
               proxy_restart_cases: Sequence[tuple[str, str, str]] = PROXY_RESTART_CASES,
               flood_cases: dict[str, int] = FLOOD_CASES, workdir: Path | None = None) -> list[Row]:
    """Measure every mode x routing x client (steady), plus the failure rows of the cases given
    that the matrix contains. ``routings`` come from plans (:func:`.from_plan.routings_of`).

    Starts ``redis-server`` (for litestar-mcp), ``budget.replicas`` replicas per app and the
    proxies of each routing, all on 127.0.0.1 free ports, and stops them all before returning.
    Raises ``RuntimeError`` when a binary is missing and ``TimeoutError`` past ``budget.deadline``.
    Rows come back in a fixed order: modes, routings, clients, scenarios as given.
    """
    logging.getLogger("mcp.client.streamable_http").setLevel(logging.ERROR)  # expected 404s on DELETE
    if missing := missing_binaries():
        raise RuntimeError(f"missing {', '.join(missing)}: apt-get install -y redis-server haproxy")
    cases = Cases(frozenset(kill_cases), frozenset(proxy_restart_cases), dict(flood_cases))
    with ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mcp-conformance-")))
        previous = _current_loop()
        try:
            return anyio.run(_run, list(modes), list(routings), list(clients), budget, cases, workdir, stack)
        finally:
            # anyio.run leaves no current loop; Pulumi's runtime in the same process needs one.
            asyncio.set_event_loop(previous or asyncio.new_event_loop())


@dataclass(frozen=True)
class Cases:
    """Which combinations also run a failure scenario."""

    kill: frozenset[tuple[str, str, str]]
    proxy_restart: frozenset[tuple[str, str, str]]
    flood: dict[str, int]


def _current_loop() -> "asyncio.AbstractEventLoop | None":
    try:
        return asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        return None


async def _run(modes: list[ServerMode], routings: list[Routing], clients: list[str], budget: Budget,
               cases: Cases, workdir: Path, stack: ExitStack) -> list[Row]:
    deadline = time.monotonic() + budget.deadline
    redis_url = None
    if any(m.app == "litestar" for m in modes):
        proc, redis_url = redis_server(workdir)
        stack.callback(proc.stop)
    rows: list[Row] = []
    for app in dict.fromkeys(m.app for m in modes):
        replicas = ReplicaSet(app, budget.replicas, workdir, redis_url if app == "litestar" else None)
        stack.callback(replicas.stop)
        replicas.start()
        for routing in routings:
            tag = f"{app}-{routing.kind}"
            proxy = (LearnedProxies if routing.kind == "learned" else HAProxy)(routing, replicas.servers, workdir, tag)
            try:
                for mode in (m for m in modes if m.app == app):
                    rows += await _mode_rows(mode, routing, clients, replicas, proxy, budget, cases, deadline)
            finally:
                proxy.stop()
        replicas.stop()
    return _ordered(rows, modes, routings, clients)


async def _mode_rows(mode: ServerMode, routing: Routing, clients: list[str], replicas: ReplicaSet,
                     proxy: HAProxy | LearnedProxies, budget: Budget, cases: Cases, deadline: float) -> list[Row]:
    rows = []
    for client in clients:
        if time.monotonic() > deadline:
            raise TimeoutError(f"conformance run passed its {budget.deadline}s deadline")
        rows.append(await _steady(mode, routing, client, replicas, proxy, budget))
        if (mode.key, routing.kind, client) in cases.kill:
            rows.append(await _kill_restart(mode, routing, client, replicas, proxy, budget))
        if (mode.key, routing.kind, client) in cases.proxy_restart and isinstance(proxy, LearnedProxies):
            rows.append(await _proxy_restart(mode, routing, client, proxy, budget))
    if cases.flood.get(mode.key) and isinstance(proxy, LearnedProxies):
        rows.append(await _flood(mode, routing, proxy, cases.flood[mode.key]))
    return rows


async def _sessions(count: int, run: Callable[[], Awaitable[SessionResult]],
                    alongside: Callable[[], Awaitable[None]] | None = None) -> list[SessionResult]:
    """Run ``count`` sessions concurrently (and ``alongside``, if given, in the same group)."""
    results: list[SessionResult] = []

    async def one() -> None:
        results.append(await run())

    async with anyio.create_task_group() as group:
        for _ in range(count):
            group.start_soon(one)
        if alongside is not None:
            await alongside()
    return results


async def _steady(mode: ServerMode, routing: Routing, client: str, replicas: ReplicaSet,
                  proxy: HAProxy | LearnedProxies, budget: Budget) -> Row:
    keep = client == CLIENT_KINDS[0]
    endpoints = [(r.name, r.url) for r in replicas.replicas]
    listen: list[ListenResult] = []

    async def listener() -> None:
        if mode.listen:
            listen.append(await check_listen(proxy.url, endpoints, keep, budget.listen_wait))

    results = await _sessions(budget.sessions, partial(
        run_session, proxy.url, mode.client_mode, keep, [budget.calls], timeout=budget.session_timeout,
        get_stream=mode.get_stream), listener)
    return _row(mode, routing, client, SCENARIOS[0], results, listen[0] if listen else None)


async def _kill_restart(mode: ServerMode, routing: Routing, client: str, replicas: ReplicaSet,
                        proxy: HAProxy | LearnedProxies, budget: Budget) -> Row:
    """Half the calls, SIGKILL ``r0``, the other half; restart ``r0``, then fresh sessions."""
    keep, victim = client == CLIENT_KINDS[0], replicas.replicas[0]
    gate, first = Gate(budget.sessions), budget.calls // 2

    async def kill_between_phases() -> None:
        await gate.all_parked(budget.session_timeout)
        victim.kill()
        await anyio.sleep(HEALTH_SETTLE)
        gate.resume.set()

    results = await _sessions(budget.sessions, partial(
        run_session, proxy.url, mode.client_mode, keep, [first, budget.calls - first], gate,
        budget.session_timeout, mode.get_stream), kill_between_phases)
    victim.start()
    await anyio.to_thread.run_sync(victim.wait)
    await anyio.sleep(HEALTH_SETTLE)
    fresh = await _sessions(max(1, budget.sessions // 2), partial(
        run_session, proxy.url, mode.client_mode, keep, [budget.calls], timeout=budget.session_timeout,
        get_stream=mode.get_stream))
    return _kill_row(_row(mode, routing, client, SCENARIOS[1], results, None), mode, results, fresh,
                     victim.name, first)


async def _proxy_restart(mode: ServerMode, routing: Routing, client: str, proxy: LearnedProxies,
                         budget: Budget) -> Row:
    """Half the calls, restart the last pinning proxy and wait until its table is back from its
    peers (at most 15 s), the other half."""
    keep, gate, first = client == CLIENT_KINDS[0], Gate(budget.sessions), budget.calls // 2
    name, restored = proxy.names[-1], []

    async def restart_between_phases() -> None:
        await gate.all_parked(budget.session_timeout)
        await anyio.to_thread.run_sync(proxy.restart, name)
        try:
            restored.append(await anyio.to_thread.run_sync(proxy.wait_table, name, 15.0))
        except TimeoutError as error:
            restored.append(str(error))
        await anyio.sleep(HEALTH_SETTLE)
        gate.resume.set()

    results = await _sessions(budget.sessions, partial(
        run_session, proxy.url, mode.client_mode, keep, [first, budget.calls - first], gate,
        budget.session_timeout, mode.get_stream), restart_between_phases)
    back = restored[0] if restored else "not restarted"
    back_text = f"its table came back from its peer in {back:.1f} s" if isinstance(back, float) else back
    row = _row(mode, routing, client, SCENARIOS[2], results, None)
    notes = f"{name} restarted after {first} of each session's calls; {back_text}"
    return replace(row, notes=_join(notes, row.notes))


async def _flood(mode: ServerMode, routing: Routing, proxy: LearnedProxies, count: int) -> Row:
    """``count`` requests with random ``Mcp-Session-Id`` values through the pinning proxies, 8 at a
    time; the row counts the pins they added (every proxy's table, before and after)."""
    before = {name: proxy.pins(name) for name in proxy.names}
    statuses: Counter[int] = Counter()
    body = b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream",
               "mcp-protocol-version": "2025-11-25"}

    async def worker(offset: int, http: httpx2.AsyncClient) -> None:
        for _ in range(offset, count, 8):
            response = await http.post(proxy.url, content=body, headers={**headers, "mcp-session-id": uuid.uuid4().hex})
            statuses[response.status_code] += 1

    async with httpx2.AsyncClient(verify=False, timeout=10.0) as http, anyio.create_task_group() as group:
        for offset in range(8):
            group.start_soon(worker, offset, http)
    added = max(proxy.pins(name) - before[name] for name in proxy.names)
    answers = ", ".join(f"{n} x {status}" for status, n in sorted(statuses.items()))
    return Row(server=mode.label, routing=routing.label, client="no cookie jar", scenario=SCENARIOS[3],
               sessions=0, calls_ok=0, calls_failed=0, sessions_lost=0, pins_added=(added, sum(statuses.values())),
               notes=f"server answered {answers}")


def _row(mode: ServerMode, routing: Routing, client: str, scenario: str, results: list[SessionResult],
         listen: ListenResult | None) -> Row:
    streams = (sum(r.get_stream_ok for r in results), len(results)) if mode.get_stream else None
    notes = _first_error(results)
    if mode.get_stream and (unanswered := sum(not r.get_answered for r in results)):
        notes = _join(notes, f"{unanswered} GET streams never answered")
    crossed = sum(len(r.proxies) > 1 for r in results) if any(r.proxies for r in results) else None
    if crossed is not None:
        notes = _join(notes, f"{crossed}/{len(results)} sessions crossed proxies")
    if listen is not None and not listen.delivered:
        notes = _join(notes, f"listener on {listen.listener}, notify on {listen.notifier}")
    return Row(server=mode.label, routing=routing.label, client=client, scenario=scenario,
               sessions=len(results), calls_ok=sum(r.ok for r in results),
               calls_failed=sum(r.failed for r in results), sessions_lost=sum(r.lost for r in results),
               get_streams=streams, listen=None if listen is None else listen.delivered,
               crossed_proxies=crossed, notes=notes)


def _kill_row(row: Row, mode: ServerMode, results: list[SessionResult], fresh: list[SessionResult],
              victim: str, first: int) -> Row:
    held = [r for r in results if r.creator == victim] if mode.holds_sessions else []
    fresh_ok = sum(not r.lost for r in fresh)
    held_text = f"it held {len(held)} sessions" if mode.holds_sessions else "no sessions to hold"
    notes = (f"{victim} killed after {first} of each session's calls ({held_text}), "
             f"then restarted: {fresh_ok}/{len(fresh)} new sessions ok")
    return replace(row, notes=_join(notes, row.notes), held_by_killed=len(held), lost_on_killed=sum(r.lost for r in held),
                   restarted_ok=(fresh_ok, len(fresh)))


def _join(notes: str, more: str) -> str:
    return f"{notes}; {more}" if notes else more


def _first_error(results: list[SessionResult]) -> str:
    error = next((r.error for r in results if r.error), None)
    return f"first error: {error}" if error else ""


def _ordered(rows: list[Row], modes: list[ServerMode], routings: list[Routing], clients: list[str]) -> list[Row]:
    labels = [m.label for m in modes]
    kinds = [r.label for r in routings]
    return sorted(rows, key=lambda r: (labels.index(r.server), kinds.index(r.routing),
                                       clients.index(r.client), SCENARIOS.index(r.scenario)))
