"""Every validator in front of the edge, with bad input at its edges, and the key lines of the
generated proxy configurations (issue 19: tests that kill the mutants that survived).

A value that reaches a Cloud Armor expression, an IAM binding or an HAProxy configuration is checked
before anything is planned; each case below is one side of a boundary (the longest accepted, the
first refused, a quote, a missing part).
"""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from mcp_affinity import cloud_run_shards as shards
from mcp_affinity import pinning_proxy
from mcp_affinity.access import AccessArgs, ClientId, HttpsUrl, JwtArgs, Member
from mcp_affinity.pinning_proxy import ProxySizing
from mcp_affinity.security_policy import (EdgeArgs, MethodLimitArgs, Origin, RateLimitArgs, SecurityPolicyId, WafArgs,
                                          policy_rules, EdgePolicyArgs, EdgeScopeArgs)


def paths(error: Exception) -> list[str]:
    """The dotted keys of a refusal (SettingsError ``problems`` or a ValidationError's locations),
    compared without case or underscores (field names and aliases alike)."""
    found = [p for p, _ in error.problems] if hasattr(error, "problems") else [
        ".".join(str(part) for part in e["loc"]) for e in error.errors()]
    return sorted(p.replace("_", "").lower() for p in found)


def accepts(annotation, value) -> bool:
    try:
        TypeAdapter(annotation).validate_python(value)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("value", [
    "user:a@example.com", "group:g.devs@example.co.uk", "serviceAccount:bot@p-1.iam.gserviceaccount.com",
    "domain:example.com", "principal://iam.googleapis.com/projects/1/x", "principalSet://goog/public:all"])
def test_members_accepted(value):
    assert accepts(Member, value)


@pytest.mark.parametrize("value", [
    "allUsers", "allAuthenticatedUsers", "principal://", "principalSet://", "abcdefghijklmnopqrstu",
    "bob@example.com", "user:bob", "user:bob@example", "group:", "serviceAccount:a@b.c", "domain:Example.com",
    "domain:example", "owner:a@example.com", "user:a@example.com\n", "user:a b@example.com", ""])
def test_members_refused(value):
    assert not accepts(Member, value)


@pytest.mark.parametrize("value, ok", [
    ("1234-abc.apps.googleusercontent.com", True), ("1-a.apps.googleusercontent.com", True),
    ("abc-1234.apps.googleusercontent.com", False), ("1234-ABC.apps.googleusercontent.com", False),
    ("1234-abc.apps.googleusercontent.com.evil.net", False), ("1234abc.apps.googleusercontent.com", False),
    ("1234-abc", False), ("", False)])
def test_client_ids(value, ok):
    assert accepts(ClientId, value) is ok


@pytest.mark.parametrize("value, ok", [
    ("https://auth.example.com", True), ("https://auth.example.com:8443/a/jwks.json", True),
    ("http://auth.example.com", False), ("https://AUTH.example.com", False), ("https://auth.example.com:123456", False),
    ("https://auth.example.com/'x", False), ("https://auth.example.com/a b", False), ("https://", False),
    ("auth.example.com", False), ("https://auth.example.com?x=1", False)])
def test_https_urls(value, ok):
    assert accepts(HttpsUrl, value) is ok


def test_jwt_and_access_refuse_bad_urls_clients_and_members_under_their_keys():
    with pytest.raises(ValueError) as refused:
        JwtArgs(issuer="http://auth.example.com", jwks_uri="https://auth.example.com/jwks", audiences=["ftp://x"])
    assert paths(refused.value) == ["audiences.0", "issuer"]
    with pytest.raises(ValueError) as refused:
        AccessArgs(mode="iap", members=["abcdefghijklmnopqrstu"], programmatic_clients=["x.apps.googleusercontent.com"])
    assert paths(refused.value) == ["members.0", "programmaticclients.0"]


