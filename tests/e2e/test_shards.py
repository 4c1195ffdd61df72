"""Cloud Run session shards measured from the example stack's plan (``examples/Pulumi.cloud-run-shards.yaml``):
a front HAProxy doing what the planned URL map says, each shard the planned ingress configuration in
front of one real ``mcp`` 2.3 server holding sessions in memory. Loopback only; every process stopped."""

from __future__ import annotations

import os

import pytest

try:
    from mcp_affinity_conformance import shards  # noqa: F401
except ImportError as exc:  # the conformance package is missing
    if os.environ.get("CI") == "true":
        raise
    pytest.skip(f"shards run needs {exc.name}: pip install -e tools/conformance", allow_module_level=True)

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("conformance")]
"""The shard runs are session fixtures shared with the conformance table: one worker runs both."""


@pytest.fixture(scope="module")
def report(shard_reports):
    return shard_reports[("tools", "sdk-in-memory")]


def test_the_plan_gives_each_shard_a_route_rule_and_an_equal_weight(shard_plans):
    tools = shard_plans["tools"]
    assert len(tools.keys) == 6 and set(tools.weights.values()) == {1}
    assert [prefix for prefix, _ in tools.rules] == [f"{key}." for key in tools.keys]
    assert tools.header == "Mcp-Session-Id" and "stick" not in tools.proxy_config
    assert shard_plans["typescript"].proxy_config is None  # the server prefixes its own ids


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


def test_every_in_memory_server_keeps_its_sessions_behind_shards_for_every_client(shard_reports):
    """mcp 2.3, FastMCP and the TypeScript SDK (ids prefixed by the ingress proxy), and the
    TypeScript SDK prefixing its own ids: 0 sessions lost with or without a cookie jar; a killed
    shard loses only its own sessions; random ids mint nothing."""
    assert len(shard_reports) == 4
    for case, report in shard_reports.items():
        assert report.lost == {"no cookie jar": 0, "keeps cookies": 0}, (case, report)
        assert report.lost_on_killed == report.created_on_killed and report.lost_elsewhere == 0, (case, report)
        assert report.flood.ids_minted == 0 and set(report.flood.statuses) == {404}, (case, report.flood)
