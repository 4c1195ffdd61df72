"""What the conformance run measures, asserted from one run (see conftest.py).

Real servers, Redis and HAProxy on 127.0.0.1 only, behind the routings this checkout's stacks and
examples plan; learned pinning is the deployed configuration through two peered proxies.

No flakes: the run passed 5 runs of 5 on a 2-core machine with a CPU-bound process beside it:

    python3 -c 'while True: pass' & hog=$!
    for i in 1 2 3 4 5; do .venv/bin/pytest -q -p no:cacheprovider tests/e2e || break; done
    kill $hog

A session with a GET stream waits until the stream is answered before it ends (the client opens
it in the background); counting a stream still on its way as refused is what made this module
fail on busy machines before.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

try:
    from mcp_affinity_conformance import (
        COLUMNS, FLOOD_CASES, KILL_CASES, PROXY_RESTART_CASES, SCENARIOS, SERVER_MODES, Routing, Row,
        haproxy_config, localize, planned_routings, to_markdown,
    )
    from mcp_affinity_conformance.proxy import Ports, peer_names
except ImportError as exc:  # the harness is not installed
    if os.environ.get("CI") == "true":
        raise
    pytest.skip(f"conformance run needs {exc.name}: pip install -e tools/conformance", allow_module_level=True)

from mcp_affinity import pinning_proxy

from .conftest import SHARD_CASES

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("conformance")]
"""One worker runs the matrix once under ``pytest -n N --dist loadgroup`` (the fixture is per worker)."""

LABEL = {m.key: m.label for m in SERVER_MODES}
IN_MEMORY = [m.label for m in SERVER_MODES if m.holds_sessions]
NO_SESSIONS = [m.label for m in SERVER_MODES if not m.holds_sessions]
SERVERS = [("r0", 20001), ("r1", 20002), ("r2", 20003)]
CHECKS = {"r0": 20101, "r1": 20102, "r2": 20103}
"""Each replica's drain signal: the planned learned pinning checks pods through it (a session drain)."""
STEADY, KILL, PROXY_RESTART, FLOOD = SCENARIOS


def pick(rows: list[Row], server: str, routing: str | None = None, client: str | None = None,
         scenario: str = STEADY) -> list[Row]:
    found = [r for r in rows if r.server == server and r.scenario == scenario
             and routing in (None, r.routing) and client in (None, r.client)]
    assert found, (server, routing, client, scenario)
    return found


def by_kind(routings, kind: str) -> Routing:
    (routing,) = [r for r in routings if r.kind == kind]
    return routing


# --- the configuration each routing runs (no servers needed) --------------------------------------

def test_the_emulated_routings_use_what_the_plans_configure(routings):
    assert [r.kind for r in routings] == ["round-robin", "header-hash", "cookie", "learned", "single"]
    hashing = haproxy_config(by_kind(routings, "header-hash"), SERVERS, 20000)
    assert "balance hdr(Mcp-Session-Id)" in hashing and "hash-type consistent" in hashing
    cookie = haproxy_config(by_kind(routings, "cookie"), SERVERS, 20000)
    assert "cookie mcp-affinity insert indirect nocache" in cookie
    assert all(f"cookie {name}" in cookie for name, _ in SERVERS)
    assert haproxy_config(by_kind(routings, "single"), SERVERS, 20000).count("    server ") == 1
    with pytest.raises(ValueError, match="LearnedProxies"):
        haproxy_config(by_kind(routings, "learned"), SERVERS, 20000)