@pytest.mark.parametrize("access, keys", [
    ({"mode": "iap"}, [("members",)]),
    ({"mode": "iam"}, [("members",)]),
    ({"mode": "oauth", "members": ["user:a@example.com"]}, [("members",)]),
    ({"mode": "public", "members": ["user:a@example.com"]}, [("members",)]),
    ({"mode": "iam", "members": ["user:a@example.com"], "programmatic_clients": ["1-a.apps.googleusercontent.com"]},
     [("programmaticClients",)]),
    ({"mode": "iap", "members": ["user:a@example.com"],
      "jwt": {"issuer": "https://a.example.com", "jwks_uri": "https://a.example.com/k"}}, [("jwt",)]),
])
def test_each_mode_refuses_what_it_does_not_use(access, keys):
    with pytest.raises(ValueError) as refused:
        AccessArgs(**access)
    assert paths(refused.value) == sorted(".".join(k).replace("_", "").lower() for k in keys)


def test_each_mode_accepts_what_it_uses():
    assert AccessArgs(mode="iap", programmatic_clients=["1-a.apps.googleusercontent.com"]).summary() == (
        "iap (client 1-a.apps.googleusercontent.com)")
    assert AccessArgs.model_validate("public").marks(["unauthenticated"]) == {"mcp-access": "public", "mcp-ack": "unauthenticated"}
    assert AccessArgs.model_validate("public").marks([]) == {"mcp-access": "public"}
    assert AccessArgs(mode="oauth", jwt={"issuer": "https://a.example.com", "jwks_uri": "https://a.example.com/k"}).summary() == (
        "oauth (jwt from https://a.example.com)")


@pytest.mark.parametrize("value, ok", [
    ("https://app.example.com", True), ("http://localhost:3000", True), ("https://a.b:65535", True),
    ("https://app.example.com/", False), ("HTTPS://app.example.com", False), ("https://App.example.com", False),
    ("https://app.example.com:123456", False), ("https://-app.example.com", False), ("https://app.example.com-", False),
    ("https://app.example.com'", False), ("null", False), ("ftp://app.example.com", False)])
def test_origins(value, ok):
    assert accepts(Origin, value) is ok


@pytest.mark.parametrize("name, ok", [
    ("render_video", True), ("a/b.c-d", True), ("x" * 128, True), ("x" * 129, False), ("", False), ("x'y", False),
    ("x y", False), ("x\\y", False), ('x"y', False), ("x)y", False)])
def test_mcp_names_that_reach_a_rule_expression(name, ok):
    try:
        MethodLimitArgs(method="tools/call", name=name, requests=1)
    except ValueError:
        assert not ok
    else:
        assert ok
        assert "'" not in name and "\\" not in name


@pytest.mark.parametrize("value, ok", [
    ("mine", True), ("projects/my-proj/global/securityPolicies/mine", True), ("Mine", False),
    ("projects/x/global/securityPolicies/mine", False), ("projects/my-proj/global/securityPolicies/", False),
    ("mine-", False), ("a" * 63, True), ("a" * 64, False)])
def test_security_policy_ids(value, ok):
    assert accepts(SecurityPolicyId, value) is ok


def test_rate_limits_waf_and_origin_counts_at_their_bounds():
    assert RateLimitArgs(requests=1).interval_seconds == 60
    assert RateLimitArgs(requests=1_000_000, interval_seconds=3600).requests == 1_000_000
    for bad in ({"requests": 0}, {"requests": 1_000_001}, {"requests": 1, "interval_seconds": 61},
                {"requests": 1, "interval_seconds": 0}):
        with pytest.raises(ValueError):
            RateLimitArgs(**bad)
    assert WafArgs(sensitivity=4).sensitivity == 4 and WafArgs().rule_sets == ["sqli", "xss", "lfi", "rfi", "rce"]
    assert WafArgs().preview is True and WafArgs().enabled is False
    for bad in ({"sensitivity": 0}, {"sensitivity": 5}, {"rule_sets": []}, {"rule_sets": ["cve-canary"]}):
        with pytest.raises(ValueError):
            WafArgs(**bad)
    origins = [f"https://a{i}.example.com" for i in range(25)]
    assert len(EdgeArgs(allowed_origins=origins).origins([])) == 25
    with pytest.raises(ValueError):
        EdgeArgs(allowed_origins=[*origins, "https://b.example.com"])
    assert EdgeArgs().origins(["b.example.com", "a.example.com"]) == ["https://a.example.com", "https://b.example.com"]
    assert EdgeArgs(allowed_origins=[]).origins(["a.example.com"]) == []


