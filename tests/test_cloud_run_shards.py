"""Session shards on Cloud Run (``pinning: shards``): one-instance services, the ingress container and
its configuration, the URL map's header routes and weighted default, and the limits refused."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import datetime, timezone

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
GKEYS = [f"{key}-g0" for key in KEYS]
"""Keys of generation 0: with a drain (the default) every key carries its generation."""


NOW = datetime(2026, 12, 6, 20, 0, tzinfo=timezone.utc)


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
    assert sorted(n.inputs["name"] for n in plan.by_type(NEG)) == [f"mcp-t-tools-{key}" for key in GKEYS]
    backends = {b.name: b.inputs for b in plan.by_type(BACKEND)}
    assert sorted(b["name"] for b in backends.values()) == [f"mcp-t-tools-{key}" for key in GKEYS]
    assert backends["tools-us-central1-s0-g0"]["backends"] == [{"group": "tools-us-central1-s0-g0-id"}]
    assert plan.warnings == []


def test_the_ingress_container_rewrites_ids_with_the_shard_key_from_the_mounted_secret(record):
    plan = record(sharded)
    both = containers(plan)
    server, proxy = both["mcp"], both["session-shard"]
    assert list(both) == ["mcp", "session-shard"]  # the server stays containers[0] for CI's image path
    assert "ports" not in server and proxy["ports"] == {"containerPort": shards.SHARD_PROXY_PORT}
    assert proxy["image"] == shards.SHARD_PROXY_IMAGE and ":3.2.6" in proxy["image"]
    assert proxy["resources"] == {"limits": {"cpu": "1", "memory": "512Mi"}}
    assert proxy["envs"] == [{"name": "MCP_SHARD_KEY", "value": "europe-west1-s1-g0"}]
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
    assert {"name": "MCP_SESSION_ID_PREFIX", "value": "europe-west1-s0-g0."} in server["envs"]
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
    assert list(plan.outputs["sessionShards"]["typescript"]) == ["capacity", "deploy"]


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
    assert "pathMatchers[typescript].routeRules[Mcp-Session-Id^=europe-west1-s1-g0.].priority" in paths
    assert not any("europe-west1-s0-g0.].matchRules" in path for path in paths)


def test_the_picture_shows_the_shard_routes_backends_and_one_instance_services():
    from mcp_affinity.cli.mermaid import to_mermaid

    text = to_mermaid(plan_example("cloud-run-shards").document())
    assert ('shards_tools["Shard routes 6<br/>Mcp-Session-Id prefix europe-west1-s0-g0. .. us-central1-s2-g0.<br/>'
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
    assert "template.containers.1.envs[MCP_SHARD_KEY].value=us-central1-s2-g0" in line
    assert f"template.containers.1.image={shards.SHARD_PROXY_IMAGE}" in line
    assert "template.scaling.minInstanceCount=1  template.scaling.maxInstanceCount=1" in line
    server = settings_line(plan_example("cloud-run-shards").get(RUN, "typescript-europe-west1-s1"))
    assert server.endswith("template.containers.0.envs[MCP_SESSION_ID_PREFIX].value=europe-west1-s1-g0.")


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
        route = {"hosts": ["a.example.com"], "session_shards": shards.route_shards(make(), NETWORK.regions, NOW)}
        args = GlobalHttpsLoadBalancerArgs(prefix="mcp-t", certificates={"main": ["a.example.com"]}, routes={"tools": route})
        GlobalHttpsLoadBalancer("lb", args, backends={"tools": service.shard_backend_service_ids})

    matcher = record(program).get(URLMAP, "lb").inputs["pathMatchers"][0]
    assert {r["matchRules"][0]["headerMatches"][0]["prefixMatch"]: r["service"] for r in matcher["routeRules"]} == {
        f"{key}.": f"tools-{key}-id" for key in GKEYS}


def test_the_plan_summary_prints_the_ingress_config_line_by_line():
    from mcp_affinity.cli.render import summary

    lines = summary(plan_example("cloud-run-shards"))
    start = lines.index("      proxyConfig: |")
    assert lines[start + 1:start + 3] == ["        global", "          maxconn 256"]
    assert "          bind :8888" in lines and all(line == line.rstrip() for line in lines)


# Deploys: generations of shard keys, tagged revisions, tag-pinned NEGs, pruning after the window.

DEPLOYED = {"6": "2026-12-06T18:00:00Z", "7": "2026-12-06T19:45:00Z"}
"""Generation 7 deployed 15 minutes before NOW: with the default 30-minute drain, 6 still drains."""


def one_region(**overrides) -> CloudRunMcpServiceArgs:
    return make(regions=["europe-west1"], generations=DEPLOYED, **overrides)


def generation_plan(record, args: CloudRunMcpServiceArgs, now=NOW):
    return record(lambda: CloudRunMcpService("tools", args, network=NETWORK, now=now))


def test_a_deploy_makes_a_named_tagged_revision_and_keeps_the_previous_one_tag_only(record):
    plan = generation_plan(record, one_region())
    service = plan.get(RUN, "tools-europe-west1-s1").inputs
    assert service["template"]["revision"] == "mcp-t-tools-s1-gen7"
    assert service["traffics"] == [
        {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": "mcp-t-tools-s1-gen6", "tag": "gen6", "percent": 0},
        {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": "mcp-t-tools-s1-gen7", "tag": "gen7", "percent": 100}]
    # The minimum is the revision's own, so a tag-only revision keeps its instance.
    assert service["template"]["scaling"] == {"minInstanceCount": 1, "maxInstanceCount": 1}
    assert containers(plan)["session-shard"]["envs"] == [{"name": "MCP_SHARD_KEY", "value": "europe-west1-s1-g7"}]


def test_each_serving_generation_has_its_own_tag_pinned_neg_and_backend(record):
    plan = generation_plan(record, one_region())
    negs = {n.name: n.inputs for n in plan.by_type(NEG)}
    assert sorted(negs) == ["tools-europe-west1-s0-g6", "tools-europe-west1-s0-g7",
                            "tools-europe-west1-s1-g6", "tools-europe-west1-s1-g7"]
    assert negs["tools-europe-west1-s1-g6"]["cloudRun"] == {"service": "mcp-t-tools-s1", "tag": "gen6"}
    assert negs["tools-europe-west1-s1-g7"]["cloudRun"] == {"service": "mcp-t-tools-s1", "tag": "gen7"}
    backends = {b.name: b.inputs for b in plan.by_type(BACKEND)}
    assert backends["tools-europe-west1-s1-g6"]["backends"] == [{"group": "tools-europe-west1-s1-g6-id"}]
    assert len(plan.by_type(RUN)) == 2  # one Cloud Run service per shard, whatever the generations


def test_the_url_map_routes_every_generation_by_key_and_new_sessions_to_the_current_one(record):
    args = one_region()

    def program():
        service = CloudRunMcpService("tools", args, network=NETWORK, now=NOW)
        route = {"hosts": ["a.example.com"], "session_shards": shards.route_shards(args, ["europe-west1"], NOW)}
        lb = GlobalHttpsLoadBalancerArgs(prefix="mcp-t", certificates={"main": ["a.example.com"]}, routes={"tools": route})
        GlobalHttpsLoadBalancer("lb", lb, backends={"tools": service.shard_backend_service_ids})

    matcher = record(program).get(URLMAP, "lb").inputs["pathMatchers"][0]
    assert {r["matchRules"][0]["headerMatches"][0]["prefixMatch"]: r["service"] for r in matcher["routeRules"]} == {
        f"europe-west1-s{i}-g{g}.": f"tools-europe-west1-s{i}-g{g}-id" for i in (0, 1) for g in (6, 7)}
    assert matcher["defaultRouteAction"] == {"weightedBackendServices": [
        {"backendService": f"tools-europe-west1-s{i}-g7-id", "weight": 1} for i in (0, 1)]}


@pytest.mark.parametrize("now,serving", [
    (NOW, [6, 7]),                                             # 15 min into the 30-min window
    (datetime(2026, 12, 6, 20, 15, tzinfo=timezone.utc), [7]),  # the window ended at 20:15: 6 goes
    (datetime(2026, 12, 7, 9, 0, tzinfo=timezone.utc), [7]),
])
def test_the_first_run_after_the_window_prunes_the_previous_generation(record, now, serving):
    plan = generation_plan(record, one_region(), now)
    assert sorted({n.name.rsplit("-g", 1)[1] for n in plan.by_type(NEG)}) == [str(g) for g in serving]
    assert sorted({b.name.rsplit("-g", 1)[1] for b in plan.by_type(BACKEND)}) == [str(g) for g in serving]
    traffic = plan.get(RUN, "tools-europe-west1-s0").inputs["traffics"]
    assert [t["tag"] for t in traffic] == [f"gen{g}" for g in serving]
    route = shards.route_shards(one_region(), ["europe-west1"], now)
    assert sorted({key.rsplit("-g", 1)[1] for key in route["keys"]}) == [str(g) for g in serving]


@pytest.mark.parametrize("generations,numbers", [
    ({}, [0]), ({"1": "2026-12-06T19:45:00Z"}, [0, 1]), ({"0": "2026-12-01T00:00:00Z", "1": "2026-12-06T19:45:00Z"}, [0, 1]),
    (DEPLOYED, [6, 7])])
def test_generation_zero_needs_no_entry_and_drains_when_the_first_entry_is_one(generations, numbers):
    assert shards.generation_numbers(generations) == numbers
    args = make(regions=["europe-west1"], generations=generations)
    assert shards.generations_of(args, NOW).serving == numbers  # each deployed 15 min before NOW: still draining


def test_two_deploys_inside_one_window_keep_three_generations_and_say_what_they_cost():
    args = make(regions=["europe-west1"], generations={**DEPLOYED, "8": "2026-12-06T19:55:00Z"})
    generations = shards.generations_of(args, NOW)
    assert generations.serving == [6, 7, 8] and generations.current == 8
    assert generations.draining == {6: datetime(2026, 12, 6, 20, 15, tzinfo=timezone.utc),
                                    7: datetime(2026, 12, 6, 20, 25, tzinfo=timezone.utc)}
    summary = shards.plan_summary(args, 1, NOW)
    assert "while 2 older generation(s) drain, 4 more always-on instance(s) serve their sessions (6 in all)" in summary["capacity"]
    assert summary["deploy"].startswith("new sessions start on generation 8; generation 6 drains for 15 min more "
                                        "(until 2026-12-06T20:15Z), then its sessions re-initialize; generation 7 drains for 25 min")
    assert summary["deploy"].endswith("the next deploy (a new entry in generations) drains generation 8 for 30 min")


def test_without_a_drain_keys_carry_no_generation_and_a_deploy_says_it_ends_sessions(record):
    args = make(session_drain_seconds=0)
    plan = record(lambda: sharded(args))
    assert sorted(n.name for n in plan.by_type(NEG)) == [f"tools-{key}" for key in KEYS]
    assert all("tag" not in n.inputs["cloudRun"] for n in plan.by_type(NEG))
    assert all("traffics" not in r.inputs and "revision" not in r.inputs["template"] for r in plan.by_type(RUN))
    assert shards.route_shards(args, NETWORK.regions, NOW) == {"header": "Mcp-Session-Id", "keys": KEYS}
    assert shards.plan_summary(args, 2, NOW)["deploy"].startswith("a deploy ends every live session")


@pytest.mark.parametrize("overrides,key,message", [
    ({"session_mode": "stateless", "pinning": None, "shards": None, "session_drain_seconds": 600},
     "sessionDrainSeconds", "a stateless server keeps no session"),
    ({"session_mode": "shared-sessions", "pinning": None, "shards": None, "session_drain_seconds": 600},
     "sessionDrainSeconds", "shared-sessions: they live in the store"),
    ({"pinning": None, "shards": None, "max_instances": 1, "regions": ["europe-west1"], "session_drain_seconds": 600},
     "sessionDrainSeconds", "goes with pinning: shards"),
    ({"session_drain_seconds": 3601}, "sessionDrainSeconds", "at most 3600"),
    ({"session_drain_seconds": -1}, "sessionDrainSeconds", "greater than or equal to 0"),
    ({"session_drain_seconds": 600, "image_managed_by_ci": True}, "sessionDrainSeconds", "imageManagedByCi"),
    ({"session_drain_seconds": 0, "generations": DEPLOYED}, "generations", "go with sessionDrainSeconds > 0"),
    ({"generations": {"07": "2026-12-06T18:00:00Z"}}, "generations", "should match pattern"),
    ({"generations": {"7": "2026-12-06T18:00:00"}}, "generations", "timezone"),
])
def test_bad_drain_settings_are_refused_under_their_key(overrides, key, message):
    with pytest.raises(SettingsError) as error:
        make(**overrides)
    (fault,) = error.value.problems
    assert fault[0].split(".")[0] == key and message in fault[1], fault


def test_a_drain_defaults_to_the_idle_timeout_and_to_none_where_ci_makes_revisions():
    assert make().session_drain == 1800 and make(image_managed_by_ci=True).session_drain == 0
    assert make(session_drain_seconds=3600).session_drain == 3600


def test_sharded_services_whose_revision_tags_exceed_the_regions_quota_are_refused_each_under_its_key():
    service = {"image": "img:1", "sessionMode": "in-memory-sessions", "pinning": "shards", "access": "oauth",
               "regions": ["europe-west1"], "shards": 334}
    three = {name: {**service, "hosts": [host]} for name, host in
             (("a", "tools.dev.example.com"), ("b", "ts.dev.example.com"), ("c", "tools.dev.example.com"))}
    # 3 services x 334 shards x (1 generation serving + the next deploy's) = 2004 tags in europe-west1.
    problems = [p for p in stack_problems(three) if ".hosts" not in p[0]]  # c shares a's host: also refused
    assert [key for key, _ in problems] == [f"mcp-affinity:services.{n}.shards" for n in ("a", "b", "c")]
    assert "need 2004 revision tags in europe-west1" in problems[0][1] and "keeps 2000 per project" in problems[0][1]
    # 333 shards: 1998 tags fit; without a drain there are no generation tags at all.
    for fits in ({n: {**s, "shards": 333} for n, s in three.items()},
                 {n: {**s, "sessionDrainSeconds": 0} for n, s in three.items()}):
        assert [p for p in stack_problems(fits) if p[0].endswith(".shards")] == []