def test_learned_pinning_runs_the_planned_config_with_only_its_addresses_moved(routings):
    """Every line of the deployed config survives, but those naming addresses (and srvkey, which
    Debian's HAProxy 2.6 lacks); the moved lines point at 127.0.0.1."""
    deployed = by_kind(routings, "learned").config
    names = peer_names(deployed)
    assert len(names) == 2
    ports = Ports({names[0]: 30000, names[1]: 30001}, {names[0]: 30002, names[1]: 30003},
                  {names[0]: 30004, names[1]: 30005})
    ran = localize(deployed, SERVERS, ports, names[0], srvkey=False, checks=CHECKS)
    kept = set(deployed.splitlines()) & set(ran.splitlines())
    moved = [line for line in deployed.splitlines() if line not in kept]
    assert all(("server-template" in line or " peer " in line or "bind :" in line or "srvkey addr" in line
                or '"${DNS_SERVER}":53' in line or ".svc.cluster.local:8080 resolvers" in line) for line in moved), moved
    new = [line for line in ran.splitlines() if line not in kept]
    assert all("127.0.0.1" in line or "stick-table" in line for line in new), new
    assert "  server mcp1 127.0.0.1:20001 port 20101" in ran and f"  server {names[1]} 127.0.0.1:30001" in ran
    assert "  bind 127.0.0.1:30000" in ran and "  bind 127.0.0.1:30002" in ran
    with pytest.raises(ValueError, match="server-template"):
        localize(deployed.replace("server-template", "server-tmpl"), SERVERS, ports, names[0], srvkey=False, checks=CHECKS)
    with pytest.raises(ValueError, match="drain signal"):
        localize(deployed, SERVERS, ports, names[0], srvkey=False)


def test_learned_rows_are_measured_through_two_peered_proxies(conformance_rows):
    for server in IN_MEMORY:
        for row in pick(conformance_rows, server, "learned"):
            assert row.crossed_proxies == row.sessions, row  # request n of a session: proxy n mod 2


def test_every_routing_config_passes_haproxy_check(tmp_path, parts_installed, routings):
    for routing in routings:
        if routing.kind == "learned":
            names = peer_names(routing.config)
            text = localize(routing.config, SERVERS, Ports.free(names), names[0], srvkey=False, checks=CHECKS)
        else:
            text = haproxy_config(routing, SERVERS, 20000)
        path = tmp_path / f"{routing.kind}.cfg"
        path.write_text(text)
        check = subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stdout + check.stderr


def test_a_learned_pin_costs_less_memory_than_the_sizing_assumes(tmp_path, parts_installed, routings):
    """``pinning_proxy.BYTES_PER_PIN`` sizes the proxy's memory limit: the deployed table, filled
    with 20,000 pins learned from responses, grows the proxy by less than that per pin."""
    from mcp_affinity_conformance.pin_memory import measure

    measured = measure(by_kind(routings, "learned").config, 20_000, tmp_path)
    assert measured.pins == 20_000
    assert 0 < measured.bytes_per_pin < pinning_proxy.BYTES_PER_PIN, measured


# --- the measured facts ------------------------------------------------------------------------------

def test_table_has_fixed_columns_and_one_row_per_combination(conformance_rows):
    rows = conformance_rows
    shards = 2 * len(SHARD_CASES)
    assert len(rows) == len(SERVER_MODES) * 5 * 2 + len(KILL_CASES) + len(PROXY_RESTART_CASES) + len(FLOOD_CASES) + shards
    header = to_markdown(rows).splitlines()[0]
    assert header == "| " + " | ".join(COLUMNS) + " |"
    order = [(r.server, r.routing, r.client, r.scenario) for r in rows]
    assert order == sorted(order, key=order.index) and len(set(order)) == len(order)
    assert all(r.sessions == 8 and r.calls_ok + r.calls_failed == 48 for r in rows if r.scenario == STEADY)


def test_in_memory_sessions_die_under_round_robin_and_header_hash(conformance_rows):
    for server in IN_MEMORY:
        for routing in ("round-robin", "header-hash"):
            for row in pick(conformance_rows, server, routing):
                assert row.sessions_lost > 0 and row.calls_failed > 0, row


def test_in_memory_sessions_survive_cookie_for_cookie_clients_and_learned_and_shards_for_all(conformance_rows):
    for server in IN_MEMORY:
        kept = pick(conformance_rows, server, "cookie", "keeps cookies") + pick(conformance_rows, server, "learned")
        kept += pick(conformance_rows, server, "cloud-run shards")
        for row in kept:
            assert (row.sessions_lost, row.calls_failed) == (0, 0), row
            assert row.get_streams == (row.sessions, row.sessions), row


