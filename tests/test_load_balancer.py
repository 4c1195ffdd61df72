"""GlobalHttpsLoadBalancer on mocks: certificates, routing by host, path and MCP method, TLS, 443 and 80."""

from __future__ import annotations

import pytest
from mcp_affinity.errors import SettingsError

from mcp_affinity import GlobalHttpsLoadBalancer, GlobalHttpsLoadBalancerArgs
from mcp_affinity.affinity import MODERN_VERSIONS

URLMAP = "gcp:compute/uRLMap:URLMap"
RULE = "gcp:compute/globalForwardingRule:GlobalForwardingRule"
CERT = "gcp:compute/managedSslCertificate:ManagedSslCertificate"
BACKENDS = {"a": "bs-a", "b": "bs-b", "heavy": "bs-heavy"}


def make(**overrides) -> GlobalHttpsLoadBalancerArgs:
    values = dict(prefix="mcp-t", certificates={"main": ["a.example.com", "b.example.com"]},
                  routes={"a": {"hosts": ["a.example.com"]}, "b": {"path_prefixes": ["/b"]}})
    return GlobalHttpsLoadBalancerArgs(**{**values, **overrides})


def lb(args=None, name="lb"):
    return GlobalHttpsLoadBalancer(name, args or make(), backends=BACKENDS)


def test_routes_by_host_and_by_path(record):
    url_map = record(lb).get(URLMAP, "lb").inputs
    assert url_map["name"] == "mcp-t-lb-urlmap"
    # Path prefixes serve on the certificate domains no route claims, never on "*" (unknown hosts).
    assert url_map["hostRules"] == [{"hosts": ["a.example.com"], "pathMatcher": "a"},
                                    {"hosts": ["b.example.com"], "pathMatcher": "paths"}]
    paths = next(m for m in url_map["pathMatchers"] if m["name"] == "paths")
    assert paths["pathRules"] == [{"paths": ["/b", "/b/*"], "service": "bs-b"}]


def test_unknown_hosts_and_paths_end_at_the_load_balancer_with_404(record):
    plan = record(lb)
    url_map = plan.get(URLMAP, "lb").inputs
    placeholder = plan.get("gcp:compute/backendService:BackendService", "lb-nohost").inputs
    assert placeholder["name"] == "mcp-t-lb-nohost" and "backends" not in placeholder
    abort = {"faultInjectionPolicy": {"abort": {"httpStatus": 404, "percentage": 100}}}
    assert url_map["defaultService"] == "lb-nohost-id" and url_map["defaultRouteAction"] == abort
    paths = next(m for m in url_map["pathMatchers"] if m["name"] == "paths")
    assert paths["defaultService"] == "lb-nohost-id" and paths["defaultRouteAction"] == abort
    assert set(BACKENDS.values()).isdisjoint({url_map["defaultService"], paths["defaultService"]})
    assert all("*" not in rule["hosts"] for rule in url_map["hostRules"])


def test_a_default_route_named_on_purpose_gets_unknown_hosts(record):
    plan = record(lambda: lb(make(default_route="a")))
    url_map = plan.get(URLMAP, "lb").inputs
    assert url_map["defaultService"] == "bs-a" and "defaultRouteAction" not in url_map
    assert not plan.by_type("gcp:compute/backendService:BackendService")


def test_oauth_metadata_urls_of_a_path_prefixed_service_reach_it(record):
    url_map = record(lambda: lb(make(oauth_routes=["b"]))).get(URLMAP, "lb").inputs
    paths = next(m for m in url_map["pathMatchers"] if m["name"] == "paths")
    assert paths["pathRules"] == [
        {"paths": ["/.well-known/oauth-protected-resource/b", "/.well-known/oauth-protected-resource/b/*"],
         "service": "bs-b"},
        {"paths": ["/.well-known/oauth-protected-resource"], "service": "bs-b"},
        {"paths": ["/b", "/b/*"], "service": "bs-b"}]


