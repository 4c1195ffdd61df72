"""The shards conformance run reads a sharded service from the plan: the URL map's shard routes and
weights, and the planned ingress configuration, of which only the two ports move to loopback."""

from __future__ import annotations

import json

import pytest

from conftest import plan_example
from mcp_affinity.cloud_run_shards import SHARD_PROXY_PORT
from mcp_affinity_conformance.from_plan import planned_shards
from mcp_affinity_conformance.shards import front_config, on_loopback


def example() -> dict:
    return json.loads(json.dumps(plan_example("cloud-run-shards").document()))


def test_each_sharded_service_is_read_with_its_routes_weights_and_ingress_config():
    tools, typescript = planned_shards(example())
    assert tools.service == "tools" and tools.header == "Mcp-Session-Id"
    assert tools.keys == ("europe-west1-s0-g0", "europe-west1-s1-g0", "europe-west1-s2-g0",
                          "us-central1-s0-g0", "us-central1-s1-g0", "us-central1-s2-g0")
    assert tools.rules[0] == ("europe-west1-s0-g0.", "europe-west1-s0-g0") and len(tools.rules) == 6
    assert set(tools.weights.values()) == {1} and f"bind :{SHARD_PROXY_PORT}" in tools.proxy_config
    assert (typescript.keys, typescript.proxy_config) == (("europe-west1-s0-g0", "europe-west1-s1-g0"), None)


def test_a_plan_whose_url_map_misses_a_shard_is_refused():
    plan = example()
    url_map = next(r for r in plan["resources"] if r["type"] == "gcp:compute/uRLMap:URLMap")
    matcher = next(m for m in url_map["inputs"]["pathMatchers"] if m["name"] == "tools")
    matcher["routeRules"] = matcher["routeRules"][1:]
    with pytest.raises(ValueError, match="tools: the URL map's shard routes"):
        planned_shards(plan)


def test_only_the_ports_move_and_the_front_proxy_routes_as_the_url_map():
    tools = planned_shards(example())[0]
    moved = on_loopback(tools.proxy_config, 40001, 40002)
    assert moved.replace("bind 127.0.0.1:40001", f"bind :{SHARD_PROXY_PORT}").replace(
        "127.0.0.1:40002", "127.0.0.1:8080") == tools.proxy_config
    with pytest.raises(ValueError, match="0 bind and 1 server lines"):
        on_loopback(tools.proxy_config.replace("  bind", "  #bind"), 1, 2)
    front = front_config(tools, {key: 30000 + i for i, key in enumerate(tools.keys)}, 29999)
    assert "use_backend shard_us-central1-s2-g0 if { req.hdr(Mcp-Session-Id) -m beg us-central1-s2-g0. }" in front
    assert "server us-central1-s2-g0 127.0.0.1:30005 weight 1" in front and "stick" not in front


def test_a_server_prefixed_shard_has_no_ingress_proxy_and_the_front_reaches_the_server(tmp_path):
    from mcp_affinity_conformance.shards import Shard

    shard = Shard("europe-west1-s0", None, "sdk-in-memory", tmp_path)
    assert shard.config is None and shard.port == shard.replica.port
    proxied = Shard("europe-west1-s1", planned_shards(example())[0].proxy_config, "sdk-in-memory", tmp_path)
    assert proxied.port != proxied.replica.port and f"server mcp 127.0.0.1:{proxied.replica.port}" in proxied.config


def test_shard_services_are_told_apart_from_other_cloud_run_services():
    from mcp_affinity_conformance.from_plan import is_shard

    runs = [r for r in example()["resources"] if r["type"] == "gcp:cloudrunv2/service:Service"]
    assert len(runs) == 8 and all(is_shard(r["inputs"]) for r in runs)
    other = plan_example("cloud-run-in-memory").document()
    assert not any(is_shard(r["inputs"]) for r in other["resources"] if r["type"] == "gcp:cloudrunv2/service:Service")
