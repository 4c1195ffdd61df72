"""Who can call a service, and the Cloud Armor policy in front of it, on mocks.

Cloud Run: IAP on the backend service with its bindings; the invoker check with custom audiences;
the Cloud Armor rules (expressions, actions, keys, thresholds). GKE: IAP on the gateway's backend
service, host-scoped rules, and the gateway's token checks valid against the pinned Istio CRDs.
Every expression the package writes, in every stack and example, parses as CEL, stays within five
subexpressions and uses only attributes and functions the Cloud Armor rules language documents
(https://cloud.google.com/armor/docs/rules-language-reference); cel-python evaluates them on sample
requests.
"""

from __future__ import annotations

import re

import celpy
import pytest

import edge_eval

from conftest import ROOT, plan_example, plan_stack
from helpers import NETWORK, STORE, cluster_args, gke
from mcp_affinity import CloudRunMcpService, CloudRunMcpServiceArgs, GkeCluster, McpMeshService, McpMeshServiceArgs
from mcp_affinity.gateway_backend import MeshGatewayBackend, MeshGatewayBackendArgs
from mcp_affinity.security_policy import EdgePolicyArgs, EdgeScopeArgs, policy_rules
from schemas.istio_check import validate_object
from test_hostile_config import NS, mutate, problems

BACKEND = "gcp:compute/backendService:BackendService"
RUN = "gcp:cloudrunv2/service:Service"
RUN_IAM = "gcp:cloudrunv2/serviceIamMember:ServiceIamMember"
IAP_MEMBER = "gcp:iap/webBackendServiceIamMember:WebBackendServiceIamMember"
POLICY = "gcp:compute/securityPolicy:SecurityPolicy"
STACKS = ["dev", "staging", "prod"]
EXAMPLES = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in (ROOT / "examples").glob("Pulumi.*.yaml"))

# The rules language reference lists these attributes and functions.
DOCUMENTED_ATTRIBUTES = {"request.headers", "request.method", "request.path", "request.query", "request.scheme",
                         "origin.ip", "origin.region_code", "origin.asn"}
DOCUMENTED_FUNCTIONS = {"has", "matches", "startsWith", "endsWith", "contains", "lower", "upper", "int", "size",
                        "inIpRange", "evaluatePreconfiguredWaf", "evaluatePreconfiguredExpr", "base64Decode", "urlDecode"}
_STRING = re.compile(r"'(?:\\.|[^'\\])*'")


def service(access, hosts=("a.example.com",), **overrides):
    args = CloudRunMcpServiceArgs(prefix="mcp-t", project="my-proj", image="img:1", session_mode="stateless",
                                  access=access, **overrides)
    return lambda: CloudRunMcpService("tools", args, network=NETWORK, session_store=STORE, hosts=list(hosts))


def test_iap_on_the_backend_service_with_its_bindings_and_the_invoker_check_on(record):
    plan = record(service({"mode": "iap", "members": ["group:devs@example.com"],
                           "programmatic_clients": ["1234-abc.apps.googleusercontent.com"]}))
    backend = plan.get(BACKEND, "tools").inputs
    assert backend["iap"] == {"enabled": True}
    member = plan.get(IAP_MEMBER, "tools-iap-member0").inputs
    assert member == {"project": "my-proj", "webBackendService": "mcp-t-tools", "role": "roles/iap.httpsResourceAccessor",
                      "member": "group:devs@example.com"}
    agent = plan.get("gcp:projects/serviceIdentity:ServiceIdentity", "tools-iap-agent").inputs
    assert agent["service"] == "iap.googleapis.com"
    invokers = plan.by_type(RUN_IAM)
    assert sorted(i.inputs["location"] for i in invokers) == ["europe-west1", "us-central1"]
    assert {i.inputs["role"] for i in invokers} == {"roles/run.invoker"}
    assert {i.inputs["member"] for i in invokers} == {"serviceAccount:service-123@gcp-sa-iap.iam.gserviceaccount.com"}
    assert {r.inputs["invokerIamDisabled"] for r in plan.by_type(RUN)} == {False}
    settings = plan.get("gcp:iap/settings:Settings", "tools-iap").inputs
    assert settings["accessSettings"] == {"oauthSettings": {"programmaticClients": ["1234-abc.apps.googleusercontent.com"]}}
    assert settings["name"] == "projects/my-proj/iap_web/compute/services/mcp-t-tools"


