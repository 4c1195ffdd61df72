"""Session shards on Cloud Run (``pinning: shards``): one-instance services, the ingress container and
its configuration, the URL map's header routes and weighted default, and the limits refused."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import yaml
from pulumi.runtime.config import set_all_config
from mcp_affinity.errors import SettingsError

from conftest import ROOT, plan_example
from helpers import NETWORK
from mcp_affinity import CloudRunMcpService, CloudRunMcpServiceArgs, ConfigError, GlobalHttpsLoadBalancer, GlobalHttpsLoadBalancerArgs
from mcp_affinity import cloud_run_shards as shards
from mcp_affinity.cli.project import _encode

RUN = "gcp:cloudrunv2/service:Service"
NEG = "gcp:compute/regionNetworkEndpointGroup:RegionNetworkEndpointGroup"
BACKEND = "gcp:compute/backendService:BackendService"
URLMAP = "gcp:compute/uRLMap:URLMap"
KEYS = ["europe-west1-s0", "europe-west1-s1", "us-central1-s0", "us-central1-s1"]


def make(**overrides) -> CloudRunMcpServiceArgs:
    values = dict(prefix="mcp-t", image="img:1", session_mode="in-memory-sessions", pinning="shards", shards=2,
                  access="oauth")
    return CloudRunMcpServiceArgs(**{**values, **overrides})


def sharded(args: CloudRunMcpServiceArgs | None = None) -> CloudRunMcpService:
    return CloudRunMcpService("tools", args or make(), network=NETWORK)


def containers(plan, name="tools-europe-west1-s1") -> dict[str, dict]:
    return {c["name"]: c for c in plan.get(RUN, name).inputs["template"]["containers"]}


def test_a_one_instance_service_neg_and_backend_per_region_and_shard(record):
    plan = record(sharded)
    services = {r.name: r.inputs for r in plan.by_type(RUN)}
    assert sorted(services) == [f"tools-{key}" for key in KEYS]
    assert {s["template"]["scaling"]["minInstanceCount"] for s in services.values()} == {1}
    assert {s["template"]["scaling"]["maxInstanceCount"] for s in services.values()} == {1}
    # Only for the moments Cloud Run runs a second instance (about-instance-autoscaling).
    assert {s["template"]["sessionAffinity"] for s in services.values()} == {True}
    assert services["tools-us-central1-s1"]["name"] == "mcp-t-tools-s1"
    assert services["tools-us-central1-s1"]["location"] == "us-central1"
    assert sorted(n.inputs["name"] for n in plan.by_type(NEG)) == [f"mcp-t-tools-{key}" for key in KEYS]
    backends = {b.name: b.inputs for b in plan.by_type(BACKEND)}
    assert sorted(b["name"] for b in backends.values()) == [f"mcp-t-tools-{key}" for key in KEYS]
    assert backends["tools-us-central1-s0"]["backends"] == [{"group": "tools-us-central1-s0-id"}]
    assert plan.warnings == []


def test_the_ingress_container_rewrites_ids_with_the_shard_key_from_the_mounted_secret(record):
    plan = record(sharded)
    both = containers(plan)
    server, proxy = both["mcp"], both["session-shard"]
    assert list(both) == ["mcp", "session-shard"]  # the server stays containers[0] for CI's image path
    assert "ports" not in server and proxy["ports"] == {"containerPort": shards.SHARD_PROXY_PORT}
    assert proxy["image"] == shards.SHARD_PROXY_IMAGE and ":3.2.6" in proxy["image"]
    assert proxy["resources"] == {"limits": {"cpu": "1", "memory": "512Mi"}}
    assert proxy["envs"] == [{"name": "MCP_SHARD_KEY", "value": "europe-west1-s1"}]
    assert proxy["dependsOns"] == ["mcp"] and proxy["startupProbe"]["tcpSocket"]["port"] == shards.SHARD_PROXY_PORT
    assert proxy["volumeMounts"] == [{"name": "shard-proxy", "mountPath": "/usr/local/etc/haproxy"}]
    (volume,) = plan.get(RUN, "tools-europe-west1-s1").inputs["template"]["volumes"]
    assert volume == {"name": "shard-proxy", "secret": {"secret": "tools-shard-proxy-id", "items": [
        {"version": "1", "path": "haproxy.cfg"}]}}
    secret = plan.get("gcp:secretmanager/secretVersion:SecretVersion", "tools-shard-proxy")
    config = secret.raw_inputs["secretData"]["value"]
    assert config == shards.proxy_config_for(make())
    assert "bind :8888" in config and "server mcp 127.0.0.1:8080" in config
    assert 'req.hdr(Mcp-Session-Id) -m beg "${MCP_SHARD_KEY}."' in config
    grant = plan.get("gcp:secretmanager/secretIamMember:SecretIamMember", "tools-shard-proxy").inputs
    assert grant["role"] == "roles/secretmanager.secretAccessor" and grant["secretId"] == "tools-shard-proxy-id"


def test_servers_that_choose_their_ids_get_the_prefix_and_no_ingress_container(record):
    plan = record(lambda: sharded(make(shard_prefix_by="server", regions=["europe-west1"])))
    (server,) = containers(plan, "tools-europe-west1-s0").values()
    assert {"name": "MCP_SESSION_ID_PREFIX", "value": "europe-west1-s0."} in server["envs"]
    assert server["ports"] == {"containerPort": 8080}
    assert plan.by_type("gcp:secretmanager/secret:Secret") == []


@pytest.mark.parametrize("overrides,message", [
    ({"shards": 0}, "greater than or equal to 1"),
    ({"shards": 501}, "less than or equal to 500"),
    ({"shards": "3"}, "valid integer"),
    ({"shards": None}, "needs shards"),
    ({"pinning": None}, "go with pinning: shards"),
    ({"pinning": "sticky"}, "'shards'"),
    ({"session_mode": "shared-sessions"}, "is for sessionMode in-memory-sessions"),
    ({"max_instances": 3}, "remove maxInstances"),
    ({"min_instances": 1}, "remove minInstances"),
    ({"acknowledge": ["cookie-clients-only"]}, "nothing to accept"),
    ({"port": shards.SHARD_PROXY_PORT}, "shard proxy's"),
    ({"shard_prefix_by": "client"}, "'proxy' or 'server'"),
    ({"cpu": "8", "memory": "16Gi"}, "the ingress container adds 1 vCPU and 512Mi"),
    ({"cpu": "4", "memory": "16Gi"}, None),
    ({"cpu": "8", "memory": "32Gi", "shard_prefix_by": "server"}, None),
])
def test_bad_shard_settings_are_refused(overrides, message):
    if message is None:  # the limits' edge that still fits
        assert make(**overrides).pinning == "shards"
        return
    with pytest.raises(SettingsError, match=message):
        make(**overrides)


def lb_args(**route) -> GlobalHttpsLoadBalancerArgs:
    return GlobalHttpsLoadBalancerArgs(prefix="mcp-t", certificates={"main": ["a.example.com"]}, routes={
        "tools": {"hosts": ["a.example.com"], "session_shards": {"header": "Mcp-Session-Id", "keys": KEYS}, **route},
        "heavy": {}}, default_route="heavy")


def shard_backends() -> dict:
    return {"tools": {key: f"bs-{key}" for key in KEYS}, "heavy": "bs-heavy"}


def test_url_map_routes_each_shard_key_prefix_first_and_spreads_the_rest_with_equal_weights(record):
    args = lb_args(method_routes={"calls": {"method": "tools/call", "service": "heavy"}})
    url_map = record(lambda: GlobalHttpsLoadBalancer("lb", args, backends=shard_backends())).get(URLMAP, "lb").inputs
    matcher = next(m for m in url_map["pathMatchers"] if m["name"] == "tools")
    assert matcher["defaultRouteAction"] == {"weightedBackendServices": [
        {"backendService": f"bs-{key}", "weight": 1} for key in KEYS]}
    *shard_rules, method_rule = matcher["routeRules"]
    assert [r["priority"] for r in shard_rules] == [1, 2, 3, 4] and method_rule["priority"] == 5
    assert shard_rules[2] == {"priority": 3, "service": "bs-us-central1-s0", "matchRules": [{"prefixMatch": "/", "headerMatches": [
        {"headerName": "Mcp-Session-Id", "prefixMatch": "us-central1-s0."}]}]}
    assert method_rule["service"] == "bs-heavy"
    assert url_map["defaultService"] == "bs-heavy"


def test_a_method_route_or_the_default_to_a_sharded_service_spreads_over_its_shards(record):
    args = GlobalHttpsLoadBalancerArgs(prefix="mcp-t", certificates={"main": ["a.example.com", "b.example.com"]}, routes={
        "tools": {"hosts": ["a.example.com"], "session_shards": {"header": "Mcp-Session-Id", "keys": KEYS}},
        "heavy": {"hosts": ["b.example.com"], "method_routes": {"m": {"method": "tools/call", "service": "tools"}}}},
        default_route="tools")
    url_map = record(lambda: GlobalHttpsLoadBalancer("lb", args, backends=shard_backends())).get(URLMAP, "lb").inputs
    weighted = {"weightedBackendServices": [{"backendService": f"bs-{key}", "weight": 1} for key in KEYS]}
    heavy = next(m for m in url_map["pathMatchers"] if m["name"] == "heavy")
    assert heavy["routeRules"][0]["routeAction"] == weighted and "service" not in heavy["routeRules"][0]
    assert url_map["defaultRouteAction"] == weighted and "defaultService" not in url_map


def test_shards_need_hosts_and_a_backend_per_shard_key():
    with pytest.raises(SettingsError, match="needs hosts and no pathPrefixes"):
        GlobalHttpsLoadBalancerArgs(prefix="mcp-t", certificates={"main": ["a.example.com"]}, routes={
            "tools": {"path_prefixes": ["/t"], "session_shards": {"header": "Mcp-Session-Id", "keys": KEYS}}})
    with pytest.raises(ValueError, match="a map of backends goes with session shards, one per shard key"):
        GlobalHttpsLoadBalancer("lb", lb_args(), backends={"tools": "bs-tools", "heavy": "bs-heavy"})
    with pytest.raises(ValueError, match=r"route heavy: a map of backends goes with session shards.*None"):
        GlobalHttpsLoadBalancer("lb", lb_args(), backends={**shard_backends(), "heavy": {"x": "bs-x"}})
    with pytest.raises(ValueError, match="route tools: a map"):
        GlobalHttpsLoadBalancer("lb", lb_args(), backends={**shard_backends(), "tools": {KEYS[0]: "bs"}})


def test_a_shard_count_beyond_the_url_map_quota_is_refused_with_what_fits():
    keys = [shards.shard_key(region, i) for region in ("europe-west1", "us-central1") for i in range(480)]
    methods = {f"m{i}": {"method": "tools/call", "name": f"t{i}", "service": "heavy"} for i in range(20)}
    with pytest.raises(SettingsError, match=r"need 980 route rules and 2000 match predicates.*at most 230 shards per region"):
        GlobalHttpsLoadBalancerArgs(prefix="mcp-t", certificates={"main": ["a.example.com"]}, routes={
            "tools": {"hosts": ["a.example.com"], "method_routes": methods,
                      "session_shards": {"header": "Mcp-Session-Id", "keys": keys}}, "heavy": {}})


def stack_problems(services: dict) -> list[tuple[str, str]]:
    sys.path.insert(0, str(ROOT / "infra"))
    import stack_config

    config = yaml.safe_load((ROOT / "examples" / "Pulumi.cloud-run-shards.yaml").read_text())["config"]
    config["mcp-affinity:services"] = services
    set_all_config({k: _encode(v) for k, v in config.items()}, [])
    try:
        stack_config.load("shards")
    except ConfigError as error:
        return error.problems
    return []


def test_the_quota_refusal_lands_under_the_service_key_counting_its_regions():
    methods = {f"m{i}": {"method": "tools/call", "service": "other"} for i in range(3)}
    service = {"image": "img:1", "sessionMode": "in-memory-sessions", "pinning": "shards", "hosts": ["tools.dev.example.com"],
               "access": "oauth"}
    other = {"image": "img:1", "sessionMode": "stateless", "hosts": ["ts.dev.example.com"], "access": "oauth"}
    assert stack_problems({"tools": {**service, "shards": 100, "methodRoutes": methods}, "other": other}) == []
    (problem,) = stack_problems({"tools": {**service, "shards": 300, "methodRoutes": methods}, "other": other})
    assert problem[0] == "mcp-affinity:services.tools.shards"
    # 600 shard rules fit under 1,000 route rules, but their 1,200 match predicates do not.
    assert "600 shard routes (2 region(s) x shards)" in problem[1] and "at most 247 shards per region" in problem[1]


def test_the_example_stack_plans_shards_with_the_capacity_in_its_outputs():
    plan = plan_example("cloud-run-shards")
    assert len(plan.by_type(RUN)) == 8
    tools = plan.outputs["sessionShards"]["tools"]
    assert tools["capacity"].startswith("6 always-on Cloud Run instance(s)") and "480 concurrent requests" in tools["capacity"]
    assert tools["proxyConfig"] == shards.proxy_config_for(CloudRunMcpServiceArgs(
        prefix="x", image="i", session_mode="in-memory-sessions", pinning="shards", shards=3, access="oauth"))
    assert list(plan.outputs["sessionShards"]["typescript"]) == ["capacity"]


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")
def test_the_rendered_ingress_config_is_valid_haproxy(tmp_path):
    path = tmp_path / "haproxy.cfg"
    path.write_text(shards.ingress_config(header="Mcp-Session-Id", listen_port=18888, server_port=18080,
                                          timeout_seconds=3600, max_connections=256, listen_address="127.0.0.1"))
    result = subprocess.run([shutil.which("haproxy"), "-c", "-f", str(path)], capture_output=True, text=True, timeout=30,
                            env={"MCP_SHARD_KEY": "europe-west1-s0"})
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_diff_shows_an_added_shard_as_one_route_rule_and_renumbered_priorities():
    from mcp_affinity.cli.diff import diff_properties

    plan = plan_example("cloud-run-shards").document()
    old = next(r for r in plan["resources"] if r["type"] == URLMAP)["inputs"]
    new = json.loads(json.dumps(old))
    matcher = next(m for m in new["pathMatchers"] if m["name"] == "typescript")
    matcher["routeRules"].insert(0, {"priority": 1, "service": "bs-new", "matchRules": [{"prefixMatch": "/", "headerMatches": [
        {"headerName": "Mcp-Session-Id", "prefixMatch": "europe-west1-s2."}]}]})
    for priority, rule in enumerate(matcher["routeRules"], start=1):
        rule["priority"] = priority
    paths = {c.path for c in diff_properties(old, new)}
    assert "pathMatchers[typescript].routeRules[Mcp-Session-Id^=europe-west1-s2.]" in paths
    assert "pathMatchers[typescript].routeRules[Mcp-Session-Id^=europe-west1-s1.].priority" in paths
    assert not any("europe-west1-s0.].matchRules" in path for path in paths)


def test_the_picture_shows_the_shard_routes_backends_and_one_instance_services():
    from mcp_affinity.cli.mermaid import to_mermaid

    text = to_mermaid(plan_example("cloud-run-shards").document())
    assert ('shards_tools["Shard routes 6<br/>Mcp-Session-Id prefix europe-west1-s0. .. us-central1-s2.<br/>'
            'to its shard; others weighted 1:1"]') in text
    assert "lb_lb --> shards_tools" in text and "shards_tools -->|shards| be_tools" in text
    assert "be_tools --> neg_tools" in text and 'neg_tools["Serverless NEGs 6<br/>europe-west1, us-central1"]' in text
    assert "6 shards x 1 instance, always on<br/>ids prefixed by ingress HAProxy" in text
    assert "2 shards x 1 instance, always on<br/>ids prefixed by the server" in text


def test_the_plan_text_shows_each_shards_key_proxy_and_single_instance():
    from mcp_affinity.cli.render import key_settings

    def settings_line(resource):
        return "  ".join(key_settings(resource.type, resource.inputs))

    line = settings_line(plan_example("cloud-run-shards").get(RUN, "tools-us-central1-s2"))
    assert "template.containers.1.envs[MCP_SHARD_KEY].value=us-central1-s2" in line
    assert f"template.containers.1.image={shards.SHARD_PROXY_IMAGE}" in line
    assert "template.scaling.minInstanceCount=1  template.scaling.maxInstanceCount=1" in line
    server = settings_line(plan_example("cloud-run-shards").get(RUN, "typescript-europe-west1-s1"))
    assert server.endswith("template.containers.0.envs[MCP_SESSION_ID_PREFIX].value=europe-west1-s1.")


def test_the_policy_refuses_a_shard_that_may_run_more_or_fewer_than_one_instance():
    from mcp_affinity.policies import check_plan

    plan = plan_example("cloud-run-shards").document()
    assert [v for v in check_plan(plan) if v.rule == "session-shard-one-instance"] == []
    plan = json.loads(json.dumps(plan))
    service = next(r for r in plan["resources"] if r["name"] == "typescript-europe-west1-s1")
    service["inputs"]["template"]["scaling"] = {"minInstanceCount": 0, "maxInstanceCount": 3}
    (violation,) = [v for v in check_plan(plan) if v.rule == "session-shard-one-instance"]
    assert violation.urn == service["urn"]
    assert violation.message == "a session shard must run exactly one instance: minInstanceCount is 0, maxInstanceCount is 3"


def test_the_service_and_the_load_balancer_wire_each_shard_key_to_its_own_backend(record):
    def program():
        service = sharded()
        route = {"hosts": ["a.example.com"], "session_shards": shards.route_shards(make(), NETWORK.regions)}
        args = GlobalHttpsLoadBalancerArgs(prefix="mcp-t", certificates={"main": ["a.example.com"]}, routes={"tools": route})
        GlobalHttpsLoadBalancer("lb", args, backends={"tools": service.shard_backend_service_ids})

    matcher = record(program).get(URLMAP, "lb").inputs["pathMatchers"][0]
    assert {r["matchRules"][0]["headerMatches"][0]["prefixMatch"]: r["service"] for r in matcher["routeRules"]} == {
        f"{key}.": f"tools-{key}-id" for key in KEYS}


def test_the_plan_summary_prints_the_ingress_config_line_by_line():
    from mcp_affinity.cli.render import summary

    lines = summary(plan_example("cloud-run-shards"))
    start = lines.index("      proxyConfig: |")
    assert lines[start + 1:start + 3] == ["        global", "          maxconn 256"]
    assert "          bind :8888" in lines and all(line == line.rstrip() for line in lines)