def test_the_waf_rules_as_planned():
    planned = policy_rules(EdgePolicyArgs(prefix="p", scopes={"a": EdgeScopeArgs(
        edge={"waf": {"enabled": True, "preview": False, "sensitivity": 2, "rule_sets": ["sqli", "java"]}})}))
    waf = [r for r in planned if r["description"].startswith("WAF")]
    assert [(r["priority"], r["preview"], r["match"]["expr"]["expression"]) for r in waf] == [
        (1010, False, "evaluatePreconfiguredWaf('sqli-v422-stable', {'sensitivity': 2})"),
        (1011, False, "evaluatePreconfiguredWaf('java-v422-stable', {'sensitivity': 2})")]
    assert all(r["action"] == "deny(403)" for r in waf)


# --- the generated proxy configurations ---------------------------------------------------------------

def sections(config: str) -> dict[str, list[str]]:
    """HAProxy sections: header line -> its lines, stripped, blank lines dropped."""
    found: dict[str, list[str]] = {}
    current = None
    for line in config.splitlines():
        if line and not line.startswith(" "):
            current = line
            found[current] = []
        elif line.strip():
            found[current].append(line.strip())
    return found


def test_the_shard_ingress_prefixes_responses_strips_requests_and_refuses_other_shards():
    config = sections(shards.ingress_config(header="Mcp-Session-Id", listen_port=8888, server_port=8080,
                                            timeout_seconds=3600, max_connections=256))
    key_lines = [
        "bind :8888",
        "acl has_session req.hdr_cnt(Mcp-Session-Id) gt 0",
        'acl own_session req.hdr(Mcp-Session-Id) -m beg "${MCP_SHARD_KEY}."',
        "http-request deny deny_status 400 if { req.hdr_cnt(Mcp-Session-Id) gt 1 }",
        "http-request return status 404 content-type application/json string "
        "'{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32001,\"message\":\"Session not found\"}}' "
        "if has_session !own_session",
        "http-request replace-header Mcp-Session-Id ^[^.]+[.](.*)$ \\1",
        'http-response set-header Mcp-Session-Id "${MCP_SHARD_KEY}.%[res.hdr(Mcp-Session-Id)]" '
        "if { res.hdr_cnt(Mcp-Session-Id) gt 0 }",
        "default_backend server"]
    frontend = config["frontend shard"]
    assert all(line in frontend for line in key_lines), [line for line in key_lines if line not in frontend]
    assert [frontend.index(line) for line in key_lines] == sorted(frontend.index(line) for line in key_lines)
    assert config["backend server"] == ["server mcp 127.0.0.1:8080"]
    assert "maxconn 256" in config["global"]
    assert [line for line in config["defaults"] if line.startswith(("mode", "timeout"))] == [
        "mode http", "timeout connect 5s", "timeout client 3600s", "timeout server 3600s", "timeout tunnel 3600s"]


def proxy(replicas: int) -> dict[str, list[str]]:
    return sections(pinning_proxy.haproxy_config(
        name="notes-pinning", namespace="mcp-notes", pods_service="notes-pods", peers_service="notes-pinning-peers",
        replicas=replicas, header="Mcp-Session-Id", port=8080, max_servers=10, stream_timeout_seconds=600,
        session_idle_seconds=900, sizing=ProxySizing(50_000, 1000)))


