"""The access map: references between planned resources, the map in plan and diff, the policy rule
``method-route-holds-host-access`` and the stack check refusing a method route that crosses access."""

from __future__ import annotations

import copy
import dataclasses
import json
import tempfile
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, plan_example
from mcp_affinity import ConfigError
from mcp_affinity.access import AccessArgs
from mcp_affinity.access_map import access_map, crossings, edge_for_host
from mcp_affinity.cli import find_project, run_plan
from mcp_affinity.cli.diff import access_changes, diff_plans, to_text
from mcp_affinity.cli.render import access_lines, key_settings
from mcp_affinity.policies import check_plan
from mcp_affinity.references import Index, resolved_inputs
from mcp_affinity.route_access import edge_faults, route_faults
from mcp_affinity.security_policy import EdgeArgs
from mcp_affinity.wire import BACKEND, NEG, SECURITY_POLICY, UNKNOWN, URL_MAP

RULE = "method-route-holds-host-access"


def stateless() -> dict:
    """A fresh copy of the plan of examples/Pulumi.cloud-run-stateless.yaml (tools routes render_video to render)."""
    return json.loads(json.dumps(plan_example("cloud-run-stateless").document()))


def named(plan: dict, type_: str, name: str) -> dict:
    return next(r for r in plan["resources"] if r["type"] == type_ and r["name"] == name)


def stack_file(name: str) -> dict:
    return yaml.safe_load((ROOT / "examples" / f"Pulumi.{name}.yaml").read_text())


def plan_or_refusal(stack: dict):
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "Pulumi.t.yaml").write_text(yaml.safe_dump(stack))
        try:
            return run_plan(dataclasses.replace(find_project(ROOT), stack_config_dir=Path(folder)), "t")
        except ConfigError as error:
            return error


# --- references ---------------------------------------------------------------------------------

def test_the_plan_records_which_backend_service_each_route_names_and_keeps_the_input_unknown():
    plan = stateless()
    url_map = named(plan, URL_MAP, "lb")
    render, tools = named(plan, BACKEND, "render"), named(plan, BACKEND, "tools")
    assert url_map["inputs"]["pathMatchers"][0]["routeRules"][0]["service"] == UNKNOWN  # as pulumi preview
    assert url_map["references"]["pathMatchers.0.routeRules.0.service"] == render["urn"]
    assert url_map["references"]["pathMatchers.0.defaultService"] == tools["urn"]
    assert render["references"]["securityPolicy"] == named(plan, SECURITY_POLICY, "render")["urn"]
    # Stack outputs never show the placeholder ids.
    assert "mcp-affinity-planned-id" not in json.dumps(plan)


def test_the_plan_text_shows_the_backend_service_a_route_names():
    plan = stateless()
    url_map = named(plan, URL_MAP, "lb")
    line = "  ".join(key_settings(URL_MAP, resolved_inputs(url_map, Index(plan["resources"]))))
    assert "service: backend service render" in line and "defaultService: backend service tools" in line
    assert "(known after apply)" not in line


def applied(plan: dict) -> dict:
    """``plan`` as a CrossGuard stack policy sees it after apply: no recorded references, each input
    that named a backend service, Cloud Armor policy or NEG holding its self-link."""
    result = copy.deepcopy(plan)
    by_urn = {r["urn"]: r for r in plan["resources"]}
    for resource in result["resources"]:
        for path, urn in resource.pop("references", {}).items():
            target = by_urn[urn]
            where = {BACKEND: "global/backendServices", SECURITY_POLICY: "global/securityPolicies",
                     NEG: f"regions/{target['inputs'].get('region')}/networkEndpointGroups"}.get(target["type"])
            if where:
                *parents, last = path.split(".")
                holder = resource["inputs"]
                for part in parents:
                    holder = holder[int(part)] if isinstance(holder, list) else holder[part]
                holder[int(last) if isinstance(holder, list) else last] = (
                    f"https://www.googleapis.com/compute/v1/projects/my-mcp-project-dev/{where}/{target['inputs']['name']}")
    return result


