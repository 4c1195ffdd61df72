"""The conformance matrix: server modes x routings x client kinds, steady and with a replica kill."""

from __future__ import annotations

import asyncio

import logging
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import anyio

from .driver import CLIENT_KINDS, Gate, ListenResult, SessionResult, check_listen, run_session
from .procs import missing_binaries, redis_server
from .proxy import ROUTING_KINDS, HAProxy, Routing
from .report import SCENARIOS, Row
from .servers import SERVER_MODES, ReplicaSet, ServerMode

DEFAULT_ROUTINGS: tuple[Routing, ...] = tuple(Routing(kind) for kind in ROUTING_KINDS)
KILL_CASES: tuple[tuple[str, str, str], ...] = (
    ("sdk-in-memory", "cookie", "keeps cookies"),
    ("sdk-in-memory", "learned", "no cookie jar"),
    ("sdk-stateless", "round-robin", "no cookie jar"),
    ("sdk-2026", "round-robin", "no cookie jar"),
    ("litestar-2026", "round-robin", "no cookie jar"),
)
"""(server mode key, routing kind, client kind) that also run the kill + restart scenario: each
mode under a routing that keeps its sessions, so any loss is the kill's."""
HEALTH_SETTLE = 0.7
"""Seconds for HAProxy's 200 ms health checks to see a replica go down or come back."""


@dataclass(frozen=True)
class Budget:
    """Counts and wall-clock limits (seconds) of one run."""

    replicas: int = 3
    sessions: int = 8
    calls: int = 6
    session_timeout: float = 20.0
    listen_wait: float = 1.0
    deadline: float = 150.0

    def __post_init__(self) -> None:
        if not 2 <= self.replicas <= 8:
            raise ValueError("Budget.replicas must be 2..8 (a kill and a cross-replica listen need two)")
        if not (1 <= self.sessions <= 64 and 2 <= self.calls <= 50):
            raise ValueError("Budget.sessions must be 1..64 and Budget.calls 2..50")
        if not 0 < self.deadline <= 600 or self.session_timeout <= 0 or self.listen_wait <= 0:
            raise ValueError("Budget times must be positive, the deadline at most 600 s")


def run_matrix(modes: Sequence[ServerMode] = SERVER_MODES, routings: Sequence[Routing] = DEFAULT_ROUTINGS,
               clients: Sequence[str] = CLIENT_KINDS, budget: Budget = Budget(),
               kill_cases: Sequence[tuple[str, str, str]] = KILL_CASES, workdir: Path | None = None) -> list[Row]:
    """Measure every mode x routing x client (steady), plus a kill + restart row for each
    (mode key, routing kind, client kind) in ``kill_cases`` that the matrix contains.

    Starts ``redis-server`` (for litestar-mcp), ``budget.replicas`` replicas per app and one
    HAProxy per routing, all on 127.0.0.1 free ports, and stops them all before returning.
    Raises ``RuntimeError`` when a binary is missing and ``TimeoutError`` past ``budget.deadline``.
    Rows come back in a fixed order: modes, routings, clients, scenarios as given.
    """
    logging.getLogger("mcp.client.streamable_http").setLevel(logging.ERROR)  # expected 404s on DELETE
    if missing := missing_binaries():
        raise RuntimeError(f"missing {', '.join(missing)}: apt-get install -y redis-server haproxy")
    with ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mcp-conformance-")))
        kills = frozenset(kill_cases)
        previous = _current_loop()
        try:
            return anyio.run(_run, list(modes), list(routings), list(clients), budget, kills, workdir, stack)
        finally:
            # anyio.run leaves no current loop; Pulumi's runtime in the same process needs one.
            asyncio.set_event_loop(previous or asyncio.new_event_loop())


def _current_loop() -> "asyncio.AbstractEventLoop | None":
    try:
        return asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        return None


async def _run(modes: list[ServerMode], routings: list[Routing], clients: list[str], budget: Budget,
               kills: frozenset[tuple[str, str, str]], workdir: Path, stack: ExitStack) -> list[Row]:
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
            proxy = HAProxy(routing, replicas.servers, workdir, f"{app}-{routing.kind}")
            try:
                for mode in (m for m in modes if m.app == app):
                    rows += await _mode_rows(mode, routing, clients, replicas, proxy, budget, kills, deadline)
            finally:
                proxy.stop()
        replicas.stop()
    return _ordered(rows, modes, routings, clients)