def test_iam_keeps_the_invoker_check_on_with_custom_audiences_and_binds_the_members(record):
    plan = record(service({"mode": "iam", "members": ["serviceAccount:agent@p.iam.gserviceaccount.com"]},
                          hosts=["b.example.com", "a.example.com"]))
    runs = plan.by_type(RUN)
    assert {r.inputs["invokerIamDisabled"] for r in runs} == {False}
    assert all(r.inputs["customAudiences"] == ["https://a.example.com", "https://b.example.com"] for r in runs)
    invokers = plan.by_type(RUN_IAM)
    assert len(invokers) == 2 and {i.inputs["member"] for i in invokers} == {"serviceAccount:agent@p.iam.gserviceaccount.com"}
    assert "iap" not in plan.get(BACKEND, "tools").inputs and not plan.by_type(IAP_MEMBER)


@pytest.mark.parametrize("mode", ["oauth", "public"])
def test_oauth_and_public_turn_the_invoker_check_off_and_bind_nobody(record, mode):
    plan = record(service(mode))
    assert {r.inputs["invokerIamDisabled"] for r in plan.by_type(RUN)} == {True}
    assert all("customAudiences" not in r.inputs for r in plan.by_type(RUN))
    assert not plan.by_type(RUN_IAM) and not plan.by_type(IAP_MEMBER)


def test_iam_without_hosts_is_a_context_error():
    with pytest.raises(ValueError, match="custom audiences"):
        service({"mode": "iam", "members": ["user:a@example.com"]}, hosts=())()


def rules_by_description(plan) -> dict[str, dict]:
    return {r["description"]: r for r in plan.get(POLICY, "tools").inputs["rules"]}


def test_cloud_armor_policy_on_the_backend_with_origin_403_and_rate_limits_429(record):
    plan = record(service("public", edge={
        "rate_limit": {"requests": 100, "interval_seconds": 30}, "require_method_header": True,
        "method_limits": {"render": {"method": "tools/call", "name": "render_video", "requests": 5}},
        "waf": {"enabled": True}}))
    policy = plan.get(POLICY, "tools").inputs
    assert plan.get(BACKEND, "tools").inputs["securityPolicy"] == "tools-id"
    assert policy["type"] == "CLOUD_ARMOR" and policy["name"] == "mcp-t-tools-armor"
    assert policy["adaptiveProtectionConfig"] == {"layer7DdosDefenseConfig": {"enable": True}}
    assert policy["advancedOptionsConfig"] == {"jsonParsing": "STANDARD"}
    rules = rules_by_description(plan)
    origin = rules["Origin not allowed (MCP: 403 for invalid origins)"]
    assert origin["action"] == "deny(403)" and origin["priority"] == 1000
    assert origin["match"]["expr"]["expression"] == (
        "has(request.headers['origin']) && !request.headers['origin'].matches('^(?:https://a\\\\.example\\\\.com)$')")
    method = rules["POST without Mcp-Method (2026-07-28-only service)"]
    assert method["action"] == "deny(403)"
    assert method["match"]["expr"]["expression"] == "request.method == 'POST' && !has(request.headers['mcp-method'])"
    tool = rules["per-tool limit render"]
    assert tool["action"] == "throttle"
    assert tool["match"]["expr"]["expression"] == (
        "request.headers['mcp-method'] == 'tools/call' && request.headers['mcp-name'] == 'render_video'")
    assert tool["rateLimitOptions"] == {
        "conformAction": "allow", "exceedAction": "deny(429)", "rateLimitThreshold": {"count": 5, "intervalSec": 60},
        "enforceOnKeyConfigs": [{"enforceOnKeyType": "IP"},
                                {"enforceOnKeyType": "HTTP_HEADER", "enforceOnKeyName": "mcp-method"},
                                {"enforceOnKeyType": "HTTP_HEADER", "enforceOnKeyName": "mcp-name"}]}
    client = rules["per-client limit"]
    assert client["match"] == {"versionedExpr": "SRC_IPS_V1", "config": {"srcIpRanges": ["*"]}}
    assert client["rateLimitOptions"]["exceedAction"] == "deny(429)"
    assert client["rateLimitOptions"]["rateLimitThreshold"] == {"count": 100, "intervalSec": 30}
    assert client["rateLimitOptions"]["enforceOnKeyConfigs"] == [{"enforceOnKeyType": "IP"}]
    waf = rules["WAF sqli"]
    assert waf["preview"] is True and waf["action"] == "deny(403)"
    assert waf["match"]["expr"]["expression"] == "evaluatePreconfiguredWaf('sqli-v422-stable', {'sensitivity': 1})"
    # Log4j, the denials, then the specific throttles, the per-client one, the default allow last.
    order = sorted(policy["rules"], key=lambda r: r["priority"])
    assert [r["description"] for r in order][:2] == ["Log4j lookups (cve-canary, CVE-2021-44228)", origin["description"]]
    assert order[-2] == client and order[-1]["action"] == "allow" and order[-1]["priority"] == 2147483647