def test_after_apply_ids_and_self_links_name_the_same_resources():
    """A CrossGuard stack policy sees real ids and no recorded references: the same map comes out."""
    plan = stateless()
    route = next(r for r in access_map(applied(plan)["resources"]).routes if r.kind == "method")
    assert [e.label for e in route.ends] == ["backend service render"]
    assert [(key, str(limit)) for key, limit in route.ends[0].edge.per_tool] == [(("tools/call", "render_video"), "10/60s")]
    assert access_lines(applied(plan)["resources"]) == access_lines(plan["resources"])


def test_a_reference_unknown_until_apply_is_not_judged():
    plan = stateless()
    for resource in plan["resources"]:
        resource.pop("references", None)
    named(plan, SECURITY_POLICY, "render")["inputs"]["rules"] = []  # would cross, if the route could be read
    assert [v for v in check_plan(plan) if v.rule == RULE] == []


# --- the map in plan and diff ---------------------------------------------------------------------

def test_the_plan_prints_each_route_of_each_host_and_what_its_end_enforces():
    lines = access_lines(stateless()["resources"])
    assert lines[0].startswith("access map")
    assert "   mcp.dev.example.com: tools/call render_video -> backend service render [public: no identity check at the " \
           "edge | security policy render; origins https://mcp.dev.example.com; POST without Mcp-Method refused; " \
           "per client 600/60s; tools/call render_video 10/60s; cve-canary enforced]" in lines
    assert "   *: unknown hosts (404 at the load balancer) -> backend service lb-nohost [no identity check | no Cloud " \
           "Armor policy]" in lines


def test_the_cli_plan_prints_the_access_map(tmp_path):
    from typer.testing import CliRunner
    from mcp_affinity.cli.app import app

    project = tmp_path / "p"
    project.mkdir()
    result = CliRunner().invoke(app, ["plan", "--stack", "staging", "--program", str(ROOT)])
    assert result.exit_code == 0, result.output
    assert "tools.mcp.staging.example.com: /* -> backend service tools [iam (invoker: " \
           "serviceAccount:agents@my-mcp-project-staging.iam.gserviceaccount.com) | security policy tools;" in result.output
    assert "pathMatchers=[{pathRules: [], defaultService: backend service gateway, name: gke}" in result.output


def test_the_diff_shows_a_route_that_now_ends_elsewhere_and_its_access_map_change():
    base, head = stateless(), stateless()
    url_map = named(head, URL_MAP, "lb")
    url_map["references"]["pathMatchers.0.routeRules.0.service"] = named(head, BACKEND, "tools")["urn"]
    text = to_text(diff_plans(base, head))
    assert "~ gcp:compute/uRLMap:URLMap lb" in text
    assert ".service: backend service render -> backend service tools" in text
    lines = access_changes(base, head)
    assert any(line.startswith("+   mcp.dev.example.com: tools/call render_video -> backend service tools [") for line in lines)
    assert any(line.startswith("-   mcp.dev.example.com: tools/call render_video -> backend service render [") for line in lines)
    assert [line for line in access_changes(base, base) if line[:1] in "+-"] == []


# --- the policy rule ------------------------------------------------------------------------------

def test_every_shipped_stack_and_example_passes_the_rule():
    from conftest import plan_stack

    stacks = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in (ROOT / "stacks").glob("Pulumi.*.yaml"))
    examples = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in (ROOT / "examples").glob("Pulumi.*.yaml"))
    assert len(stacks) >= 3 and len(examples) >= 6
    plans = [plan_stack(s).document() for s in stacks] + [plan_example(e).document() for e in examples]
    assert [v for plan in plans for v in check_plan(plan) if v.rule == RULE] == []


def test_the_rule_fails_a_route_whose_end_lacks_the_hosts_per_tool_limit_and_method_refusal():
    plan = stateless()
    policy = named(plan, SECURITY_POLICY, "render")
    policy["inputs"]["rules"] = [r for r in policy["inputs"]["rules"] if r["action"] != "deny(403)"
                                 or "origin" in r["match"]["expr"]["expression"]]
    policy["inputs"]["rules"] = [r for r in policy["inputs"]["rules"] if "mcp-name" not in str(r)]
    (violation,) = [v for v in check_plan(plan) if v.rule == RULE]
    assert violation.urn == named(plan, URL_MAP, "lb")["urn"]
    assert violation.message.startswith("mcp.dev.example.com: tools/call render_video ends at backend service render")
    assert "the host refuses POST without Mcp-Method, the route's end does not" in violation.message
    assert "per-tool limit tools/call render_video 10/60s on the host, none at the route's end" in violation.message


