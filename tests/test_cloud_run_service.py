"""CloudRunMcpService on mocks: ingress, timeout, affinity per mode, NEGs, backend service."""

from __future__ import annotations

import pulumi
import pytest
from pydantic import ValidationError

from mcp_affinity import AffinityMode, CloudRunMcpService, CloudRunMcpServiceArgs, SessionStoreRef
from mcp_affinity.cloud_run_service import CI_OWNED_PATHS

RUN = "gcp:cloudrunv2/service:Service"
NEG = "gcp:compute/regionNetworkEndpointGroup:RegionNetworkEndpointGroup"
BACKEND = "gcp:compute/backendService:BackendService"
STORE = SessionStoreRef(secret_id="projects/p/secrets/url", secret_version="3", ca_certificate="PEM")
REGIONS = {"europe-west1": "subnet-ew1", "us-central1": "subnet-uc1"}


def make(**overrides) -> CloudRunMcpServiceArgs:
    values = dict(prefix="mcp-t", regions=REGIONS, network_id="vpc", image="img:1", session_store=STORE)
    return CloudRunMcpServiceArgs(**{**values, **overrides})


def test_one_service_and_one_serverless_neg_per_region(record):
    plan = record(lambda: CloudRunMcpService("tools", make()))
    services, negs = plan.by_type(RUN), plan.by_type(NEG)
    assert sorted(s.inputs["location"] for s in services) == ["europe-west1", "us-central1"]
    assert sorted(n.inputs["region"] for n in negs) == ["europe-west1", "us-central1"]
    assert {n.inputs["networkEndpointType"] for n in negs} == {"SERVERLESS"}
    assert {n.inputs["cloudRun"]["service"] for n in negs} == {"mcp-t-tools"}
    assert len(plan.by_type(BACKEND)) == 1


def test_service_is_internal_and_lb_only_with_stream_timeout(record):
    plan = record(lambda: CloudRunMcpService("tools", make()))
    service = plan.get(RUN, "tools-europe-west1").inputs
    assert service["ingress"] == "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"
    assert service["template"]["timeout"] == "3600s"
    assert service["template"]["maxInstanceRequestConcurrency"] == 80
    assert service["template"]["vpcAccess"] == {
        "networkInterfaces": [{"network": "vpc", "subnetwork": "subnet-ew1"}], "egress": "PRIVATE_RANGES_ONLY"}
    assert "startupProbe" in service["template"]["containers"][0]


def test_store_url_comes_from_secret_manager_never_as_a_plain_value(record):
    plan = record(lambda: CloudRunMcpService("tools", make()))
    envs = {e["name"]: e for e in plan.get(RUN, "tools-us-central1").inputs["template"]["containers"][0]["envs"]}
    assert envs["MCP_SESSION_STORE_URL"] == {
        "name": "MCP_SESSION_STORE_URL",
        "valueSource": {"secretKeyRef": {"secret": "projects/p/secrets/url", "version": "3"}}}
    assert "value" not in envs["MCP_SESSION_STORE_URL"]
    grant = plan.get("gcp:secretmanager/secretIamMember:SecretIamMember", "tools-store-url").inputs
    assert grant["role"] == "roles/secretmanager.secretAccessor"
    assert grant["member"] == "serviceAccount:sa@p.iam.gserviceaccount.com"


def test_shared_store_mode_has_no_lb_affinity_and_cloud_run_affinity_on(record):
    plan = record(lambda: CloudRunMcpService("tools", make()))
    backend = plan.get(BACKEND, "tools").inputs
    for key in ("sessionAffinity", "localityLbPolicy", "consistentHash"):
        assert key not in backend
    assert plan.get(RUN, "tools-europe-west1").inputs["template"]["sessionAffinity"] is True
    assert plan.warnings == []


def test_backend_service_has_no_health_check_or_timeout_and_holds_every_neg(record):
    plan = record(lambda: CloudRunMcpService("tools", make()))
    backend = plan.get(BACKEND, "tools").inputs
    assert backend["loadBalancingScheme"] == "EXTERNAL_MANAGED"
    assert "healthChecks" not in backend and "timeoutSec" not in backend
    assert backend["logConfig"] == {"enable": True, "sampleRate": 1}
    assert sorted(b["group"] for b in backend["backends"]) == ["tools-europe-west1-id", "tools-us-central1-id"]


def test_lb_header_hash_sets_ring_hash_on_the_header_and_warns(record):
    plan = record(lambda: CloudRunMcpService("tools", make(affinity_mode="lb-header-hash", session_header="X-Sess")))
    backend = plan.get(BACKEND, "tools").inputs
    assert backend["sessionAffinity"] == "HEADER_FIELD"
    assert backend["localityLbPolicy"] == "RING_HASH"
    assert backend["consistentHash"] == {"httpHeaderName": "X-Sess"}
    assert len(plan.warnings) == 1
    assert "not supported on serverless NEGs" in plan.warnings[0]
    assert "https://cloud.google.com/run/docs/configuring/session-affinity" in plan.warnings[0]


def test_children_are_parented_to_the_component(record):
    plan = record(lambda: CloudRunMcpService("tools", make()))
    component = plan.get("mcp-affinity:index:CloudRunMcpService", "tools")
    children = [r for r in plan.resources if r is not component]
    assert children and all(r.parent == component.urn for r in children)


def test_ci_owned_image_is_ignored_only_when_asked(record):
    owned = record(lambda: CloudRunMcpService("tools", make(image_managed_by_ci=True)))
    assert owned.get(RUN, "tools-europe-west1").ignore_changes == CI_OWNED_PATHS
    assert "template.containers[0].image" in CI_OWNED_PATHS
    pulumi_owned = record(lambda: CloudRunMcpService("tools", make()))
    assert pulumi_owned.get(RUN, "tools-europe-west1").ignore_changes == []


@pulumi.runtime.test
def test_outputs_are_keyed_by_region(gcp_mocks):
    service = CloudRunMcpService("tools", make())

    def check(values):
        urls, negs = values
        assert sorted(urls) == ["europe-west1", "us-central1"]
        assert negs == {"europe-west1": "tools-europe-west1-id", "us-central1": "tools-us-central1-id"}

    return pulumi.Output.all(pulumi.Output.from_input(service.service_urls),
                             pulumi.Output.from_input(service.neg_ids)).apply(check)


@pytest.mark.parametrize("mode", ["client-ip", "generated-cookie", "mesh-header-hash"])
def test_modes_cloud_run_cannot_honour_are_refused_with_the_reason(mode):
    with pytest.raises(ValidationError) as error:
        make(affinity_mode=mode)
    assert "cannot be honoured on Cloud Run" in str(error.value)
    assert "allowed: shared-store, lb-header-hash" in str(error.value)


@pytest.mark.parametrize("field,value", [("timeout_seconds", 3601), ("concurrency", 1001),
                                         ("session_header", "Bad Header"), ("regions", {"mars-north1": "s"})])
def test_out_of_range_settings_are_refused(field, value):
    with pytest.raises(ValidationError):
        make(**{field: value})


def test_shared_store_mode_needs_a_store():
    with pytest.raises(ValidationError, match="needs a session_store"):
        make(session_store=None)
    assert make(session_store=None, affinity_mode=AffinityMode.LB_HEADER_HASH).session_store is None