def test_own_policy_replaces_the_packages(record):
    plan = record(service("public", security_policy="projects/my-proj/global/securityPolicies/mine"))
    assert plan.get(BACKEND, "tools").inputs["securityPolicy"] == "projects/my-proj/global/securityPolicies/mine"
    assert not plan.by_type(POLICY)
    with pytest.raises(ValueError, match="leave edge out"):
        CloudRunMcpServiceArgs(prefix="p", image="i:1", session_mode="stateless", access="public",
                               security_policy="mine", edge={"waf": {"enabled": True}})


def test_oauth_metadata_is_exempt_from_the_origin_check(record):
    rules = rules_by_description(record(service("oauth")))
    assert rules["Origin not allowed (MCP: 403 for invalid origins)"]["match"]["expr"]["expression"].endswith(
        "&& !request.path.startsWith('/.well-known/oauth-protected-resource')")


# --- every expression, everywhere -------------------------------------------------------------

def all_plans():
    return [plan_stack(s) for s in STACKS] + [plan_example(e) for e in EXAMPLES]


def synthetic_rules() -> list[dict]:
    """A policy shared by two host-scoped services using every option."""
    busy = {"allowed_origins": [f"https://app{i}.example.com" for i in range(25)], "require_method_header": True,
            "method_limits": {"a": {"method": "tools/call", "name": "x.y-z", "requests": 1},
                              "b": {"method": "resources/read", "requests": 2}}, "waf": {"enabled": True}}
    return policy_rules(EdgePolicyArgs(prefix="p", scopes={
        "one": EdgeScopeArgs(edge=busy, hosts=["a.example.com", "b.example.com"], scoped=True, oauth_metadata=True),
        "two": EdgeScopeArgs(hosts=["c.example.com"], scoped=True)}))


def expressions() -> list[str]:
    found = [r["match"]["expr"]["expression"] for r in synthetic_rules() if "expr" in r["match"]]
    for plan in all_plans():
        for policy in plan.by_type(POLICY):
            found += [r["match"]["expr"]["expression"] for r in policy.inputs["rules"] if "expr" in r["match"]]
    return found


def test_every_backend_service_of_every_stack_and_example_has_a_security_policy():
    for plan in all_plans():
        backends = [b for b in plan.by_type(BACKEND) if not b.urn.endswith("::lb-nohost")]
        assert backends and all(b.inputs.get("securityPolicy") for b in backends), plan