def test_the_rule_fails_a_looser_limit_iap_or_a_foreign_origin_at_the_routes_end():
    plan = stateless()
    for rule in named(plan, SECURITY_POLICY, "render")["inputs"]["rules"]:
        if "mcp-name" in str(rule):
            rule["rateLimitOptions"]["rateLimitThreshold"]["count"] = 11  # 11 per 60 s: looser than 10
        if rule["action"] == "deny(403)" and "origin" in str(rule):
            rule["match"]["expr"]["expression"] = rule["match"]["expr"]["expression"].replace(
                "https://mcp", "https://evil\\\\.example\\\\.com|https://mcp")
    named(plan, BACKEND, "render")["inputs"]["iap"] = {"enabled": True}
    (violation,) = [v for v in check_plan(plan) if v.rule == RULE]
    assert "per-tool limit tools/call render_video 10/60s on the host, 11/60s at the route's end" in violation.message
    assert "IAP off on the host, on for nobody at the route's end" in violation.message
    assert "Origin check: the route's end admits https://evil.example.com, which the host refuses" in violation.message


def test_host_scoped_rules_apply_only_to_their_hosts():
    rule = {"priority": 1000, "action": "deny(403)", "match": {"expr": {"expression":
            "request.headers['host'].lower().matches('^(?:a\\\\.example\\\\.com)(?::443)?$') && "
            "has(request.headers['origin']) && !request.headers['origin'].matches('^(?:https://a\\\\.example\\\\.com)$')"}}}
    policy = {"type": SECURITY_POLICY, "name": "p", "urn": "u", "inputs": {"rules": [rule]}}
    assert edge_for_host(policy, "a.example.com").origins == {"https://a.example.com"}
    assert edge_for_host(policy, "A.Example.com").origins == {"https://a.example.com"}
    assert edge_for_host(policy, "b.example.com").origins is None


def test_the_policy_pack_runs_the_rule_over_applied_resources():
    import importlib.util
    from types import SimpleNamespace

    spec = importlib.util.spec_from_file_location("mcp_affinity_policy_pack_am", ROOT / "policy" / "__main__.py")
    pack = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pack)
    policy = next(p for p in pack.POLICIES if p.name == RULE)
    plan = stateless()
    named(plan, BACKEND, "render")["inputs"]["iap"] = {"enabled": True}
    resources = [SimpleNamespace(resource_type=r["type"], props=r["inputs"], urn=r["urn"], name=r["name"], parent=None,
                                 opts=SimpleNamespace(parent=None), provider=object()) for r in applied(plan)["resources"]]
    reported = []
    policy.validate(SimpleNamespace(resources=resources, get_config=lambda: {}),
                    lambda message, urn=None: reported.append((urn, message)))
    assert [urn for urn, _ in reported] == [named(plan, URL_MAP, "lb")["urn"]]
    assert "IAP off on the host, on for nobody at the route's end" in reported[0][1]


# --- the stack check ------------------------------------------------------------------------------

def test_the_stack_check_refuses_the_old_shards_example_naming_both_services_and_what_differs():
    stack = stack_file("cloud-run-shards")
    stack["config"]["mcp-affinity:services"]["tools"]["methodRoutes"] = {"calls": {"method": "tools/call",
                                                                                  "service": "typescript"}}
    error = plan_or_refusal(stack)
    assert isinstance(error, ConfigError)
    ((key, message),) = error.problems
    assert key == "mcp-affinity:services.tools.methodRoutes.calls"
    assert "to 'typescript'" in message
    assert "access differs: tools is iap (group:mcp-developers@example.com), typescript is iam " \
           "(serviceAccount:agents@my-mcp-project-dev.iam.gserviceaccount.com)" in message


def test_the_stack_check_refuses_the_old_stateless_example_naming_the_missing_limit():
    stack = stack_file("cloud-run-stateless")
    del stack["config"]["mcp-affinity:services"]["render"]["edge"]
    error = plan_or_refusal(stack)
    ((key, message),) = error.problems
    assert key == "mcp-affinity:services.tools.methodRoutes.render"
    assert "requireMethodHeader" in message and "methodLimits.render (tools/call render_video, 10/60s)" in message


