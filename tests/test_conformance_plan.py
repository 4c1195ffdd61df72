"""The conformance run reads each service's routing from the plan, not from the stack file."""

from __future__ import annotations

import pytest

from conftest import plan_example, plan_stack
from mcp_affinity_conformance.from_plan import planned_routings


def example(name: str) -> dict:
    return plan_example(name).document()


def summary(plan: dict) -> dict:
    return {(p.platform, p.service): (p.session_mode, p.routing.kind, p.routing.header, p.routing.cookie)
            for p in planned_routings(plan)}


def test_staging_shared_sessions_hash_on_gke_and_use_the_cookie_on_cloud_run():
    assert summary(plan_stack("staging").document()) == {
        ("cloud-run", "mcp-stg-search"): ("shared-sessions", "cookie", "Mcp-Session-Id", "mcp-affinity"),
        ("cloud-run", "mcp-stg-tools"): ("shared-sessions", "cookie", "Mcp-Session-Id", "mcp-affinity"),
        ("gke", "notes"): ("shared-sessions", "header-hash", "Mcp-Session-Id", "mcp-affinity"),
    }


def test_examples_map_to_the_routing_they_deploy():
    assert summary(example("cloud-run-in-memory")) == {
        ("cloud-run", "mcp-ex2-cookies"): ("in-memory-sessions", "cookie", "Mcp-Session-Id", "mcp-affinity"),
        ("cloud-run", "mcp-ex2-single"): ("in-memory-sessions", "single", "Mcp-Session-Id", "mcp-affinity"),
    }
    assert {v[:2] for v in summary(example("cloud-run-stateless")).values()} == {("stateless+broker", "round-robin"),
                                                                                 ("stateless", "round-robin")}
    assert summary(example("gke-in-memory"))[("gke", "legacy")][:2] == ("in-memory-sessions", "cookie")


def test_learned_pinning_is_read_from_the_proxy_configuration():
    (planned,) = planned_routings(example("gke-in-memory-learned"))
    assert (planned.routing.kind, planned.routing.header) == ("learned", "Mcp-Session-Id")
    assert planned.server_modes == ("sdk-in-memory", "fastmcp-in-memory", "ts-in-memory")
    # The run uses the very configuration the plan deploys.
    (config_map,) = [r for r in example("gke-in-memory-learned")["resources"]
                     if r["type"] == "kubernetes:core/v1:ConfigMap" and "haproxy.cfg" in r["inputs"].get("data", {})
                     and r["inputs"]["metadata"]["name"].endswith("-pinning")]
    assert planned.routing.config == config_map["inputs"]["data"]["haproxy.cfg"]


def test_the_matrix_measures_one_routing_of_each_kind_the_plans_configure():
    from mcp_affinity_conformance import routings_of

    routings = routings_of([example(name) for name in ("gke-in-memory-learned", "gke-in-memory", "cloud-run-in-memory",
                                                        "cloud-run-stateless")] + [plan_stack("staging").document()])
    assert [r.kind for r in routings] == ["round-robin", "header-hash", "cookie", "learned", "single"]
    with pytest.raises(ValueError, match="header-hash"):
        routings_of([example("gke-in-memory-learned")])