def test_the_pinning_proxy_hands_an_unknown_session_over_once_and_strips_the_hop_header():
    config = proxy(2)
    peers = "notes-pinning-peers.mcp-notes.svc.cluster.local"
    assert config["frontend mcp"] == [
        "bind :8080",
        "use_backend handover if { req.hdr(Mcp-Session-Id) -m found } !{ req.hdr(Mcp-Session-Id),sha1,in_table(replicas) } "
        "!{ req.hdr(X-Mcp-Pinning-Hop) -m found }",
        "default_backend replicas"]
    assert config["backend handover"] == [
        "balance roundrobin", "retry-on 404", "option http-buffer-request", "retries 1",
        "http-request set-header X-Mcp-Pinning-Hop 1",
        f"server notes-pinning-0 notes-pinning-0.{peers}:8080 resolvers kubedns init-addr none",
        f"server notes-pinning-1 notes-pinning-1.{peers}:8080 resolvers kubedns init-addr none"]
    assert config["backend replicas"] == [
        "balance roundrobin", "option persist", "http-request del-header X-Mcp-Pinning-Hop",
        "stick-table type binary len 20 size 50000 expire 900s srvkey addr peers pinning",
        "stick match req.hdr(Mcp-Session-Id),sha1", "stick store-response res.hdr(Mcp-Session-Id),sha1",
        "server-template mcp 1-10 notes-pods.mcp-notes.svc.cluster.local:8080 resolvers kubedns init-addr none"]
    assert config["peers pinning"] == [f"peer notes-pinning-{i} notes-pinning-{i}.{peers}:10000" for i in (0, 1)]
    assert config["frontend health"] == ["bind :8404", "monitor-uri /healthz", "monitor fail if { nbsrv(replicas) lt 1 }",
                                         "http-request use-service prometheus-exporter if { path /metrics }"]
    assert config["resolvers kubedns"] == ['nameserver udp "${DNS_SERVER}":53', 'nameserver tcp tcp@"${DNS_SERVER}":53',
                                           "accepted_payload_size 65535", "hold valid 5s"]
    assert "option redispatch 1" in config["defaults"] and "default-server check inter 2s fall 2 rise 2" in config["defaults"]
    assert config["global"] == ["log stdout format raw local0 info", "maxconn 1000", "ulimit-n 2064"]
    assert "timeout http-request 10s" in config["defaults"] and "timeout http-keep-alive 30s" in config["defaults"]


def test_one_pinning_proxy_replica_has_no_handover_and_three_retry_twice():
    assert "backend handover" not in proxy(1) and proxy(1)["frontend mcp"] == ["bind :8080", "default_backend replicas"]
    assert "retries 2" in proxy(3)["backend handover"]
    assert pinning_proxy.peer_names("p", 3) == ["p-0", "p-1", "p-2"]


def test_the_pinning_proxy_without_srvkey_for_haproxy_2_6():
    config = pinning_proxy.haproxy_config(
        name="n", namespace="ns", pods_service="pods", peers_service="peers", replicas=1, header="Mcp-Session-Id",
        port=8080, max_servers=3, stream_timeout_seconds=60, session_idle_seconds=120, sizing=ProxySizing(10, 10),
        srvkey=False)
    assert "stick-table type binary len 20 size 10 expire 120s peers pinning" in sections(config)["backend replicas"]


def test_proxy_sizing_at_its_edges():
    assert ProxySizing(0, 0).fd_limit == 64 and ProxySizing(0, 0).memory_mib == 32
    assert ProxySizing(1, 0).memory_mib == 48  # one byte over 32 MiB rounds up to the next 16 MiB


def test_the_known_methods_are_the_client_requests_of_2025_11_25_and_2026_07_28():
    from mcp_affinity.security_policy import KNOWN_METHODS

    assert KNOWN_METHODS == {
        "initialize", "ping", "tools/list", "tools/call", "prompts/list", "prompts/get", "resources/list",
        "resources/templates/list", "resources/read", "resources/subscribe", "resources/unsubscribe",
        "completion/complete", "logging/setLevel", "subscriptions/listen", "tasks/get", "tasks/list", "tasks/result",
        "tasks/cancel", "server/discover"}
    for method in KNOWN_METHODS:
        assert MethodLimitArgs(method=method, requests=1).method == method


def test_a_policy_is_attached_to_at_least_one_backend_service():
    scopes = {"a": EdgeScopeArgs(hosts=["a.example.com"])}
    with pytest.raises(ValueError, match="(?i)backend.?services"):
        EdgePolicyArgs(prefix="p", scopes=scopes, backend_services=0)
    assert EdgePolicyArgs(prefix="p", scopes=scopes).backend_services == 1


@pytest.mark.parametrize("value", ["allUsers", "allAuthenticatedUsers"])
def test_everyone_as_a_member_points_to_public(value):
    with pytest.raises(ValueError, match="lets anyone in: use access mode public"):
        TypeAdapter(Member).validate_python(value)
