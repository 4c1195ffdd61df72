"""The conformance run reads each service's routing from the plan, not from the stack file."""

from __future__ import annotations

from conftest import plan_example, plan_stack
from mcp_affinity_conformance.from_plan import planned_routings


def example(name: str) -> dict:
    return plan_example(name).to_json()


def summary(plan: dict) -> dict:
    return {(p.platform, p.service): (p.session_mode, p.routing.kind, p.routing.header, p.routing.cookie)
            for p in planned_routings(plan)}


def test_staging_shared_sessions_hash_on_gke_and_use_the_cookie_on_cloud_run():
    assert summary(plan_stack("staging").to_json()) == {
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
    assert planned.server_modes == ("sdk-in-memory",)