def test_the_stack_check_refuses_a_mesh_method_route_to_a_service_with_other_callers():
    stack = stack_file("gke-stateless")
    stack["config"]["mcp-affinity:meshServices"]["render"]["access"] = {
        "mode": "iam", "members": ["serviceAccount:agent@my-mcp-project-dev.iam.gserviceaccount.com"]}
    error = plan_or_refusal(stack)
    ((key, message),) = error.problems
    assert key == "mcp-affinity:meshServices.tools.methodRoutes.render"
    assert "access differs: tools is public, render is iam" in message


def _edge(**values) -> EdgeArgs:
    return EdgeArgs.model_validate(values)


def test_an_edge_at_least_as_strict_passes_and_each_looser_setting_is_named():
    host = _edge(requireMethodHeader=True, rateLimit={"requests": 600},
                 methodLimits={"v": {"method": "tools/call", "name": "render_video", "requests": 10}})
    stricter = _edge(requireMethodHeader=True, rateLimit={"requests": 10, "intervalSeconds": 10},  # 1/s: stricter than 10/s
                     methodLimits={"all": {"method": "tools/call", "requests": 5}})
    origins = ["https://a.example.com"]
    assert edge_faults(host, origins, stricter, origins, "tools/call", "render_video") == []
    looser = _edge(rateLimit={"requests": 1200})
    faults = edge_faults(host, origins, looser, origins + ["https://b.example.com"], "tools/call", None)
    assert [f.split(" ")[0:3] for f in faults] == [["its", "Origin", "allowlist"], ["the", "host's", "service"],
                                                   ["its", "per-client", "limit"], ["the", "host's", "per-tool"]]
    # The load balancer's own hosts served with the same access are no foreign origin; another method's limit does not apply.
    assert edge_faults(host, origins, _edge(requireMethodHeader=True), origins + ["https://b.example.com"], "tools/list",
                       None, siblings={"https://b.example.com"}) == []


def test_access_must_be_identical_whatever_the_order_of_members():
    a = AccessArgs.model_validate({"mode": "iam", "members": ["user:a@example.com", "user:b@example.com"]})
    b = AccessArgs.model_validate({"mode": "iam", "members": ["user:b@example.com", "user:a@example.com"]})
    fewer = AccessArgs.model_validate({"mode": "iam", "members": ["user:a@example.com"]})
    assert route_faults("x", a, "y", b, None, (None, None), "tools/call", None) is None
    assert "access differs" in route_faults("x", a, "y", fewer, None, (None, None), "tools/call", None)
    edges = (EdgeArgs(), [], EdgeArgs(), [])
    assert "a policy of your own cannot be compared" in route_faults("x", a, "y", b, edges, ("own", None), "tools/call", None)
    assert route_faults("x", a, "y", b, edges, ("own", "own"), "tools/call", None) is None


def test_check_of_a_saved_plan_keeps_the_references_and_refuses_the_crossing(tmp_path):
    from typer.testing import CliRunner
    from mcp_affinity.cli.app import app

    plan = stateless()
    named(plan, BACKEND, "render")["inputs"]["iap"] = {"enabled": True}
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    result = CliRunner().invoke(app, ["check", str(path)])
    assert result.exit_code == 1
    assert f"[{RULE}] mcp.dev.example.com: tools/call render_video ends at backend service render" in result.output
    path.write_text(json.dumps({**plan, "resources": [{**plan["resources"][0], "references": ["x"]}]}))
    result = CliRunner().invoke(app, ["check", str(path)])
    assert result.exit_code == 2 and "references must map input paths to URNs" in result.output


