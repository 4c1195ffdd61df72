"""``mcp-affinity conformance --stack S``: measure the routing a stack's plan configures.

The stack is planned as ``mcp-affinity plan`` does; each MCP service's routing is read from the
plan (:mod:`mcp_affinity_conformance.from_plan`) and emulated by HAProxy in front of real MCP servers of the service's
session mode, all on 127.0.0.1. Needs ``redis-server`` and ``haproxy`` (Debian) and the harness,
which is not part of the library: ``pip install -e tools/conformance`` from a checkout.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional

import typer


def conformance(
    stack: str = typer.Option(..., "--stack", "-s", help="Stack whose plan decides the routing."),
    program: Optional[Path] = typer.Option(None, "--program", help="Project directory (default: the one holding Pulumi.yaml)."),
    replicas: int = typer.Option(3, min=2, max=8, help="Replicas of each server."),
    sessions: int = typer.Option(8, min=1, max=64, help="Concurrent sessions per combination."),
    calls: int = typer.Option(6, min=2, max=50, help="Tool calls per session."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the Markdown report here."),
) -> None:
    """Run the stack's routing against real MCP servers on loopback; exit 1 if a service loses sessions."""
    from .project import ProjectError, find_project
    from .runner import run_plan
    from ..errors import ConfigError
    try:
        from mcp_affinity_conformance import Budget, missing_binaries, run_matrix, to_markdown
        from mcp_affinity_conformance.from_plan import planned_routings, planned_shards
        from mcp_affinity_conformance.servers import SERVER_MODES
        from mcp_affinity_conformance.shards import run_shards, to_rows
    except ImportError as error:
        typer.echo(f"error: the conformance run needs {error.name}; from a checkout: "
                   "pip install -e tools/conformance", err=True)
        raise typer.Exit(2) from None

    if missing := missing_binaries():
        typer.echo(f"error: missing {', '.join(missing)}: apt-get install -y redis-server haproxy", err=True)
        raise typer.Exit(2)
    try:
        plan = run_plan(find_project(program or Path.cwd()), stack).to_json()
    except (ConfigError, ProjectError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    lines = [f"# Conformance of stack `{stack}`", ""]
    lost = False
    for service in planned_routings(plan):
        modes = [m for m in SERVER_MODES if m.key in service.server_modes]
        lines.append(f"## {service.platform} service `{service.service}`: {service.session_mode}, "
                     f"routing `{service.routing.kind}` ({service.because})")
        if not modes:
            lines += ["", "No public MCP server keeps legacy sessions in a shared store: nothing real to measure.", ""]
            continue
        rows = run_matrix([service.routing], modes=modes, budget=Budget(replicas, sessions, calls),
                          kill_cases=[], proxy_restart_cases=[], flood_cases={})
        lost = lost or any(r.sessions_lost for r in rows if not (r.routing == "cookie" and r.client == "no cookie jar"))
        lines += ["", to_markdown(rows)]
    for shards in planned_shards(plan):
        # The server behind the shards is one the run has: the official SDK, or the TypeScript SDK
        # where the server prefixes its own ids (the only one that lets the operator choose them).
        mode = SERVER_MODES[0] if shards.proxy_config is not None else next(
            m for m in SERVER_MODES if m.key == "ts-in-memory")
        lines.append(f"## cloud-run service `{shards.service}`: in-memory-sessions, routing `shards` "
                     f"({len(shards.keys)} shards routed by the URL map on `{shards.header}`)")
        with tempfile.TemporaryDirectory(prefix="mcp-shards-") as workdir:
            rows = to_rows(run_shards(shards, Path(workdir), app=mode.app, sessions=sessions, calls=calls), mode.label)
        lost = lost or any(r.sessions_lost for r in rows)
        lines += ["", to_markdown(rows)]
    report = "\n".join(lines)
    typer.echo(report)
    if out is not None:
        out.write_text(report)
    if lost:
        raise typer.Exit(1)
