"""Conformance run: which routing in front of MCP server replicas keeps sessions working.

Real parts on loopback only: the official ``mcp`` 2.3 server (legacy in-memory sessions, legacy
stateless, 2026-07-28), FastMCP and the official TypeScript SDK in their default (in-memory
sessions) and stateless modes, and a litestar-mcp 0.16 app with a Redis-backed broker, several
replicas each as processes; Debian's ``redis-server`` and ``haproxy`` started here; the official
client driving concurrent sessions. The routings are read from the plans of this checkout's
stacks and examples; learned pinning runs the configuration the plan deploys. Not part of the
library: ``pip install -e tools/conformance`` and ``npm ci --prefix tools/conformance/ts`` from a
checkout, and ``apt-get install -y redis-server haproxy``.

    from pathlib import Path
    from mcp_affinity_conformance import plan_all, routings_of, run_matrix, to_markdown
    print(to_markdown(run_matrix(routings_of(plan_all(Path(".")))))
"""

from .from_plan import plan_all, planned_routings, routings_of
from .matrix import FLOOD_CASES, KILL_CASES, PROXY_RESTART_CASES, Budget, run_matrix
from .procs import APT_PACKAGES, missing_binaries
from .proxy import ROUTING_KINDS, LearnedProxies, Routing, haproxy_config, localize
from .report import COLUMNS, SCENARIOS, Row, to_markdown
from .servers import SERVER_MODES, ServerMode

__all__ = [
    "APT_PACKAGES", "COLUMNS", "FLOOD_CASES", "KILL_CASES", "PROXY_RESTART_CASES", "ROUTING_KINDS", "SCENARIOS",
    "SERVER_MODES", "Budget", "LearnedProxies", "Routing", "Row", "ServerMode", "haproxy_config", "localize",
    "missing_binaries", "plan_all", "planned_routings", "routings_of", "run_matrix", "to_markdown",
]
