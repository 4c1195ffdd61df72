"""A deploy in the middle of live sessions, behind the planned learned-pinning proxies (GKE).

What runs, all on 127.0.0.1: the planned ``haproxy.cfg`` of the pinning proxies (two peered
replicas behind a front, as in :class:`~mcp_affinity_conformance.proxy.LearnedProxies`), with the
server slots of two versions: ``v1-0``, ``v1-1`` (running) and ``v2-0``, ``v2-1`` (pods not yet
scheduled: no process, their checks fail). Each replica has its drain signal, the relay the
planned pods carry (:func:`mcp_affinity.pinning_proxy.drain_signal_config`).

1. Sessions open on v1 (both client kinds) and make their first calls.
2. **Deploy**: the v2 replicas and their signals start; the v1 pods start terminating: their
   signals stop (SIGTERM, as Kubernetes sends a container without ``preStop``), while the v1
   servers keep serving (their ``preStop`` sleeps ``sessionDrainSeconds``). The run waits, bounded,
   until every proxy calls v1 down and v2 up.
3. The v1 sessions make their remaining calls: each must reach the replica that created it. New
   sessions start meanwhile: each must be created on v2.
4. **The window ends**: the v1 servers stop. Each v1 session's next call gets 404, and the client
   re-initializes, on v2.

Every process is stopped on exit; every wait is bounded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from .driver import Exchange, Gate, http_client
from .proxy import DrainSignals, LearnedProxies, Routing
from .report import Row
from .servers import Replica

OLD, NEW = ("v1-0", "v1-1"), ("v2-0", "v2-1")
CLIENT_KINDS = (("keeps cookies", True), ("no cookie jar", False))


@dataclass
class DeploySession:
    """One session of a client kind across the deploy."""

    kind: str
    creator: str | None = None
    calls_before: int = 0
    ok_before: int = 0
    calls_during: int = 0
    ok_during: int = 0
    served_during: Counter = field(default_factory=Counter)
    after_window_status: int | None = None
    reinitialized_on: str | None = None
    reinitialized_ok: bool = False
    error: str | None = None


@dataclass
class DeployReport:
    """What one server mode saw: the v1 sessions, the new sessions, the state changes' timings;
    ``old_names`` / ``new_names``: the replicas (``X-Replica``) of each version."""

    server: str
    old_names: tuple[str, ...] = OLD
    new_names: tuple[str, ...] = NEW
    old: list[DeploySession] = field(default_factory=list)
    new: list[DeploySession] = field(default_factory=list)
    drained_after: float = 0.0
    """Seconds from the deploy until every proxy called v1 down and v2 up."""


def _replicas_of(log: list[Exchange], since: int) -> Counter:
    return Counter(e.replica for e in log[since:] if e.method == "POST" and e.status is not None and e.replica)


async def _call(client: Client, session: DeploySession, phase: str) -> None:
    setattr(session, f"calls_{phase}", getattr(session, f"calls_{phase}") + 1)
    try:
        reply = await client.call_tool("whoami", {})
        setattr(session, f"ok_{phase}", getattr(session, f"ok_{phase}") + (0 if reply.is_error else 1))
    except Exception as exc:  # HTTP 404 for an unknown session arrives as MCPError
        session.error = session.error or f"{type(exc).__name__}: {exc}"[:200]


async def _old_session(url: str, session: DeploySession, keep: bool, calls: int, deployed: Gate,
                       window_over: Gate) -> None:
    """Open on v1, call, park; call after the deploy; park; call after the window, then re-initialize."""
    log: list[Exchange] = []
    parked = [False, False]
    try:
        async with http_client(keep, log, 5.0) as http:
            client = Client(streamable_http_client(url, http_client=http), mode="legacy", read_timeout_seconds=5.0)
            try:
                async with client:
                    session.creator = next((e.replica for e in log if e.session_id and e.status), None)
                    for _ in range(calls):
                        await _call(client, session, "before")
                    parked[0] = True
                    await deployed.park()
                    start = len(log)
                    for _ in range(calls):
                        await _call(client, session, "during")
                    session.served_during = _replicas_of(log, start)
                    parked[1] = True
                    await window_over.park()
                    start = len(log)
                    with anyio.move_on_after(10):
                        await client.call_tool("whoami", {})
            except Exception:  # the 404 ends the session; closing it may fail too
                pass
            session.after_window_status = next((e.status for e in log[start:] if e.method == "POST" and e.status),
                                               None) if parked[1] else None
    finally:
        for index, gate in enumerate((deployed, window_over)):
            if not parked[index]:
                gate.leave()
    if session.after_window_status == 404:
        fresh = DeploySession(session.kind)
        await _new_session(url, fresh, keep, 1)
        session.reinitialized_on, session.reinitialized_ok = fresh.creator, fresh.ok_before == 1


async def _new_session(url: str, session: DeploySession, keep: bool, calls: int) -> None:
    log: list[Exchange] = []
    try:
        with anyio.move_on_after(20):
            async with http_client(keep, log, 5.0) as http:
                async with Client(streamable_http_client(url, http_client=http), mode="legacy",
                                  read_timeout_seconds=5.0) as client:
                    session.creator = next((e.replica for e in log if e.session_id and e.status), None)
                    for _ in range(calls):
                        await _call(client, session, "before")
    except Exception as exc:
        session.error = session.error or f"{type(exc).__name__}: {exc}"[:200]


def run_deploy(routing: Routing, app: str, workdir: Path, sessions: int = 4, calls: int = 3) -> DeployReport:
    """Measure a deploy behind the planned learned pinning (``routing.config``) for server ``app``:
    ``sessions`` per client kind before the deploy and as many after, ``calls`` calls per phase."""
    if routing.kind != "learned" or routing.config is None:
        raise ValueError("a deploy run needs the planned learned-pinning configuration")
    if not (1 <= sessions <= 16 and 1 <= calls <= 10):
        raise ValueError("sessions 1..16, calls 1..10")
    report = DeployReport(app)
    replicas = {name: Replica(app, name, workdir, None) for name in (*OLD, *NEW)}
    with ExitStack() as stack:
        for name in OLD:
            replicas[name].start()
            stack.callback(replicas[name].stop)
        for name in OLD:
            replicas[name].wait()
        signals = DrainSignals([(n, r.port) for n, r in replicas.items()], workdir, app)
        stack.callback(signals.stop)
        for name in OLD:
            signals.start(name)
        proxies = LearnedProxies(routing, [(n, r.port) for n, r in replicas.items()], workdir, f"deploy-{app}", signals)
        stack.callback(proxies.stop)
        # The v2 pods do not exist yet: their slots' checks fail.
        proxies.wait_states({**dict.fromkeys(OLD, "UP"), **dict.fromkeys(NEW, "DOWN")}, 30.0)
        def end_window() -> None:  # the grace period is over: the old pods are gone
            for name in OLD:
                replicas[name].stop()

        anyio.run(phases, proxies.url, lambda: _deploy(proxies, replicas, signals), end_window, report, sessions, calls)
    return report


async def phases(url: str, deploy: Callable[[], float], end_window: Callable[[], None], report: DeployReport,
                 sessions: int, calls: int) -> None:
    """Sessions through ``url`` across ``deploy()`` (returns seconds until it took effect) and
    ``end_window()``: see the module's docstring; results in ``report``."""
    count = sessions * len(CLIENT_KINDS)
    deployed, window_over = Gate(count), Gate(count)
    async with anyio.create_task_group() as group:
        for kind, keep in CLIENT_KINDS:
            for _ in range(sessions):
                session = DeploySession(kind)
                report.old.append(session)
                group.start_soon(_old_session, url, session, keep, calls, deployed, window_over)
        await deployed.all_parked(60.0)
        report.drained_after = await anyio.to_thread.run_sync(deploy)
        deployed.resume.set()
        async with anyio.create_task_group() as fresh:
            for kind, keep in CLIENT_KINDS:
                for _ in range(sessions):
                    session = DeploySession(kind)
                    report.new.append(session)
                    fresh.start_soon(_new_session, url, session, keep, calls)
        await window_over.all_parked(60.0)
        await anyio.to_thread.run_sync(end_window)
        window_over.resume.set()