def test_every_expression_parses_as_cel_within_the_rules_language():
    found = expressions()
    assert len(found) > 20
    environment = celpy.Environment()
    for expression in found:
        environment.compile(expression)  # raises on a syntax error
        code = _STRING.sub("''", expression)
        assert " in " not in code, expression
        assert len(re.findall(r"&&|\|\|", code)) + 1 <= 5, expression
        attributes = set(re.findall(r"\b((?:request|origin)\.\w+)", code))
        assert attributes <= DOCUMENTED_ATTRIBUTES, expression
        assert set(re.findall(r"\b([A-Za-z_]\w*)\s*\(", code)) <= DOCUMENTED_FUNCTIONS, expression
        assert re.findall(r"request\.headers\['([^']*)'\]", expression) == [
            h.lower() for h in re.findall(r"request\.headers\['([^']*)'\]", expression)]


def evaluate(expression: str, headers: dict, method: str = "POST", path: str = "/mcp") -> bool:
    return edge_eval.evaluate(expression, edge_eval.Request(headers, method, path))


def test_expressions_decide_as_intended_on_sample_requests():
    rules = {r["description"]: r["match"]["expr"]["expression"] for r in synthetic_rules()[:5]}
    origin = rules["Origin not allowed (MCP: 403 for invalid origins)"]
    host = {"host": "a.example.com"}
    assert evaluate(origin, {**host, "origin": "https://evil.example.net"})
    assert not evaluate(origin, {**host, "origin": "https://app7.example.com"})
    assert evaluate(origin, {**host, "origin": "https://app7.example.com.evil.net"})
    assert not evaluate(origin, host)  # no Origin: a non-browser client passes
    assert not evaluate(origin, {"host": "c.example.com", "origin": "https://evil.example.net"})  # another scope
    assert not evaluate(origin, {**host, "origin": "https://evil.example.net"}, method="GET",
                        path="/.well-known/oauth-protected-resource/x")
    assert evaluate(origin, {"host": "a.example.com:443", "origin": "https://evil.example.net"})
    method = rules["POST without Mcp-Method (2026-07-28-only service)"]
    assert evaluate(method, host) and not evaluate(method, {**host, "mcp-method": "tools/list"})
    assert not evaluate(method, host, method="GET")


# --- GKE ----------------------------------------------------------------------------------------

def mesh_service_args(name, access, hosts):
    return McpMeshServiceArgs(prefix="mcp-t", project="my-proj", image="img:1", session_mode="stateless",
                              hosts=hosts, access=access)


