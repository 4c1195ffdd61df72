"""Conformance run: which routing in front of MCP server replicas keeps sessions working.

Real parts on loopback only: official ``mcp`` 2.3 servers (legacy in-memory sessions, legacy
stateless, 2026-07-28) and a litestar-mcp 0.16 app with a Redis-backed broker, several replicas
each as processes; Debian's ``redis-server`` and ``haproxy`` 2.6 started here with generated
configs; the official client driving concurrent sessions. Needs the ``conformance`` extra and
``apt-get install -y redis-server haproxy``. The measured table: ``tests/e2e/conformance-table.md``.

    from mcp_affinity_conformance import Routing, run_matrix, to_markdown
    print(to_markdown(run_matrix(routings=[Routing("learned")])))
"""

from .matrix import DEFAULT_ROUTINGS, KILL_CASES, Budget, run_matrix
from .procs import APT_PACKAGES, missing_binaries
from .proxy import ROUTING_KINDS, Peer, Routing, haproxy_config
from .report import COLUMNS, Row, to_markdown
from .servers import SERVER_MODES, ServerMode

__all__ = [
    "APT_PACKAGES", "COLUMNS", "DEFAULT_ROUTINGS", "KILL_CASES", "ROUTING_KINDS", "SERVER_MODES", "Budget", "Peer",
    "Routing", "Row", "ServerMode", "haproxy_config", "missing_binaries", "run_matrix", "to_markdown",
]