def _deploy(proxies: LearnedProxies, replicas: dict[str, Replica], signals: DrainSignals) -> float:
    """The rollout: v2 pods start, v1 pods start terminating. Returns seconds until every proxy sees it."""
    for name in NEW:
        replicas[name].start()
    for name in NEW:
        replicas[name].wait()
        signals.start(name)
    for name in OLD:
        signals.terminate(name)
    return proxies.wait_states({**dict.fromkeys(OLD, "DOWN"), **dict.fromkeys(NEW, "UP")}, 30.0)


def to_rows(report: DeployReport, server: str, routing: str = "learned (gke), deploy") -> list[Row]:
    """The deploy rows for the conformance table (``server``: the mode's label), one per client kind."""
    rows = []
    for kind, _ in CLIENT_KINDS:
        old = [s for s in report.old if s.kind == kind]
        new = [s for s in report.new if s.kind == kind]
        planned = sum(s.calls_before + s.calls_during for s in old)
        ok = sum(s.ok_before + s.ok_during for s in old)
        lost = sum(s.ok_before + s.ok_during < s.calls_before + s.calls_during for s in old)
        new_names = report.new_names
        notes = (f"old sessions on their creator after the deploy: {sum(_stayed(report, s) for s in old)}/{len(old)}; "
                 f"new sessions on v2: {sum(s.creator in new_names for s in new)}/{len(new)}; after the window: "
                 f"{sum(s.after_window_status == 404 for s in old)} got 404, "
                 f"{sum(s.reinitialized_ok and s.reinitialized_on in new_names for s in old)} re-initialized on v2")
        rows.append(Row(server, routing, kind, "deploy", len(old), ok, planned - ok, lost, notes=notes))
    return rows


