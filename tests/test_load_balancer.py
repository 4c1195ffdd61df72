"""GlobalHttpsLoadBalancer on mocks: certificates, routing, TLS policy, ports 443 and 80."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mcp_affinity import GlobalHttpsLoadBalancer, GlobalHttpsLoadBalancerArgs, RouteArgs
from mcp_affinity.load_balancer import certificate_name

URLMAP = "gcp:compute/uRLMap:URLMap"
RULE = "gcp:compute/globalForwardingRule:GlobalForwardingRule"


def make(**overrides) -> GlobalHttpsLoadBalancerArgs:
    values = dict(prefix="mcp-t", certificates={"main": ["a.example.com", "b.example.com"]},
                  routes={"a": RouteArgs(backend_service="bs-a", hosts=["a.example.com"]),
                          "b": RouteArgs(backend_service="bs-b", path_prefixes=["/b"])})
    return GlobalHttpsLoadBalancerArgs(**{**values, **overrides})


def test_routes_by_host_and_by_path(record):
    plan = record(lambda: GlobalHttpsLoadBalancer("lb", make()))
    url_map = plan.get(URLMAP, "lb").inputs
    assert url_map["defaultService"] == "bs-a"
    assert url_map["hostRules"] == [{"hosts": ["a.example.com"], "pathMatcher": "a"},
                                    {"hosts": ["*"], "pathMatcher": "paths"}]
    paths = next(m for m in url_map["pathMatchers"] if m["name"] == "paths")
    assert paths["pathRules"] == [{"paths": ["/b", "/b/*"], "service": "bs-b"}]


def test_https_on_443_and_redirect_on_80(record):
    plan = record(lambda: GlobalHttpsLoadBalancer("lb", make()))
    rules = {r.inputs["portRange"]: r.inputs for r in plan.by_type(RULE)}
    assert sorted(rules) == ["443", "80"]
    assert {r["loadBalancingScheme"] for r in rules.values()} == {"EXTERNAL_MANAGED"}
    assert {r["ipAddress"] for r in rules.values()} == {"203.0.113.10"}
    redirect = plan.get(URLMAP, "lb-redirect").inputs["defaultUrlRedirect"]
    assert redirect["httpsRedirect"] is True
    assert plan.get("gcp:compute/sSLPolicy:SSLPolicy", "lb").inputs["minTlsVersion"] == "TLS_1_2"


def test_certificate_name_changes_with_domains_so_the_new_one_is_created_first(record):
    plan = record(lambda: GlobalHttpsLoadBalancer("lb", make()))
    cert = plan.get("gcp:compute/managedSslCertificate:ManagedSslCertificate", "lb-main").inputs
    assert cert["managed"]["domains"] == ["a.example.com", "b.example.com"]
    assert cert["name"] == certificate_name("mcp-t", "main", ["b.example.com", "a.example.com"])
    assert certificate_name("mcp-t", "main", ["a.example.com"]) != cert["name"]
    # Not delete-before-replace: Pulumi's default creates the replacement first.
    proxy = plan.get("gcp:compute/targetHttpsProxy:TargetHttpsProxy", "lb").inputs
    assert proxy["sslCertificates"] == ["lb-main-id"]


@pytest.mark.parametrize("overrides,message", [
    ({"certificates": {"main": ["not a domain"]}}, "not a domain"),
    ({"certificates": {}}, "at least one certificate"),
    ({"default_route": "zzz"}, "not a route key"),
])
def test_bad_load_balancer_args_are_refused(overrides, message):
    with pytest.raises(ValidationError, match=message):
        make(**overrides)
