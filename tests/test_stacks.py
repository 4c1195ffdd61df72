"""Each stack as a whole, planned from its real stack file as `mcp-affinity plan` does; and one
stack example per platform and MCP generation (``examples/``)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from conftest import ROOT, is_secret, plan_example, plan_stack
from mcp_affinity.affinity import MODERN_VERSIONS

RUN = "gcp:cloudrunv2/service:Service"
NEG = "gcp:compute/regionNetworkEndpointGroup:RegionNetworkEndpointGroup"
BACKEND = "gcp:compute/backendService:BackendService"
REDIS = "gcp:redis/instance:Instance"

# stack -> {service: regions}
EXPECTED_REGIONS = {
    "dev": {"tools": ["europe-west1"]},
    "staging": {"tools": ["europe-west1", "europe-west4"], "search": ["europe-west1", "europe-west4"]},
    "prod": {"tools": ["europe-west1", "europe-west4", "us-central1"], "search": ["europe-west1", "europe-west4"]},
}


PREFIX = {"dev": "mcp-dev", "staging": "mcp-stg", "prod": "mcp-prd"}


def cloud_run_backends(plan):
    return [b for b in plan.by_type(BACKEND) if "CloudRunMcpService$" in b.urn]


@pytest.fixture(scope="module", params=sorted(EXPECTED_REGIONS))
def stack_plan(request):
    return request.param, plan_stack(request.param)


def test_one_cloud_run_service_and_neg_per_service_and_region(stack_plan):
    stack, plan = stack_plan
    for service, regions in EXPECTED_REGIONS[stack].items():
        runs = [r for r in plan.by_type(RUN) if r.name.startswith(f"{service}-")]
        negs = [r for r in plan.by_type(NEG) if r.name.startswith(f"{service}-")]
        assert sorted(r.inputs["location"] for r in runs) == regions
        assert sorted(n.inputs["region"] for n in negs) == regions
        assert {r.inputs["name"] for r in runs} == {f"{PREFIX[stack]}-{service}"}
    assert len(cloud_run_backends(plan)) == len(EXPECTED_REGIONS[stack])


def test_every_cloud_run_service_is_lb_only_with_stream_timeout_and_cookie_affinity(stack_plan):
    _, plan = stack_plan
    for run in plan.by_type(RUN):
        assert run.inputs["ingress"] == "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"
        assert run.inputs["template"]["timeout"] == "3600s"
        assert run.inputs["template"]["sessionAffinity"] is True  # shared-sessions everywhere
    for backend in cloud_run_backends(plan):
        assert "sessionAffinity" not in backend.inputs
        assert "healthChecks" not in backend.inputs and "timeoutSec" not in backend.inputs
    assert plan.warnings == []


def test_store_url_is_secret_and_store_is_tls_and_auth(stack_plan):
    _, plan = stack_plan
    (redis,) = plan.by_type(REDIS)
    assert redis.inputs["authEnabled"] is True
    assert redis.inputs["transitEncryptionMode"] == "SERVER_AUTHENTICATION"
    (version,) = plan.by_type("gcp:secretmanager/secretVersion:SecretVersion")
    assert is_secret(version.inputs["secretData"])


def test_every_resource_sits_under_a_component(stack_plan):
    _, plan = stack_plan
    components = {r.urn for r in plan.resources if not r.custom}
    for resource in plan.resources:
        if resource.custom:
            assert resource.parent in components, resource.urn


def test_environments_differ_as_real_ones_do():
    dev, prod = plan_stack("dev"), plan_stack("prod")
    assert dev.by_type(REDIS)[0].inputs["tier"] == "BASIC" and dev.by_type(REDIS)[0].protect is False
    redis = prod.by_type(REDIS)[0]
    assert redis.inputs["tier"] == "STANDARD_HA" and redis.protect is True and redis.inputs["deletionProtection"] is True
    assert {r.inputs["template"]["scaling"]["minInstanceCount"] for r in dev.by_type(RUN)} == {0}
    assert min(r.inputs["template"]["scaling"]["minInstanceCount"] for r in prod.by_type(RUN)) >= 1
    assert all(r.inputs["deletionProtection"] is True for r in prod.by_type(RUN))
    assert Counter(r.inputs["location"] for r in prod.by_type(RUN))["us-central1"] == 1
    cluster = prod.get("gcp:container/cluster:Cluster", "gke")
    assert cluster.protect is True and cluster.inputs["databaseEncryption"]["state"] == "ENCRYPTED"


def test_plan_json_has_the_documented_shape():
    document = json.loads(json.dumps(plan_stack("dev").document()))
    assert {"outputs", "project", "resources", "stack"} <= set(document)
    assert (document["project"], document["stack"]) == ("mcp-affinity", "dev")
    for resource in document["resources"]:
        assert {"custom", "inputs", "name", "parent", "type", "urn"} <= set(resource)
        assert resource["urn"].startswith("urn:pulumi:dev::mcp-affinity::")
    top = [r for r in document["resources"] if r["type"] == "mcp-affinity:index:Network"][0]
    assert top["parent"] == "urn:pulumi:dev::mcp-affinity::pulumi:pulumi:Stack::mcp-affinity-dev"
    assert sorted(document["outputs"]) == ["loadBalancerIp", "requiredApis", "serviceAccess", "serviceDeploys",
                                           "serviceUrls", "sessionStoreHost", "sessionStoreSecret"]


def test_required_apis_follow_what_the_stack_uses():
    dev, prod = plan_stack("dev").outputs["requiredApis"], plan_stack("prod").outputs["requiredApis"]
    assert "redis.googleapis.com" in dev and "container.googleapis.com" not in dev
    assert {"container.googleapis.com", "cloudresourcemanager.googleapis.com", "cloudkms.googleapis.com"} <= set(prod)
    assert "gkehub.googleapis.com" not in prod


# --- one example per platform and generation ------------------------------------------------------

def test_cloud_run_stateless_example_routes_by_mcp_method_and_wires_the_broker():
    plan = plan_example("cloud-run-stateless")
    runs = {r.name: r.inputs for r in plan.by_type(RUN)}
    assert {r["template"]["sessionAffinity"] for r in runs.values()} == {False}
    envs = {e["name"] for e in runs["tools-europe-west1"]["template"]["containers"][0]["envs"]}
    assert "MCP_NOTIFICATION_BROKER_URL" in envs and "MCP_SESSION_STORE_URL" not in envs
    matcher = next(m for m in plan.get("gcp:compute/uRLMap:URLMap", "lb").inputs["pathMatchers"] if m["name"] == "tools")
    headers = matcher["routeRules"][0]["matchRules"][0]["headerMatches"]
    assert {h["headerName"]: h.get("exactMatch") or h["regexMatch"] for h in headers} == {
        "Mcp-Method": "tools/call", "Mcp-Name": "render_video", "MCP-Protocol-Version": MODERN_VERSIONS}


def test_cloud_run_in_memory_example_has_no_store_and_cookie_affinity():
    plan = plan_example("cloud-run-in-memory")
    assert plan.by_type(REDIS) == []
    assert {r.inputs["template"]["sessionAffinity"] for r in plan.by_type(RUN)} == {True}
    single = plan.get(RUN, "single-europe-west1").inputs
    assert single["template"]["scaling"]["maxInstanceCount"] == 1


def test_gke_stateless_example_balances_by_least_request_and_routes_by_method():
    plan = plan_example("gke-stateless")
    rules = plan.by_type("kubernetes:networking.istio.io/v1:DestinationRule")
    assert {json.dumps(r.inputs["spec"]["trafficPolicy"]) for r in rules} == {'{"loadBalancer": {"simple": "LEAST_REQUEST"}}'}
    route = plan.get("kubernetes:networking.istio.io/v1:VirtualService", "tools-route").inputs["spec"]
    assert route["http"][0]["match"][0]["headers"]["mcp-method"] == {"exact": "tools/call"}


def test_gke_in_memory_example_pins_by_cookie_with_the_filter_on():
    plan = plan_example("gke-in-memory")
    service = plan.get("kubernetes:core/v1:Service", "legacy").inputs
    assert service["metadata"]["labels"]["istio.io/persistent-session"] == "mcp-affinity"
    istiod = plan.get("kubernetes:helm.sh/v3:Release", "mesh-istiod").manifest()["values"]
    assert istiod["env"]["PILOT_ENABLE_PERSISTENT_SESSION_FILTER"] == "true"
    assert not plan.by_type("kubernetes:networking.istio.io/v1:DestinationRule")[0].inputs["spec"][
        "trafficPolicy"]["loadBalancer"].get("consistentHash")


def test_every_example_passes_the_policy_rules():
    from mcp_affinity.policies import check_plan

    for path in sorted((ROOT / "examples").glob("Pulumi.*.yaml")):
        name = path.name[len("Pulumi."):-len(".yaml")]
        violations = [v for v in check_plan(plan_example(name).document()) if v.enforcement == "mandatory"]
        assert violations == [], (name, violations)
