"""The design rules of mcp_affinity.policies: each on good and bad resources, then on the real plans."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import yaml

from conftest import plan_document
from mcp_affinity.cli import find_project, run_plan
from mcp_affinity.policies import UNKNOWN, Violation, check_plan, check_resources, serverless_backends

ROOT = Path(__file__).parents[1]
SECRET = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": "[secret]"}
SVC_PARENT = "urn:pulumi:t::p::mcp-affinity:index:CloudRunMcpService::tools"


def res(type_: str, name: str, inputs: dict, parent: str | None = SVC_PARENT) -> dict:
    return {"urn": f"urn:pulumi:t::p::{type_}::{name}", "type": type_, "name": name, "parent": parent,
            "custom": True, "inputs": inputs}


def redis(**inputs) -> dict:
    base = {"authEnabled": True, "transitEncryptionMode": "SERVER_AUTHENTICATION",
            "connectMode": "PRIVATE_SERVICE_ACCESS", "authorizedNetwork": UNKNOWN}
    return res("gcp:redis/instance:Instance", "store", {**base, **inputs}, parent=None)


def run_service(name="tools-eu", header="Mcp-Session-Id", **inputs) -> dict:
    envs = [{"name": "MCP_SESSION_HEADER", "value": header}]
    base = {"name": "mcp-tools", "ingress": "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER", "invokerIamDisabled": True,
            "defaultUriDisabled": True,
            "template": {"timeout": "3600s", "serviceAccount": UNKNOWN, "containers": [{"image": "i", "envs": envs}]}}
    return res("gcp:cloudrunv2/service:Service", name, {**base, **inputs})


def neg(name="tools-eu", service="mcp-tools", **inputs) -> dict:
    base = {"name": f"mcp-{name}", "region": "europe-west1", "networkEndpointType": "SERVERLESS",
            "cloudRun": {"service": service}}
    return res("gcp:compute/regionNetworkEndpointGroup:RegionNetworkEndpointGroup", name, {**base, **inputs})


def backend(group=UNKNOWN, parent=SVC_PARENT, **inputs) -> dict:
    base = {"backends": [{"group": group}], "loadBalancingScheme": "EXTERNAL_MANAGED", "protocol": "HTTPS"}
    return res("gcp:compute/backendService:BackendService", "tools", {**base, **inputs}, parent=parent)


def k8s_service(name="mcp", namespace="mcp") -> dict:
    return res("kubernetes:core/v1:Service", f"{namespace}-{name}",
               {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
                "spec": {"selector": {"app": name}}}, parent=None)


def destination_rule(host="mcp", namespace="mcp", header="Mcp-Session-Id", hashing=None) -> dict:
    consistent = hashing if hashing is not None else {"httpHeaderName": header}
    spec = {"host": host, "trafficPolicy": {"loadBalancer": {"consistentHash": consistent}}}
    return res("kubernetes:networking.istio.io/v1:DestinationRule", f"dr-{host}",
               {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                "metadata": {"name": "mcp", "namespace": namespace}, "spec": spec}, parent=None)


def deployment(name="mcp", namespace="mcp", header="Mcp-Session-Id", mode=None) -> dict:
    env = [{"name": "MCP_SESSION_HEADER", "value": header}] + ([{"name": "MCP_SESSION_MODE", "value": mode}] if mode else [])
    spec = {"selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "mcp", "env": env}]}}}
    return res("kubernetes:apps/v1:Deployment", f"{namespace}-{name}-deploy",
               {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
                "spec": spec}, parent=None)


def found(violations: list[Violation], rule: str | None = None) -> list[tuple[str, str]]:
    """(rule, urn) per violation, of ``rule`` only when given."""
    return [(v.rule, v.urn) for v in violations if rule in (None, v.rule)]


def good_stack() -> list[dict]:
    return [redis(), run_service(), neg(), backend(), k8s_service(), destination_rule(), deployment()]


def test_good_stack_has_no_violation():
    assert check_resources(good_stack()) == []


# redis-auth-tls-private

@pytest.mark.parametrize("bad", [{"authEnabled": False}, {"transitEncryptionMode": "DISABLED"},
                                 {"connectMode": "DIRECT_PEERING"}, {"authEnabled": None}])
def test_redis_without_auth_tls_or_private_access(bad):
    store = redis(**bad)
    if bad == {"authEnabled": None}:
        del store["inputs"]["authEnabled"]  # left out: Memorystore's default is AUTH off
    assert found(check_resources([store])) == [("redis-auth-tls-private", store["urn"])]


def test_redis_unknown_connect_mode_is_not_judged_but_unknown_auth_or_tls_is_refused():
    assert check_resources([redis(connectMode=UNKNOWN)]) == []
    for unknown in ({"authEnabled": UNKNOWN}, {"transitEncryptionMode": UNKNOWN}):
        store = redis(**unknown)
        assert found(check_resources([store])) == [("redis-auth-tls-private", store["urn"])]
        assert "unknown until apply" in check_resources([store])[0].message


def test_redis_secret_wrapped_value_is_read():
    store = redis(authEnabled={**SECRET, "value": False})
    assert found(check_resources([store])) == [("redis-auth-tls-private", store["urn"])]


# cloud-run-ingress-and-timeout

@pytest.mark.parametrize("inputs", [
    {"ingress": "INGRESS_TRAFFIC_ALL"},
    {"ingress": None},
    {"template": {"timeout": "0s"}},
    {"template": {"timeout": "3601s"}},
    {"template": {"timeout": "1h"}},
])
def test_cloud_run_behind_neg_must_be_lb_only_with_stream_timeout(inputs):
    service = run_service(**inputs)
    if inputs == {"ingress": None}:
        del service["inputs"]["ingress"]
    assert found(check_resources([service, neg()]), "cloud-run-ingress-and-timeout") == [
        ("cloud-run-ingress-and-timeout", service["urn"])]


@pytest.mark.parametrize("template", [{"timeout": "300s"}, {}, {"timeout": "1s"}, {"timeout": "3600s"}])
def test_cloud_run_timeout_valid_in_the_config_schema_passes(template):
    """timeoutSeconds 1 to 3600 is valid config (300 s is Cloud Run's default): the rule agrees."""
    assert check_resources([run_service(template=template), neg()]) == []


def test_cloud_run_minimum_timeout_is_a_parameter():
    service = run_service(template={"timeout": "900s"})
    assert check_resources([service, neg()]) == []
    assert found(check_resources([service, neg()], min_timeout_seconds=1800)) == [
        ("cloud-run-ingress-and-timeout", service["urn"])]


def test_cloud_run_without_neg_is_not_judged():
    assert check_resources([run_service(ingress="INGRESS_TRAFFIC_ALL", invokerIamDisabled=False)]) == []


def test_cloud_run_neg_matches_by_name_else_by_parent_when_unknown():
    other = res("gcp:cloudrunv2/service:Service", "other", {"name": "mcp-other", "ingress": "INGRESS_TRAFFIC_ALL"},
                parent="urn:pulumi:t::p::mcp-affinity:index:CloudRunMcpService::other")
    sibling = run_service(name="tools-us", ingress="INGRESS_TRAFFIC_ALL")
    rule = "cloud-run-ingress-and-timeout"
    assert found(check_resources([other, sibling, neg()]), rule) == [(rule, sibling["urn"])]
    assert found(check_resources([other, sibling, neg(service=UNKNOWN)]), rule) == [(rule, sibling["urn"])]


def test_cloud_run_unknown_ingress_is_not_judged():
    assert check_resources([run_service(ingress=UNKNOWN, template={"timeout": UNKNOWN}), neg()]) == []


# serverless-backend-no-healthcheck-timeout

@pytest.mark.parametrize("inputs", [{"timeoutSec": 30.0}, {"healthChecks": [UNKNOWN]}, {"healthChecks": "hc"},
                                    {"timeoutSec": UNKNOWN}])
def test_serverless_backend_rejects_health_checks_and_timeout(inputs):
    bs = backend(**inputs)
    assert found(check_resources([neg(), bs])) == [("serverless-backend-no-healthcheck-timeout", bs["urn"])]


def test_serverless_backend_matched_by_known_group_id():
    group = "projects/p/regions/europe-west1/networkEndpointGroups/mcp-tools-eu"
    bs = backend(group=group, parent=None, timeoutSec=60.0)
    assert found(check_resources([neg(), bs])) == [("serverless-backend-no-healthcheck-timeout", bs["urn"])]


def test_serverless_backend_of_a_recorded_stack():
    """Outside preview the groups are ids (here the mocks' own); the shared parent still tells."""
    from conftest import plan_stack

    resources = [r.to_json() for r in plan_stack("dev", known=True).resources]
    cloud_run = sorted(r["name"] for r in resources if r["type"] == "gcp:compute/backendService:BackendService"
                       and ":CloudRunMcpService::" in (r["parent"] or ""))
    assert cloud_run and sorted(b["name"] for b in serverless_backends(resources)) == cloud_run
    assert check_resources(resources) == []


def test_non_serverless_backend_is_not_judged():
    known_other = backend(group="projects/p/zones/z/instanceGroups/ig", timeoutSec=60.0)
    unrelated_parent = backend(parent="urn:pulumi:t::p::x:y:Z::other", timeoutSec=60.0)
    zonal_neg = neg(networkEndpointType="GCE_VM_IP_PORT")
    assert check_resources([neg(), known_other]) == []
    assert check_resources([neg(), unrelated_parent]) == []
    assert check_resources([zonal_neg, backend(timeoutSec=60.0)]) == []


def test_serverless_backend_set_but_unknown_counts_as_set():
    """Any health check is refused, so an unknown id (a HealthCheck created alongside) is enough."""
    bs = backend(healthChecks=UNKNOWN)
    assert found(check_resources([neg(), bs])) == [("serverless-backend-no-healthcheck-timeout", bs["urn"])]
    assert check_resources([neg(), backend(healthChecks=[], timeoutSec=None)]) == []


# header-hash-names-configured-header

HASHING = {"sessionAffinity": "HEADER_FIELD", "localityLbPolicy": "RING_HASH",
           "consistentHash": {"httpHeaderName": "Mcp-Session-Id"}}


def test_header_hash_backend_good_and_case_insensitive():
    assert check_resources([backend(**HASHING)]) == []
    assert check_resources([backend(**{**HASHING, "localityLbPolicy": "MAGLEV",
                                       "consistentHash": {"httpHeaderName": "mcp-session-id"}})]) == []


@pytest.mark.parametrize("change", [{"consistentHash": {"httpHeaderName": "X-Session"}}, {"consistentHash": None},
                                    {"localityLbPolicy": "ROUND_ROBIN"}, {"localityLbPolicy": None}])
def test_header_hash_backend_bad(change):
    bs = backend(**{**HASHING, **change})
    assert found(check_resources([bs])) == [("header-hash-names-configured-header", bs["urn"])]


def test_header_is_read_from_each_service():
    """Two services with different declared headers both pass; no global header must match."""
    bs = backend(**{**HASHING, "consistentHash": {"httpHeaderName": "X-Session"}})
    other_parent = "urn:pulumi:t::p::mcp-affinity:index:CloudRunMcpService::other"
    other = backend(parent=other_parent, **HASHING)
    other["urn"] += "-other"
    services = [run_service(header="X-Session"), run_service(name="other-eu", parent=other_parent)]
    services[1]["parent"] = other_parent
    assert check_resources([bs, other, *services]) == []
    services[0]["inputs"]["template"]["containers"][0]["envs"][0]["value"] = "Mcp-Session-Id"
    assert found(check_resources([bs, other, *services])) == [("header-hash-names-configured-header", bs["urn"])]


def test_destination_rule_hashes_the_header_its_deployment_declares():
    dr = destination_rule(header="X-Session")
    assert check_resources([dr, k8s_service(), deployment(header="X-Session")]) == []
    bad = found(check_resources([dr, k8s_service(), deployment(header="Mcp-Session-Id")]))
    assert bad == [("header-hash-names-configured-header", dr["urn"])]


def test_destination_rule_hashing_something_else():
    dr = destination_rule(hashing={"useSourceIp": True})
    assert found(check_resources([dr, k8s_service()])) == [("header-hash-names-configured-header", dr["urn"])]


def test_no_header_affinity_is_not_judged():
    plain = {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": "x"},
             "spec": {"host": "nowhere.example.com", "trafficPolicy": {"loadBalancer": {"simple": "LEAST_REQUEST"}}}}
    dr = res("kubernetes:networking.istio.io/v1:DestinationRule", "plain", plain, parent=None)
    assert check_resources([backend(sessionAffinity="NONE"), dr]) == []


# destination-rule-targets-service

@pytest.mark.parametrize("host,namespace", [("mcp", "mcp"), ("mcp.mcp.svc.cluster.local", "mcp"),
                                            ("mcp.mcp.svc.cluster.local", "other")])
def test_destination_rule_host_resolves_to_service(host, namespace):
    assert check_resources([k8s_service(), destination_rule(host=host, namespace=namespace)]) == []


@pytest.mark.parametrize("host,namespace", [("mcp", "other"), ("mcp.mcp", "mcp"), ("gone.mcp.svc.cluster.local", "mcp"),
                                            ("mcp.example.com", "mcp")])
def test_destination_rule_host_matches_no_service(host, namespace):
    dr = destination_rule(host=host, namespace=namespace)
    assert found(check_resources([k8s_service(), dr])) == [("destination-rule-targets-service", dr["urn"])]


def test_destination_rule_namespace_defaults_and_unknowns():
    dr = destination_rule(host="mcp")
    del dr["inputs"]["metadata"]["namespace"]
    svc = k8s_service(namespace="default")
    del svc["inputs"]["metadata"]["namespace"]
    assert check_resources([svc, dr]) == []
    assert check_resources([k8s_service(name=UNKNOWN), destination_rule(host="gone")]) == []
    assert check_resources([k8s_service(), destination_rule(host=UNKNOWN)]) == []


# production-store-protected

def test_production_store_protected_by_parameter():
    store = redis(deletionProtection=False)
    assert check_resources([store]) == []
    assert found(check_resources([store], production=True)) == [("production-store-protected", store["urn"])]
    assert check_resources([redis(deletionProtection=True)], production=True) == []
    assert check_resources([redis()], production=True) == []  # unset: the provider refuses deletion


def test_production_decided_by_stack_name_even_when_relabelled():
    store = redis(deletionProtection=False, labels={"environment": "dev"})
    store["urn"] = store["urn"].replace("urn:pulumi:t::", "urn:pulumi:prod::")
    assert found(check_resources([store])) == [("production-store-protected", store["urn"])]
    assert found(check_resources([redis(deletionProtection=False)], stack="eu-production")) == [
        ("production-store-protected", redis()["urn"])]
    assert check_resources([redis(deletionProtection=False)], stack="staging") == []
    assert found(check_plan({"stack": "prod", "resources": [redis(deletionProtection=False)]})) == [
        ("production-store-protected", redis()["urn"])]


def test_production_inferred_from_labels():
    store = redis(deletionProtection=False, labels={"environment": "prod"})
    assert found(check_resources([store])) == [("production-store-protected", store["urn"])]
    assert check_resources([store], production=False) == []
    assert check_resources([redis(deletionProtection=False, labels={"environment": "dev"})]) == []


def test_violations_are_sorted_and_mandatory():
    bad = [redis(authEnabled=False, deletionProtection=False), run_service(ingress="INGRESS_TRAFFIC_ALL", invokerIamDisabled=False), neg(),
           backend(timeoutSec=10.0)]
    violations = check_resources(bad, production=True)
    assert [v.rule for v in violations] == ["cloud-run-ingress-and-timeout", "production-store-protected",
                                            "redis-auth-tls-private", "serverless-backend-no-healthcheck-timeout"]
    assert violations == sorted(violations) and {v.enforcement for v in violations} == {"mandatory"}


# The real plans of this repository's stacks.

@pytest.fixture(scope="module")
def plans() -> dict[str, dict]:
    return {stack: plan_document(stack) for stack in ("dev", "staging", "prod")}


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_real_plan_has_no_violation(plans, stack):
    assert check_plan(plans[stack]) == []
    assert check_resources(plans[stack]["resources"]) == []


def _find(plan: dict, type_: str, parent_type: str = "", index: int = 0) -> dict:
    """The ``index``-th resource of ``type_`` (under a component of ``parent_type``), by URN: names may change."""
    under = f":{parent_type}::" if parent_type else ""
    return [r for r in plan["resources"] if r["type"] == type_ and under in f"{r['parent']}::"][index]


BACKEND_TYPE = "gcp:compute/backendService:BackendService"
DR_TYPE = "kubernetes:networking.istio.io/v1:DestinationRule"


def test_real_prod_plan_rules_see_their_resources(plans):
    plan = plans["prod"]
    cloud_run = sorted(r["urn"] for r in plan["resources"] if r["type"] == BACKEND_TYPE
                       and ":CloudRunMcpService::" in r["parent"])
    assert len(cloud_run) == 2 and sorted(b["urn"] for b in serverless_backends(plan["resources"])) == cloud_run
    assert _find(plan, DR_TYPE)


def test_real_prod_plan_broken_is_caught(plans):
    plan = copy.deepcopy(plans["prod"])
    store = _find(plan, "gcp:redis/instance:Instance")
    store["inputs"].update(authEnabled=False, deletionProtection=False, labels={"environment": "dev"})
    service = _find(plan, "gcp:cloudrunv2/service:Service", index=1)
    service["inputs"]["template"]["timeout"] = "7200s"
    backend_ = _find(plan, BACKEND_TYPE, "CloudRunMcpService")
    backend_["inputs"]["timeoutSec"] = 3600.0
    rule = _find(plan, DR_TYPE)
    rule["inputs"]["spec"]["host"] = "notes.mcp-notes"
    assert found(check_plan(plan)) == [
        ("cloud-run-ingress-and-timeout", service["urn"]),
        ("destination-rule-targets-service", rule["urn"]),
        ("production-store-protected", store["urn"]),  # relabelled, still prod by the stack's name
        ("redis-auth-tls-private", store["urn"]),
        ("serverless-backend-no-healthcheck-timeout", backend_["urn"]),
    ]


def test_real_prod_plan_without_destination_rule_is_caught(plans):
    plan = copy.deepcopy(plans["prod"])
    rule = _find(plan, DR_TYPE)
    plan["resources"].remove(rule)
    assert [v.rule for v in check_plan(plan)] == ["mesh-service-has-destination-rule"]


def test_real_header_hash_plan(tmp_path):
    """A stack with loadBalancerHash: the components hash the header each service declares."""
    config = yaml.safe_load((ROOT / "stacks" / "Pulumi.prod.yaml").read_text())
    tools = config["config"]["mcp-affinity:services"]["tools"]
    tools.update(loadBalancerHash=True, sessionHeader="X-Tools-Session", sessionMode="shared-sessions",
                 acknowledge=["lb-hash-unsupported"])
    (tmp_path / "Pulumi.hash.yaml").write_text(yaml.safe_dump(config))
    project = dataclasses.replace(find_project(ROOT), stack_config_dir=tmp_path)
    plan = run_plan(project, "hash").document()
    backend_ = next(r for r in plan["resources"] if r["type"] == BACKEND_TYPE
                    and r["inputs"].get("sessionAffinity") == "HEADER_FIELD")
    assert backend_["inputs"]["consistentHash"]["httpHeaderName"] == "X-Tools-Session"
    assert check_plan(plan) == []  # the other services keep Mcp-Session-Id: no global header
    assert plan["warnings"] and plan["warnings"][0]["urn"]  # the program's warning, with the URN it names
    backend_["inputs"]["consistentHash"]["httpHeaderName"] = "Mcp-Session-Id"
    assert found(check_plan(plan)) == [("header-hash-names-configured-header", backend_["urn"])]


@pytest.mark.parametrize("stack,labels,flagged", [
    ("staging", {"mcp-access": "public"}, True),
    ("eu-prod", {"mcp-access": "public"}, True),
    ("dev", {"mcp-access": "public", "environment": "staging"}, True),
    ("staging", {"mcp-access": "public", "mcp-ack": "unauthenticated"}, False),
    ("dev", {"mcp-access": "public"}, False),
    ("staging", {"mcp-access": "iap"}, False),
])
def test_public_service_needs_the_acknowledgement_in_staging_and_prod(stack, labels, flagged):
    found = [v for v in check_resources([run_service(labels=labels)], stack=stack) if v.rule == "public-service-acknowledged"]
    assert bool(found) is flagged, found
    deployment = res("kubernetes:apps/v1:Deployment", "mcp", {"metadata": {"name": "mcp", "labels": labels}}, parent=None)
    found = [v for v in check_resources([deployment], stack=stack) if v.rule == "public-service-acknowledged"]
    assert bool(found) is flagged, found