def test_cookie_routing_loses_sessions_for_clients_without_a_cookie_jar(conformance_rows):
    for server in IN_MEMORY:
        (row,) = pick(conformance_rows, server, "cookie", "no cookie jar")
        assert row.sessions_lost > 0, row


def test_stateless_and_2026_lose_nothing_under_any_routing(conformance_rows):
    for server in NO_SESSIONS:
        for row in pick(conformance_rows, server):
            assert (row.sessions_lost, row.calls_failed) == (0, 0), row


def test_a_replica_kill_loses_only_the_sessions_it_held(conformance_rows):
    killed = [r for r in conformance_rows if r.scenario == KILL]
    assert len(killed) == len(KILL_CASES)
    for row in killed:
        assert row.sessions_lost == row.lost_on_killed == row.held_by_killed, row
        assert row.restarted_ok is not None and row.restarted_ok[0] == row.restarted_ok[1], row
    assert all(r.held_by_killed > 0 for r in killed if r.server in IN_MEMORY)
    assert all(r.sessions_lost == 0 for r in killed if r.server not in IN_MEMORY)


def test_a_restarted_pinning_proxy_gets_its_pins_back_from_its_peer(conformance_rows):
    restarted = [r for r in conformance_rows if r.scenario == PROXY_RESTART]
    assert {r.server for r in restarted} == {LABEL[mode] for mode, _, _ in PROXY_RESTART_CASES}
    for row in restarted:
        assert (row.sessions_lost, row.calls_failed) == (0, 0), row
        assert "its table came back from its peer in" in row.notes, row


def test_random_session_ids_store_no_pin(conformance_rows):
    flooded = [r for r in conformance_rows if r.scenario == FLOOD]
    assert {r.server for r in flooded} == {LABEL[mode] for mode in FLOOD_CASES}
    for row in flooded:
        assert row.pins_added == (0, FLOOD_CASES[next(m.key for m in SERVER_MODES if m.label == row.server)]), row
    assert (0, 10_000) in {r.pins_added for r in flooded}


def test_notifications_reach_listeners_on_other_replicas_through_redis(conformance_rows):
    assert all(r.listen is True for r in pick(conformance_rows, LABEL["litestar-2026"]))


def test_sdk_default_subscription_bus_stays_in_its_process(conformance_rows):
    # mcp/server/mcpserver/server.py: "The default bus is in-process".
    assert all(r.listen is False for r in pick(conformance_rows, LABEL["sdk-2026"]))
    assert all(r.listen is None for s in IN_MEMORY for r in pick(conformance_rows, s))


def test_readme_table_is_the_measured_summary(conformance_rows):
    """README "Which mode for my server?" is regenerated from this run (verdicts, not counts)."""
    from mcp_affinity_conformance.report import summary_markdown

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = readme.index("<!-- conformance:begin -->") + len("<!-- conformance:begin -->")
    block = readme[start:readme.index("<!-- conformance:end -->")]
    assert summary_markdown(conformance_rows).strip() in block, (
        "README's table differs from the measured run:\n" + summary_markdown(conformance_rows))


def test_every_routing_our_plans_deploy_keeps_the_sessions_it_promises(conformance_rows, planned):
    """The routing each stack and example plans works in the measured run for the clients it
    promises: every client, or clients that keep cookies where the routing is a cookie."""
    checked = set()
    for service in (p for plan in planned for p in planned_routings(plan)):
        clients = ["keeps cookies"] if service.routing.kind == "cookie" else ["keeps cookies", "no cookie jar"]
        for mode in service.server_modes:
            for client in clients:
                (row,) = [r for r in conformance_rows if (r.server, r.routing, r.client, r.scenario)
                          == (LABEL[mode], service.routing.label, client, STEADY)]
                assert row.sessions_lost == 0 and row.calls_failed == 0, (service, row)
                checked.add((mode, service.routing.kind))
    assert {("sdk-in-memory", "learned"), ("fastmcp-in-memory", "learned"), ("ts-in-memory", "learned"),
            ("sdk-in-memory", "cookie"), ("sdk-in-memory", "single"), ("litestar-2026", "round-robin")} <= checked