async def _mode_rows(mode: ServerMode, routing: Routing, clients: list[str], replicas: ReplicaSet,
                     proxy: HAProxy, budget: Budget, kills: frozenset[tuple[str, str, str]],
                     deadline: float) -> list[Row]:
    rows = []
    for client in clients:
        if time.monotonic() > deadline:
            raise TimeoutError(f"conformance run passed its {budget.deadline}s deadline")
        rows.append(await _steady(mode, routing, client, replicas, proxy, budget))
        if (mode.key, routing.kind, client) in kills:
            rows.append(await _kill_restart(mode, routing, client, replicas, proxy, budget))
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


async def _steady(mode: ServerMode, routing: Routing, client: str, replicas: ReplicaSet, proxy: HAProxy,
                  budget: Budget) -> Row:
    keep = client == CLIENT_KINDS[0]
    endpoints = [(r.name, r.url) for r in replicas.replicas]
    listen: list[ListenResult] = []

    async def listener() -> None:
        if mode.listen:
            listen.append(await check_listen(proxy.url, endpoints, keep, budget.listen_wait))

    results = await _sessions(budget.sessions, partial(
        run_session, proxy.url, mode.client_mode, keep, [budget.calls], timeout=budget.session_timeout), listener)
    return _row(mode, routing, client, SCENARIOS[0], results, listen[0] if listen else None)


async def _kill_restart(mode: ServerMode, routing: Routing, client: str, replicas: ReplicaSet,
                        proxy: HAProxy, budget: Budget) -> Row:
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
        budget.session_timeout), kill_between_phases)
    victim.start()
    await anyio.to_thread.run_sync(victim.wait)
    await anyio.sleep(HEALTH_SETTLE)
    fresh = await _sessions(max(1, budget.sessions // 2), partial(
        run_session, proxy.url, mode.client_mode, keep, [budget.calls], timeout=budget.session_timeout))
    return _kill_row(_row(mode, routing, client, SCENARIOS[1], results, None), mode, results, fresh,
                     victim.name, first)


def _row(mode: ServerMode, routing: Routing, client: str, scenario: str, results: list[SessionResult],
         listen: ListenResult | None) -> Row:
    streams = (sum(r.get_stream_ok for r in results), len(results)) if mode.get_stream else None
    notes = _first_error(results)
    if listen is not None and not listen.delivered:
        notes = (notes + "; " if notes else "") + f"listener on {listen.listener}, notify on {listen.notifier}"
    return Row(server=mode.label, routing=routing.label, client=client, scenario=scenario,
               sessions=len(results), calls_ok=sum(r.ok for r in results),
               calls_failed=sum(r.failed for r in results), sessions_lost=sum(r.lost for r in results),
               get_streams=streams, listen=None if listen is None else listen.delivered, notes=notes)


def _kill_row(row: Row, mode: ServerMode, results: list[SessionResult], fresh: list[SessionResult],
              victim: str, first: int) -> Row:
    held = [r for r in results if r.creator == victim] if mode.holds_sessions else []
    fresh_ok = sum(not r.lost for r in fresh)
    held_text = f"it held {len(held)} sessions" if mode.holds_sessions else "no sessions to hold"
    notes = (f"{victim} killed after {first} of each session's calls ({held_text}), "
             f"then restarted: {fresh_ok}/{len(fresh)} new sessions ok")
    return replace(row, notes=notes, held_by_killed=len(held), lost_on_killed=sum(r.lost for r in held),
                   restarted_ok=(fresh_ok, len(fresh)))


def _first_error(results: list[SessionResult]) -> str:
    error = next((r.error for r in results if r.error), None)
    return f"first error: {error}" if error else ""


def _ordered(rows: list[Row], modes: list[ServerMode], routings: list[Routing], clients: list[str]) -> list[Row]:
    labels = [m.label for m in modes]
    kinds = [r.label for r in routings]
    return sorted(rows, key=lambda r: (labels.index(r.server), kinds.index(r.routing),
                                       clients.index(r.client), SCENARIOS.index(r.scenario)))
