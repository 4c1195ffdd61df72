"""Each stack as a whole, planned from its real stack file as `mcp-affinity plan` does."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from conftest import is_secret, plan_stack

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


def cloud_run_backends(plan):
    """Backend services with serverless NEGs: the children of CloudRunMcpService components."""
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
    assert len(cloud_run_backends(plan)) == len(EXPECTED_REGIONS[stack])


def test_every_cloud_run_service_is_lb_only_with_stream_timeout_and_affinity(stack_plan):
    _, plan = stack_plan
    for run in plan.by_type(RUN):
        assert run.inputs["ingress"] == "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"
        assert run.inputs["template"]["timeout"] == "3600s"
        assert run.inputs["template"]["sessionAffinity"] is True
    for backend in cloud_run_backends(plan):
        assert "sessionAffinity" not in backend.inputs  # shared-store everywhere
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
    dev, staging, prod = plan_stack("dev"), plan_stack("staging"), plan_stack("prod")
    redis = {name: p.by_type(REDIS)[0] for name, p in [("dev", dev), ("staging", staging), ("prod", prod)]}
    assert redis["dev"].inputs["tier"] == "BASIC" and redis["dev"].protect is False
    assert redis["prod"].inputs["tier"] == "STANDARD_HA" and redis["prod"].protect is True
    assert redis["prod"].inputs["deletionProtection"] is True
    assert {r.inputs["template"]["scaling"]["minInstanceCount"] for r in dev.by_type(RUN)} == {0}
    assert min(r.inputs["template"]["scaling"]["minInstanceCount"] for r in prod.by_type(RUN)) >= 1
    assert all(r.inputs["deletionProtection"] is True for r in prod.by_type(RUN))
    assert Counter(r.inputs["location"] for r in prod.by_type(RUN))["us-central1"] == 1


def test_plan_json_has_the_documented_shape():
    document = json.loads(json.dumps(plan_stack("dev").to_json()))
    assert sorted(document) == ["outputs", "project", "resources", "stack"]
    assert (document["project"], document["stack"]) == ("mcp-affinity", "dev")
    for resource in document["resources"]:
        assert sorted(resource) == ["custom", "inputs", "name", "parent", "type", "urn"]
        assert resource["urn"].startswith("urn:pulumi:dev::mcp-affinity::")
    top = [r for r in document["resources"] if r["type"] == "mcp-affinity:index:Network"][0]
    assert top["parent"] == "urn:pulumi:dev::mcp-affinity::pulumi:pulumi:Stack::mcp-affinity-dev"
    assert sorted(document["outputs"]) == ["loadBalancerIp", "serviceUrls", "sessionStoreHost", "sessionStoreSecret"]