def test_method_routes_match_mcp_method_and_name_headers_most_specific_first(record):
    args = make(routes={"a": {"hosts": ["a.example.com"], "method_routes": {
        "all-calls": {"method": "tools/call", "service": "b"},
        "render": {"method": "tools/call", "name": "render_video", "service": "heavy"}}},
        "b": {"path_prefixes": ["/b"]}, "heavy": {}}, default_route="a")
    matcher = next(m for m in record(lambda: lb(args)).get(URLMAP, "lb").inputs["pathMatchers"] if m["name"] == "a")
    assert "pathRules" not in matcher and matcher["defaultService"] == "bs-a"
    first, second = matcher["routeRules"]
    modern = {"headerName": "MCP-Protocol-Version", "regexMatch": MODERN_VERSIONS}
    assert first == {"priority": 1, "service": "bs-heavy", "matchRules": [{"prefixMatch": "/", "headerMatches": [
        {"headerName": "Mcp-Method", "exactMatch": "tools/call"}, {"headerName": "Mcp-Name", "exactMatch": "render_video"},
        modern]}]}
    assert second["priority"] == 2 and second["service"] == "bs-b"
    assert second["matchRules"][0]["headerMatches"] == [{"headerName": "Mcp-Method", "exactMatch": "tools/call"}, modern]


def test_https_on_443_and_redirect_on_80(record):
    plan = record(lb)
    rules = {r.inputs["portRange"]: r.inputs for r in plan.by_type(RULE)}
    assert sorted(rules) == ["443", "80"]
    assert {r["loadBalancingScheme"] for r in rules.values()} == {"EXTERNAL_MANAGED"}
    assert {r["name"] for r in rules.values()} == {"mcp-t-lb-443", "mcp-t-lb-80"}
    assert plan.get(URLMAP, "lb-redirect").inputs["defaultUrlRedirect"]["httpsRedirect"] is True
    assert plan.get("gcp:compute/sSLPolicy:SSLPolicy", "lb").inputs["minTlsVersion"] == "TLS_1_2"


def test_certificate_name_changes_with_domains_so_the_new_one_is_created_first(record):
    cert = record(lb).get(CERT, "lb-main").inputs
    assert cert["managed"]["domains"] == ["a.example.com", "b.example.com"]
    assert cert["name"].startswith("mcp-t-lb-main-")
    other = make(certificates={"main": ["a.example.com", "c.example.com"]}, routes={"a": {"hosts": ["a.example.com"]}})
    assert other.names("lb")["cert-main"].value != cert["name"]


@pytest.mark.parametrize("overrides,message", [
    ({"certificates": {"main": ["not a domain"]}}, "not a lowercase domain"),
    ({"certificates": {"main": ["a.example.com\n"]}}, "not a lowercase domain"),
    ({"certificates": {}}, "at least 1 item"),
    ({"default_route": "zzz"}, "not a route"),
    ({"routes": {"a": {"hosts": ["c.example.com"]}}}, "on no certificate"),
    ({"routes": {"a": {"hosts": ["a.example.com"]}, "b": {"hosts": ["a.example.com"]}}}, "also on route a"),
    ({"routes": {"a": {"path_prefixes": ["/x"]}, "b": {"path_prefixes": ["/x"]}}}, "also on route a"),
    ({"routes": {"a": {"hosts": ["a.example.com"]}, "b": {}, "c": {}}}, "name it in defaultRoute on purpose"),
    ({"routes": {"a": {"hosts": ["a.example.com"]}, "b": {}}}, "name it in defaultRoute on purpose"),
    ({"certificates": {"main": ["a.example.com"]}, "routes": {"a": {"hosts": ["a.example.com"]}, "b": {"path_prefixes": ["/b"]}}},
     "no route claims"),
    ({"oauth_routes": ["zzz"]}, "'zzz' is not a route"),
    ({"routes": {"a": {}, "b": {}}, "default_route": "a"}, "nothing would reach it"),
    ({"routes": {"a": {"path_prefixes": ["/x/"]}}}, "no trailing"),
    ({"routes": {"a": {"hosts": ["a.example.com"], "method_routes": {"m": {"method": "tools/call", "service": "z"}}}}},
     "not another route"),
    ({"routes": {"a": {"method_routes": {"m": {"method": "tools/call", "service": "a"}}}}}, "need hosts"),
    ({"routes": {"a": {"hosts": ["a.example.com"], "method_routes": {"m": {"method": "Tools Call", "service": "a"}}}}},
     "not an MCP method"),
])
def test_bad_load_balancer_settings_are_refused(overrides, message):
    with pytest.raises(SettingsError, match=message):
        make(**overrides)


def test_a_route_without_backend_is_a_context_error():
    with pytest.raises(ValueError, match="no backend service for routes"):
        GlobalHttpsLoadBalancer("lb", make(), backends={"a": "bs-a"})