def test_mesh_token_checks_are_valid_istio_objects_scoped_to_their_service(record):
    iam = mesh_service_args("agents", {"mode": "iam", "members": ["serviceAccount:bot@p.iam.gserviceaccount.com"]},
                            ["agents.example.com"])
    jwt = {"mode": "oauth", "jwt": {"issuer": "https://auth.example.com", "jwks_uri": "https://auth.example.com/jwks"}}
    api = McpMeshServiceArgs(prefix="mcp-t", project="my-proj", image="img:1", session_mode="in-memory-sessions",
                             pinning="learned", hosts=["api.example.com"], access=jwt)
    plain = mesh_service_args("open", "oauth", ["open.example.com"])

    waypointed = mesh_service_args("waypointed", jwt, ["w.example.com"])

    def program():
        cluster, _, mesh = gke(services={"agents": iam, "api": api, "open": plain})
        for name, args in (("agents", iam), ("api", api), ("open", plain)):
            McpMeshService(name, args, cluster=cluster, mesh=mesh, session_store=STORE)
        _, _, ambient = gke({"data_plane": "ambient", "waypoint": True}, name="amb", services={"waypointed": waypointed})
        McpMeshService("waypointed", waypointed, cluster=cluster, mesh=ambient)

    plan = record(program)
    objects = {o.name: o.inputs for o in plan.resources if o.type in (
        "kubernetes:security.istio.io/v1:RequestAuthentication", "kubernetes:security.istio.io/v1:AuthorizationPolicy")
        and o.name.endswith(("-jwt", "-callers"))}
    assert sorted(objects) == ["agents-callers", "agents-jwt", "api-jwt", "waypointed-jwt"]
    for manifest in objects.values():
        manifest = {k: manifest[k] for k in ("apiVersion", "kind", "metadata", "spec")}
        assert validate_object(manifest) == [], manifest
    agents = objects["agents-jwt"]["spec"]
    assert agents["selector"] == {"matchLabels": {"app": "agents"}}
    assert {r["issuer"] for r in agents["jwtRules"]} == {"https://accounts.google.com", "accounts.google.com"}
    assert all(r["audiences"] == ["https://agents.example.com"] and r["forwardOriginalToken"] for r in agents["jwtRules"])
    deny = objects["agents-callers"]["spec"]
    assert deny["action"] == "DENY" and deny["selector"] == {"matchLabels": {"app": "agents"}}
    serving = [{"operation": {"ports": ["8080"]}}]  # never the pods' other TCP ports
    assert deny["rules"] == [
        {"from": [{"source": {"notRequestPrincipals": ["https://accounts.google.com/*", "accounts.google.com/*"]}}],
         "to": serving},
        {"to": serving, "when": [{"key": "request.auth.claims[email]", "notValues": ["bot@p.iam.gserviceaccount.com"]}]}]
    # oauth: the proxy in front validates tokens; nothing refuses a request without one (the server's 401).
    api_jwt = objects["api-jwt"]["spec"]
    assert api_jwt["selector"] == {"matchLabels": {"app": "api-pinning"}}
    assert api_jwt["jwtRules"] == [{"issuer": "https://auth.example.com", "jwksUri": "https://auth.example.com/jwks",
                                    "audiences": ["https://api.example.com"], "forwardOriginalToken": True}]
    assert objects["waypointed-jwt"]["spec"]["targetRefs"] == [
        {"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "waypoint"}]
    assert "selector" not in objects["waypointed-jwt"]["spec"]


def test_iam_on_gke_refuses_members_an_id_token_cannot_prove():
    with pytest.raises(ValueError, match="not a group"):
        mesh_service_args("x", {"mode": "iam", "members": ["group:g@example.com"]}, ["x.example.com"])


def test_gke_gateway_gets_iap_and_host_scoped_rules():
    plan = plan_example("gke-in-memory")
    backend = plan.get(BACKEND, "gateway").inputs
    assert backend["iap"] == {"enabled": True} and backend["securityPolicy"]
    assert plan.get(IAP_MEMBER, "gateway-iap-member0").inputs["member"] == "group:mcp-developers@example.com"
    rules = plan.get(POLICY, "gateway").inputs["rules"]
    scoped = [r for r in rules if "expr" in r["match"] and r["priority"] not in (900, 910)]
    assert scoped and all(r["match"]["expr"]["expression"].startswith(
        "request.headers['host'].lower().matches('^(?:legacy\\\\.dev\\\\.example\\\\.com)\\\\.?(?::443)?$')")
        for r in scoped)


def test_gateway_takes_your_own_policy_instead_of_the_packages(record):
    def program():
        cluster = GkeCluster("gke", cluster_args(), network=NETWORK)
        MeshGatewayBackend("gateway", MeshGatewayBackendArgs(prefix="mcp-t", security_policy="projects/my-proj/global/securityPolicies/own"),
                           network=NETWORK, cluster=cluster, edge_scopes={"notes": EdgeScopeArgs(hosts=["n.example.com"], scoped=True)})

    plan = record(program)
    assert plan.get("gcp:compute/backendService:BackendService", "gateway").inputs["securityPolicy"] == (
        "projects/my-proj/global/securityPolicies/own")
    assert plan.by_type("gcp:compute/securityPolicy:SecurityPolicy") == []


# --- configuration faults -----------------------------------------------------------------------

def test_bad_edge_and_access_settings_are_all_reported_under_their_keys():
    config = mutate(NS + "services.tools.access", {"mode": "iap"})
    config = {**config, NS + "services": {**config[NS + "services"], "search": {
        **config[NS + "services"]["search"], "access": {"mode": "iam", "members": ["bob@example.com"]},
        "edge": {"allowedOrigins": ["https://ok.example.com/path"], "rateLimit": {"requests": 0},
                 "methodLimits": {"x": {"method": "tools/explode", "requests": 1}}}}}}
    found = dict(problems(config))
    assert "or programmaticClients" in found[NS + "services.tools.access.members"]
    assert "not an IAM principal" in found[NS + "services.search.access.members.0"]
    assert "not an origin" in found[NS + "services.search.edge.allowedOrigins.0"]
    assert "greater than or equal to 1" in found[NS + "services.search.edge.rateLimit.requests"]
    assert "not an MCP request method" in found[NS + "services.search.edge.methodLimits.x.method"]


def test_access_is_required_with_no_default():
    config = mutate(NS + "services.tools.access", delete=True)
    assert (NS + "services.tools.access", "required, but missing") in problems(config)


@pytest.mark.parametrize("key", ["services.tools", "meshServices.notes"])
def test_public_in_staging_needs_the_acknowledgement(key):
    refused = problems(mutate(f"{NS}{key}.access", "public"))
    assert any(k == f"{NS}{key}.access" and "acknowledge: [unauthenticated]" in m for k, m in refused)
    config = mutate(f"{NS}{key}.access", "public")
    top, name = key.split(".")
    config[NS + top][name]["acknowledge"] = ["unauthenticated"]
    assert problems(config) == []


def test_iap_on_gke_must_be_the_same_for_every_mesh_service():
    config = mutate(NS + "meshServices.other", {"image": "i:1", "sessionMode": "stateless", "hosts": ["api.mcp.staging.example.com"],
                                                "access": {"mode": "iap", "members": ["user:a@example.com"]}})
    refused = dict(problems(config))
    assert "when one mesh service is iap, all must be iap" in refused[NS + "meshServices.notes.access"]


# --- plan and diff ------------------------------------------------------------------------------

def test_plan_shows_each_services_access_and_every_cloud_armor_rule():
    from mcp_affinity.cli.render import key_settings, plain_text, summary, tree

    plan = plan_stack("staging")
    text = plain_text(tree(plan)) + "\n".join(summary(plan))
    assert "tools: iam (serviceAccount:agents@my-mcp-project-staging.iam.gserviceaccount.com)" in text
    assert "search: oauth" in text and "notes: oauth (jwt from https://auth.example.com)" in text
    policy = plan.get(POLICY, "search")
    lines = key_settings(policy.type, policy.inputs)
    assert "rules[1099]=throttle 300/60s per IP else deny(429) when [*]" in lines
    assert ("rules[1050]=throttle 20/60s per IP+mcp-method+mcp-name else deny(429) when "
            "request.headers['mcp-method'] == 'tools/call' && request.headers['mcp-name'] == 'deep_search'") in lines
    assert any(line.startswith("rules[1000]=deny(403) when has(request.headers['origin'])") for line in lines)
    assert "customAudiences=[https://tools.mcp.staging.example.com]" in text


def test_topology_shows_iap_cloud_armor_and_the_404_backend():
    from mcp_affinity.cli.mermaid import to_mermaid

    text = to_mermaid(plan_stack("dev").document())
    assert 'be_tools["Backend mcp-dev-tools<br/>IAP, Cloud Armor<br/>no LB affinity"]' in text
    assert 'be_lb_nohost["Backend mcp-dev-lb-nohost<br/>unknown hosts: 404 at the load balancer"]' in text


def test_diff_names_the_cloud_armor_rule_that_changed():
    import copy

    from mcp_affinity.cli.diff import diff_plans, to_text
    from mcp_affinity.cli.plan_file import validate

    from conftest import plan_document

    base = validate(plan_document("staging"))
    head = copy.deepcopy(base)
    policy = next(r for r in head["resources"] if r["type"] == POLICY and r["name"] == "search")
    rule = next(r for r in policy["inputs"]["rules"] if r["priority"] == 1099)
    rule["rateLimitOptions"]["rateLimitThreshold"]["count"] = 100
    text = to_text(diff_plans(base, head))
    assert "rules[1099].rateLimitOptions.rateLimitThreshold.count: 300 -> 100" in text


def test_staging_routes_the_metadata_of_its_path_prefixed_oauth_service():
    plan = plan_stack("staging", known=True)
    url_map = plan.get("gcp:compute/uRLMap:URLMap", "lb").inputs
    paths = next(m for m in url_map["pathMatchers"] if m["name"] == "paths")
    search = plan.get(BACKEND, "search").inputs["name"]
    routed = {p: r["service"] for r in paths["pathRules"] for p in r["paths"]}
    assert routed["/.well-known/oauth-protected-resource/search"] == "search-id"
    assert routed["/.well-known/oauth-protected-resource"] == "search-id" and search == "mcp-stg-search"
    assert url_map["defaultService"] == "lb-nohost-id"


def test_iap_needs_its_api_listed():
    assert "iap.googleapis.com" in plan_stack("dev").outputs["requiredApis"]
    assert "iap.googleapis.com" not in plan_stack("staging").outputs["requiredApis"]


def test_access_and_the_edge_policy_reach_every_session_shard():
    plan = plan_example("cloud-run-shards")
    backends = {r.name: r.inputs for r in plan.by_type(BACKEND) if r.name != "lb-nohost"}
    tools = sorted(n for n in backends if n.startswith("tools-"))
    assert len(tools) == 6 and all(backends[n]["iap"] == {"enabled": True} for n in tools)
    assert all("iap" not in b for n, b in backends.items() if n.startswith("typescript-"))
    # One policy per service, on each of its shards' backend services.
    assert sorted(r.inputs["name"] for r in plan.by_type(POLICY)) == ["mcp-ex6-tools-armor", "mcp-ex6-typescript-armor"]
    assert all(b.get("securityPolicy") for b in backends.values())
    assert sorted(r.name for r in plan.by_type(IAP_MEMBER)) == [f"{n}-iap-member0" for n in tools]
    invokers = {r.name: r.inputs["member"] for r in plan.by_type(RUN_IAM)}
    # The invoker check is per Cloud Run service (one per region and index), IAP per backend (per shard key).
    assert {n for n in invokers if n.endswith("-invoker-iap-agent")} == {
        f"{n.removesuffix('-g0')}-invoker-iap-agent" for n in tools}
    assert [invokers[f"typescript-europe-west1-s{i}-invoker-member0"] for i in (0, 1)] == [
        "serviceAccount:agents@my-mcp-project-dev.iam.gserviceaccount.com"] * 2
    shards = [r.inputs for r in plan.by_type(RUN)]
    assert all(s["invokerIamDisabled"] is False for s in shards)
    assert {tuple(s.get("customAudiences") or ()) for s in shards if s["name"].startswith("mcp-ex6-typescript")} == {
        ("https://ts.dev.example.com",)}


def test_a_public_sharded_service_may_acknowledge_unauthenticated():
    shards = dict(prefix="mcp-t", image="img:1", session_mode="in-memory-sessions", pinning="shards", shards=2,
                  access="public")
    assert CloudRunMcpServiceArgs(**shards, acknowledge=["unauthenticated"]).acknowledge == ["unauthenticated"]
    with pytest.raises(ValueError, match="nothing to accept but unauthenticated"):
        CloudRunMcpServiceArgs(**shards, acknowledge=["cookie-clients-only"])


def test_every_access_fault_is_reported_at_once_under_its_key():
    from mcp_affinity import AccessArgs
    from mcp_affinity.errors import SettingsError

    with pytest.raises(SettingsError) as refused:
        AccessArgs(mode="public", members=["user:a@example.com"], programmatic_clients=["1-a.apps.googleusercontent.com"],
                   jwt={"issuer": "https://auth.example.com", "jwks_uri": "https://auth.example.com/jwks"})
    assert sorted(path for path, _ in refused.value.problems) == ["jwt", "members", "programmaticClients"]
