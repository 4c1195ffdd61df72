"""Cloud Run session shards measured from the example stack's plan (``examples/Pulumi.cloud-run-shards.yaml``):
a front HAProxy doing what the planned URL map says, each shard the planned ingress configuration in
front of one real ``mcp`` 2.3 server holding sessions in memory. Loopback only; every process stopped."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

try:
    from mcp_affinity_conformance.from_plan import planned_shards
    from mcp_affinity_conformance.shards import run_shards, to_rows
except ImportError as exc:  # the conformance package is missing
    if os.environ.get("CI") == "true":
        raise
    pytest.skip(f"shards run needs {exc.name}: pip install -e tools/conformance", allow_module_level=True)

from mcp_affinity.cli import find_project, run_plan

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("shards")]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def planned():
    project = dataclasses.replace(find_project(ROOT), stack_config_dir=ROOT / "examples")
    plan = json.loads(json.dumps(run_plan(project, "cloud-run-shards").to_json()))
    return {shards.service: shards for shards in planned_shards(plan)}


@pytest.fixture(scope="module")
def report(planned, parts_installed, tmp_path_factory):
    return run_shards(planned["tools"], tmp_path_factory.mktemp("shards"))


def test_the_plan_gives_each_shard_a_route_rule_and_an_equal_weight(planned):
    tools = planned["tools"]
    assert len(tools.keys) == 6 and set(tools.weights.values()) == {1}
    assert [prefix for prefix, _ in tools.rules] == [f"{key}." for key in tools.keys]
    assert tools.header == "Mcp-Session-Id" and "stick" not in tools.proxy_config
    assert planned["typescript"].proxy_config is None  # the server prefixes its own ids


def test_no_session_is_lost_with_or_without_a_cookie_jar(report):
    assert report.lost == {"no cookie jar": 0, "keeps cookies": 0}, report
    assert report.calls_failed == {"no cookie jar": 0, "keeps cookies": 0}, report
    # Every GET stream a client opened reached the shard holding its session.
    assert all(accepted == opened for accepted, opened in report.get_streams.values()), report.get_streams
    assert report.ids_with_creator_key == 16  # every id a client saw starts with its creator's key


def test_a_killed_shard_loses_only_its_own_sessions(report):
    assert report.created_on_killed > 0, report
    assert report.lost_on_killed == report.created_on_killed and report.lost_elsewhere == 0, report


def test_a_flood_of_random_session_ids_creates_no_state(report):
    flood = report.flood
    assert flood.statuses == {404: 1000} and flood.ids_minted == 0, flood
    # Ids without a shard key stop at the ingress proxy; the others reach a server, which knows none.
    assert flood.reached_server == flood.with_shard_key == 500, flood
    assert "stick" not in report.front_config


def test_rows_for_the_conformance_table(report):
    rows = to_rows(report, "mcp 2.3, legacy, in-memory sessions")
    assert [(r.client, r.sessions_lost, r.calls_failed) for r in rows] == [("keeps cookies", 0, 0), ("no cookie jar", 0, 0)]
    print("\n" + "\n".join(" | ".join(r.cells()) for r in rows))