def _stayed(report: DeployReport, session: DeploySession) -> bool:
    return session.creator in report.old_names and set(session.served_during) == {session.creator}


def cell(report: DeployReport, kind: str) -> str:
    """What a deploy did to one client kind's sessions, as the README's deploy table says it."""
    old = [s for s in report.old if s.kind == kind]
    new = [s for s in report.new if s.kind == kind]
    planned, lost = _calls(old)
    stayed = "every call on its creator" if all(_stayed(report, s) for s in old) else \
        f"{sum(_stayed(report, s) for s in old)}/{len(old)} stayed on their creator"
    renewed = all(s.reinitialized_ok and s.reinitialized_on in report.new_names for s in old)
    return (f"drains: {lost} of {planned} calls lost, {stayed}; new sessions "
            f"{sum(s.creator in report.new_names for s in new)}/{len(new)} on v2; past the window "
            f"{sum(s.after_window_status == 404 for s in old)}/{len(old)} got 404 and "
            f"{'re-initialized on v2' if renewed else 'did not all re-initialize'}")


MODE_ROWS = {"sdk-in-memory": "`mcp` 2.3, default `streamable_http_app()`",
             "fastmcp-in-memory": "FastMCP 4.2.3, default `http_app()`",
             "ts-in-memory": "TypeScript SDK 1.32.2, `StreamableHTTPServerTransport`"}
"""The server each in-memory mode is, as the first cell of its row in README's switch table
("Which mode for my server?")."""


def mode_cell(platform: str, report: DeployReport) -> str:
    """What a deploy did on ``platform`` (``GKE `learned` ``), both client kinds together, as the
    deploy column of README's switch table says it: ``GKE `learned`: drains, 0 of 48 calls lost``."""
    planned, lost = _calls(report.old)
    return f"{platform}: drains, {lost} of {planned} calls lost"


def _calls(sessions: list[DeploySession]) -> tuple[int, int]:
    """(calls made, calls lost) of ``sessions`` opened before a deploy, before and during it."""
    planned = sum(s.calls_before + s.calls_during for s in sessions)
    return planned, planned - sum(s.ok_before + s.ok_during for s in sessions)


def switch_row(readme: str, mode: str) -> str:
    """README's switch-table row of ``mode``'s server (:data:`MODE_ROWS`)."""
    (row,) = [line for line in readme.splitlines() if line.startswith(f"| {MODE_ROWS[mode]} |")]
    return row


def readme_cells(report: DeployReport) -> str:
    """A server's row in the README's deploy table starts with this: ``| label | cell | cell |``
    for the two client kinds (the second ``same`` where it matches the first)."""
    cells = [cell(report, kind) for kind, _ in CLIENT_KINDS]
    return " | ".join([cells[0], "same" if cells[1] == cells[0] else cells[1]])


def cloud_run_cell(report: DeployReport) -> str:
    """The README's Cloud Run cell for ``report``: both client kinds in one, when they agree."""
    cells = {cell(report, kind) for kind, _ in CLIENT_KINDS}
    return cells.pop() + " (either client kind)" if len(cells) == 1 else "; ".join(
        f"{kind}: {cell(report, kind)}" for kind, _ in CLIENT_KINDS)
