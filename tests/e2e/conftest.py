"""End-to-end conformance fixtures: real servers, Redis and HAProxy on 127.0.0.1 only.

Without ``redis-server``/``haproxy`` on PATH the e2e tests skip, saying what to install; with
``CI=true`` they fail instead, so CI cannot pass without running them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

TABLE = Path(__file__).with_name("conformance-table.md")
ROOT = Path(__file__).resolve().parents[2]
INSTALL = ("apt-get install -y redis-server haproxy nodejs, pip install -e tools/conformance, "
           "npm ci --prefix tools/conformance/ts")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: end-to-end run with real servers, Redis and HAProxy on loopback")
    config.addinivalue_line("markers", "xdist_group(name): keep these tests on one pytest-xdist worker")


def require_parts() -> None:
    """Skip (fail under ``CI=true``) unless the binaries and the ``conformance`` extra are present."""
    missing = [name for name in ("redis-server", "haproxy", "node") if shutil.which(name) is None]
    try:
        import fastmcp  # noqa: F401
        import litestar_mcp  # noqa: F401
        import mcp  # noqa: F401
    except ImportError as exc:
        missing.append(f"python package {exc.name}")
    if not (ROOT / "tools/conformance/ts/node_modules/@modelcontextprotocol/sdk").is_dir():
        missing.append("the TypeScript SDK (npm ci --prefix tools/conformance/ts)")
    if missing:
        message = f"conformance run needs {', '.join(missing)}: {INSTALL}"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="session")
def parts_installed() -> None:
    """Skip (fail under ``CI=true``) unless redis-server, haproxy and the extra are installed."""
    require_parts()


@pytest.fixture(scope="session")
def planned() -> list[dict]:
    """The plans of every stack and example of this checkout (what the conformance run measures)."""
    from mcp_affinity_conformance import plan_all

    return plan_all(ROOT)


@pytest.fixture(scope="session")
def routings(planned):
    """One routing per kind, as the plans configure it; ``learned`` carries the deployed config."""
    from mcp_affinity_conformance import routings_of

    return routings_of(planned)


@pytest.fixture(scope="session")
def conformance_rows(routings):
    """Rows of one full conformance run (about three minutes on 2 cores); writes the Markdown
    table to ``tests/e2e/conformance-table.md`` when ``MCP_AFFINITY_WRITE_TABLE=1``."""
    require_parts()
    from mcp_affinity_conformance import run_matrix, to_markdown

    rows = run_matrix(routings)
    if os.environ.get("MCP_AFFINITY_WRITE_TABLE") == "1":
        TABLE.write_text(to_markdown(rows))
    MEASURED.extend(rows)
    return rows


MEASURED: list = []


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """Print the measured summary (the README's table) at the end of a run that measured it."""
    if MEASURED:
        from mcp_affinity_conformance.report import summary_markdown

        terminalreporter.write_sep("-", "conformance summary (README: Which mode for my server?)")
        terminalreporter.write_line(summary_markdown(MEASURED))
