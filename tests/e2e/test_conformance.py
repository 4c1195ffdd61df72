"""The measured facts of ``tests/e2e/conformance-table.md``, asserted from one conformance run (see conftest.py).

Facts: README, "Which mode for my server?", and the table it embeds.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

try:
    from mcp_affinity_conformance import (
        COLUMNS, DEFAULT_ROUTINGS, KILL_CASES, SERVER_MODES, Routing, Row, haproxy_config, to_markdown,
    )
    from mcp_affinity_conformance.proxy import Peer
except ImportError as exc:  # the [conformance] extra is missing
    if os.environ.get("CI") == "true":
        raise
    pytest.skip(f"conformance run needs {exc.name}: pip install -e tools/conformance", allow_module_level=True)

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("conformance")]
"""One worker runs the matrix once under ``pytest -n N --dist loadgroup`` (the fixture is per worker)."""

IN_MEMORY, STATELESS, SDK_2026, LITESTAR = (m.label for m in SERVER_MODES)
SERVERS = [("r0", 20001), ("r1", 20002), ("r2", 20003)]


def pick(rows: list[Row], server: str, routing: str | None = None, client: str | None = None,
         scenario: str = "steady") -> list[Row]:
    found = [r for r in rows if r.server == server and r.scenario == scenario
             and routing in (None, r.routing) and client in (None, r.client)]
    assert found, (server, routing, client, scenario)
    return found


# --- the generated proxy configuration (no binaries needed) -------------------------------------

def test_header_hash_config_hashes_the_header_consistently():
    text = haproxy_config(Routing("header-hash"), SERVERS, 20000)
    assert "balance hdr(Mcp-Session-Id)" in text and "hash-type consistent" in text
    assert "stick" not in text and "cookie" not in text


def test_cookie_config_inserts_a_cookie_per_replica():
    text = haproxy_config(Routing("cookie", cookie="GCLB"), SERVERS, 20000)
    assert "cookie GCLB insert indirect nocache" in text
    assert all(f"cookie {name}" in text for name, _ in SERVERS)


def test_learned_config_learns_from_the_response_and_shares_through_peers():
    peers = [Peer("proxy-0", 21000), Peer("proxy-1", 21001)]
    text = haproxy_config(Routing("learned", header="X-Session"), SERVERS, 20000, peers)
    assert "stick store-response res.hdr(X-Session)" in text
    assert "stick on req.hdr(X-Session)" in text
    assert "peers mcp_sessions" in text and "localpeer proxy-0" in text
    assert "peer proxy-1 127.0.0.1:21001" in text
    assert text.index("peers mcp_sessions\n    peer proxy-0 127.0.0.1:21000") < text.index("backend replicas")
    assert "stick-table type string len 128 size 100k expire 30m peers mcp_sessions" in text


def test_single_and_round_robin_configs():
    assert haproxy_config(Routing("single"), SERVERS, 20000).count("    server ") == 1
    text = haproxy_config(Routing("round-robin"), SERVERS, 20000)
    assert text.count("    server ") == 3 and "balance roundrobin" in text


def test_routing_rejects_unknown_kinds_and_bad_names():
    with pytest.raises(ValueError):
        Routing("sticky")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Routing("header-hash", header="Mcp Session")
    assert Routing("learned", header="X-Id").label == "learned (X-Id)"


def test_every_generated_config_passes_haproxy_check(tmp_path, parts_installed):
    peers = [Peer("proxy-0", 21000), Peer("proxy-1", 21001)]
    for routing in DEFAULT_ROUTINGS:
        path = tmp_path / f"{routing.kind}.cfg"
        path.write_text(haproxy_config(routing, SERVERS, 20000, peers))
        check = subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stdout + check.stderr


# --- the measured facts --------------------------------------------------------------------------

def test_table_has_fixed_columns_and_one_row_per_combination(conformance_rows):
    rows = conformance_rows
    assert len(rows) == len(SERVER_MODES) * len(DEFAULT_ROUTINGS) * 2 + len(KILL_CASES)
    header = to_markdown(rows).splitlines()[0]
    assert header == "| " + " | ".join(COLUMNS) + " |"
    order = [(r.server, r.routing, r.client, r.scenario) for r in rows]
    assert order == sorted(order, key=order.index) and len(set(order)) == len(order)
    assert all(r.sessions == 8 and r.calls_ok + r.calls_failed == 48 for r in rows if r.scenario == "steady")


def test_in_memory_sessions_die_under_round_robin_and_header_hash(conformance_rows):
    for routing in ("round-robin", "header-hash"):
        for row in pick(conformance_rows, IN_MEMORY, routing):
            assert row.sessions_lost > 0 and row.calls_failed > 0, row


def test_in_memory_sessions_survive_cookie_for_cookie_clients_and_learned_for_all(conformance_rows):
    kept = pick(conformance_rows, IN_MEMORY, "cookie", "keeps cookies") + pick(conformance_rows, IN_MEMORY, "learned")
    for row in kept:
        assert (row.sessions_lost, row.calls_failed) == (0, 0), row
        assert row.get_streams == (row.sessions, row.sessions), row


def test_cookie_routing_loses_sessions_for_clients_without_a_cookie_jar(conformance_rows):
    (row,) = pick(conformance_rows, IN_MEMORY, "cookie", "no cookie jar")
    assert row.sessions_lost > 0, row


def test_stateless_and_2026_lose_nothing_under_any_routing(conformance_rows):
    for server in (STATELESS, SDK_2026, LITESTAR):
        for row in pick(conformance_rows, server):
            assert (row.sessions_lost, row.calls_failed) == (0, 0), row


def test_a_replica_kill_loses_only_the_sessions_it_held(conformance_rows):
    killed = [r for r in conformance_rows if r.scenario != "steady"]
    assert len(killed) == len(KILL_CASES)
    for row in killed:
        assert row.sessions_lost == row.lost_on_killed == row.held_by_killed, row
        assert row.restarted_ok is not None and row.restarted_ok[0] == row.restarted_ok[1], row
    in_memory = [r for r in killed if r.server == IN_MEMORY]
    assert in_memory and all(r.held_by_killed > 0 for r in in_memory)
    assert all(r.sessions_lost == 0 for r in killed if r.server != IN_MEMORY)


def test_notifications_reach_listeners_on_other_replicas_through_redis(conformance_rows):
    assert all(r.listen is True for r in pick(conformance_rows, LITESTAR))


def test_sdk_default_subscription_bus_stays_in_its_process(conformance_rows):
    # mcp/server/mcpserver/server.py: "The default bus is in-process".
    assert all(r.listen is False for r in pick(conformance_rows, SDK_2026))
    assert all(r.listen is None for s in (IN_MEMORY, STATELESS) for r in pick(conformance_rows, s))


def test_readme_table_is_the_measured_summary(conformance_rows):
    """README "Which mode for my server?" is regenerated from this run (verdicts, not counts)."""
    from mcp_affinity_conformance.report import summary_markdown

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = readme.index("<!-- conformance:begin -->") + len("<!-- conformance:begin -->")
    block = readme[start:readme.index("<!-- conformance:end -->")]
    assert summary_markdown(conformance_rows).strip() in block, (
        "README's table differs from the measured run:\n" + summary_markdown(conformance_rows))


def test_the_plans_learned_pinning_config_passes_haproxy_check(tmp_path, parts_installed):
    """The HAProxy configuration the GKE path deploys, as Debian's HAProxy 2.6 reads it."""
    import subprocess

    from mcp_affinity.pinning_proxy import haproxy_config

    config = haproxy_config(name="notes-pinning", namespace="mcp-notes", pods_service="notes-pods",
                            peers_service="notes-pinning-peers", replicas=2, header="Mcp-Session-Id", port=8080,
                            max_servers=10, timeout_seconds=3600, srvkey=False)
    path = tmp_path / "haproxy.cfg"
    # Peer names resolve at start-up; in the cluster the peers' headless Service publishes them
    # (publishNotReadyAddresses), here loopback stands in for them.
    for index in range(2):
        config = config.replace(f"notes-pinning-{index}.notes-pinning-peers.mcp-notes.svc.cluster.local:10000",
                                f"127.0.0.1:{10000 + index}")
    path.write_text(config.replace("parse-resolv-conf", "nameserver local 127.0.0.1:53"))
    result = subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_routing_our_plans_deploy_keeps_the_sessions_it_promises(conformance_rows):
    """The routing each stack and example plans (read from the plan: DestinationRule, persistent-
    session label, stick table, Cloud Run affinity) works in the measured run for the clients it
    promises: every client, or clients that keep cookies where the routing is a cookie."""
    import dataclasses

    from mcp_affinity.cli import find_project, run_plan
    from mcp_affinity_conformance.from_plan import planned_routings

    root = Path(__file__).resolve().parents[2]
    project = find_project(root)
    plans = [run_plan(project, stack).to_json() for stack in ("dev", "staging", "prod")]
    examples = dataclasses.replace(project, stack_config_dir=root / "examples")
    plans += [run_plan(examples, p.name[len("Pulumi."):-len(".yaml")]).to_json()
              for p in sorted((root / "examples").glob("Pulumi.*.yaml"))]
    labels = {m.key: m.label for m in SERVER_MODES}
    checked = set()
    for planned in (p for plan in plans for p in planned_routings(plan)):
        clients = ["keeps cookies"] if planned.routing.kind == "cookie" else ["keeps cookies", "no cookie jar"]
        for mode in planned.server_modes:
            for client in clients:
                (row,) = [r for r in conformance_rows if (r.server, r.routing, r.client, r.scenario)
                          == (labels[mode], planned.routing.kind, client, "steady")]
                assert row.sessions_lost == 0 and row.calls_failed == 0, (planned, row)
                checked.add((mode, planned.routing.kind))
    assert {("sdk-in-memory", "learned"), ("sdk-in-memory", "cookie"), ("sdk-in-memory", "single"),
            ("litestar-2026", "round-robin")} <= checked