def test_a_mesh_method_route_to_a_service_without_the_hosts_token_check_crosses():
    from mcp_affinity.mesh_access import token_policies
    from mcp_affinity.wire import VIRTUAL_SERVICE

    plan = json.loads(json.dumps(plan_example("gke-stateless").document()))
    assert [v for v in check_plan(plan) if v.rule == RULE] == []
    route = named(plan, VIRTUAL_SERVICE, "tools-route")
    namespace = route["inputs"]["spec"]["http"][-1]["route"][0]["destination"]["host"].split(".")[1]
    access = AccessArgs.model_validate({"mode": "iam", "members": ["user:ana@example.com"]})
    for kind, suffix, spec in token_policies(["mcp.dev.example.com"], access, 8080):  # tools now checks ID tokens
        plan["resources"].append({"urn": f"urn:pulumi:t::p::{kind}::{suffix}", "type": f"kubernetes:security.istio.io/v1:{kind}",
                                  "name": suffix, "inputs": {"metadata": {"namespace": namespace}, "spec": spec}})
    (violation,) = [v for v in check_plan(plan) if v.rule == RULE]
    assert violation.urn == route["urn"]
    assert violation.message.startswith("mcp.dev.example.com: tools/call render_video (mesh) ends at mesh service render")
    assert "mesh token check (required from accounts.google.com, https://accounts.google.com, callers ana@example.com) " \
           "on the host, (none) at the route's end" in violation.message


def test_the_rule_fails_a_route_whose_end_does_not_enforce_the_hosts_preconfigured_rules():
    plan = stateless()
    host_policy = named(plan, SECURITY_POLICY, "tools")
    host_policy["inputs"]["rules"].append({"priority": 5000, "action": "deny(403)", "preview": False, "match": {"expr": {
        "expression": "evaluatePreconfiguredWaf('sqli-v422-stable', {'sensitivity': 2})"}}})
    render = named(plan, SECURITY_POLICY, "render")["inputs"]["rules"]
    render[:] = [r for r in render if "cve-canary" not in str(r)]
    render.append({"priority": 5000, "action": "deny(403)", "preview": True, "match": {"expr": {
        "expression": "evaluatePreconfiguredWaf('sqli-v422-stable', {'sensitivity': 2})"}}})
    (violation,) = [v for v in check_plan(plan) if v.rule == RULE]
    assert "preconfigured rule sqli-v422-stable enforced (sensitivity 2) on the host, not enforced at the route's end" \
        in violation.message
    assert "preconfigured rule cve-canary enforced on the host, not enforced at the route's end" in violation.message
    render[-1]["preview"] = False
    render[-1]["match"]["expr"]["expression"] = "evaluatePreconfiguredWaf('sqli-v422-stable', {'sensitivity': 1})"
    (violation,) = [v for v in check_plan(plan) if v.rule == RULE]
    assert "sqli-v422-stable enforced (sensitivity 2) on the host, sqli-v422-stable enforced (sensitivity 1) at the " \
        "route's end" in violation.message


def test_a_host_enforcing_the_waf_or_log4j_refusal_asks_the_same_of_the_route_target():
    origins = ["https://a.example.com"]
    enforced = _edge(waf={"enabled": True, "preview": False, "sensitivity": 2, "ruleSets": ["sqli", "xss"]})
    assert edge_faults(enforced, origins, enforced, origins, "tools/call", None) == []
    stricter = _edge(waf={"enabled": True, "preview": False, "sensitivity": 3, "ruleSets": ["sqli", "xss", "rce"]})
    assert edge_faults(enforced, origins, stricter, origins, "tools/call", None) == []
    for target, missing in ((_edge(), "sqli, xss"), (_edge(waf={"enabled": True, "sensitivity": 2, "ruleSets": ["sqli", "xss"]}), "sqli, xss"),
                            (_edge(waf={"enabled": True, "preview": False, "sensitivity": 2, "ruleSets": ["sqli"]}), "xss"),
                            (_edge(waf={"enabled": True, "preview": False, "sensitivity": 1, "ruleSets": ["sqli", "xss"]}),
                             "that sensitivity")):
        assert edge_faults(enforced, origins, target, origins, "tools/call", None) == [
            f"the host's service enforces the WAF (sqli, xss, sensitivity 2); it does not enforce {missing}"]
    # A WAF in preview only logs: it asks nothing of the target.
    assert edge_faults(_edge(waf={"enabled": True}), origins, _edge(), origins, "tools/call", None) == []
    assert edge_faults(_edge(), origins, _edge(refuseJndiLookups=False), origins, "tools/call", None) == [
        "the host's service refuses Log4j lookups (refuseJndiLookups), it does not"]
