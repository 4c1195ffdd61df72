"""The GKE path on mocks: cluster, mesh refusals, header hashing, and schema-valid manifests."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from conftest import plan_stack
from mcp_affinity import (
    GkeCluster, GkeClusterArgs, McpMeshService, McpMeshServiceArgs, Mesh, MeshArgs, SessionStoreRef,
)
from mcp_affinity.mesh import MeshRef
from schemas.validate import validate_istio, validate_kubernetes

DR = "kubernetes:networking.istio.io/v1:DestinationRule"
STORE = SessionStoreRef(secret_id="projects/p/secrets/url", secret_version="1", ca_certificate="PEM")
MESH = MeshRef(gateway="istio-ingress/mcp-gateway", data_plane="sidecar")


def cluster_args(**overrides) -> GkeClusterArgs:
    values = dict(prefix="mcp-t", project="p", region="europe-west1", zones=["europe-west1-b", "europe-west1-c"],
                  network_id="vpc", subnet_id="sub")
    return GkeClusterArgs(**{**values, **overrides})


def mesh_args(**overrides) -> MeshArgs:
    values = dict(prefix="mcp-t", project="p", region="europe-west1", cluster_id="c", provider=None)
    return MeshArgs(**{**values, **overrides})


def service_args(**overrides) -> McpMeshServiceArgs:
    values = dict(prefix="mcp-t", project="p", image="img:1", provider=None, mesh=MESH, workload_pool="p.svc.id.goog",
                  session_store=STORE, store_url="rediss://:secret@10.0.0.3:6378", hosts=["notes.example.com"])
    return McpMeshServiceArgs(**{**values, **overrides})


def test_cluster_is_private_with_workload_identity_dataplane_v2_and_gateway_api(record):
    plan = record(lambda: GkeCluster("gke", cluster_args(deletion_protection=True)))
    cluster = plan.get("gcp:container/cluster:Cluster", "gke")
    inputs = cluster.inputs
    assert inputs["location"] == "europe-west1"
    assert inputs["privateClusterConfig"]["enablePrivateNodes"] is True
    assert inputs["workloadIdentityConfig"] == {"workloadPool": "p.svc.id.goog"}
    assert inputs["datapathProvider"] == "ADVANCED_DATAPATH"
    assert inputs["gatewayApiConfig"] == {"channel": "CHANNEL_STANDARD"}
    assert inputs["releaseChannel"] == {"channel": "REGULAR"}
    assert inputs["deletionProtection"] is True and cluster.protect is True
    pool = plan.get("gcp:container/nodePool:NodePool", "gke").inputs
    assert pool["autoscaling"]["totalMinNodeCount"] == 1 and pool["autoscaling"]["totalMaxNodeCount"] == 6
    assert pool["nodeConfig"]["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}
    provider = plan.get("pulumi:providers:kubernetes", "gke").inputs
    assert "gke-gcloud-auth-plugin" in provider["kubeconfig"]


@pytest.mark.parametrize("overrides,message", [
    ({"kind": "linkerd"}, "Linkerd cannot hash on a request header"),
    ({"data_plane": "ambient"}, "ztunnel is L4 only"),
    ({"kind": "gke-gateway"}, "no field for the header name"),
])
def test_meshes_that_cannot_hash_on_a_header_are_refused(overrides, message):
    with pytest.raises(ValidationError, match=message):
        mesh_args(**overrides)


def test_ambient_with_a_waypoint_is_accepted_and_installs_ztunnel(record):
    plan = record(lambda: Mesh("mesh", mesh_args(data_plane="ambient", waypoint=True)))
    charts = sorted(r.inputs["chart"] for r in plan.by_type("kubernetes:helm.sh/v3:Release"))
    assert charts == ["base", "cni", "gateway", "istiod", "ztunnel"]


def test_istio_charts_are_pinned(record):
    plan = record(lambda: Mesh("mesh", mesh_args(version="1.28.1")))
    releases = plan.by_type("kubernetes:helm.sh/v3:Release")
    assert {r.inputs["version"] for r in releases} == {"1.28.1"}
    assert sorted(r.inputs["chart"] for r in releases) == ["base", "gateway", "istiod"]


def test_cloud_service_mesh_goes_through_the_fleet_api(record):
    plan = record(lambda: Mesh("mesh", mesh_args(kind="cloud-service-mesh")))
    membership = plan.get("gcp:gkehub/featureMembership:FeatureMembership", "mesh-servicemesh").inputs
    assert membership["mesh"] == {"management": "MANAGEMENT_AUTOMATIC"}
    assert [r.inputs["chart"] for r in plan.by_type("kubernetes:helm.sh/v3:Release")] == ["gateway"]


def test_destination_rule_hashes_the_header_on_the_service_host(record):
    plan = record(lambda: McpMeshService("notes", service_args(session_header="X-Session")))
    rule = plan.get(DR, "notes-hash").inputs
    service = plan.get("kubernetes:core/v1:Service", "notes").inputs
    assert rule["spec"]["trafficPolicy"]["loadBalancer"]["consistentHash"] == {"httpHeaderName": "X-Session"}
    host = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local"
    assert rule["spec"]["host"] == host
    route = plan.get("kubernetes:networking.istio.io/v1:VirtualService", "notes-route").inputs["spec"]
    assert route["gateways"] == ["istio-ingress/mcp-gateway"]
    assert route["http"][0]["timeout"] == "0s"


def test_pods_drain_streams_and_spread_over_zones(record):
    plan = record(lambda: McpMeshService("notes", service_args()))
    template = plan.get("kubernetes:apps/v1:Deployment", "notes").inputs["spec"]["template"]
    assert template["spec"]["terminationGracePeriodSeconds"] == 3600
    assert json.loads(template["metadata"]["annotations"]["proxy.istio.io/config"]) == {"terminationDrainDuration": "3600s"}
    assert template["spec"]["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"
    namespace = plan.get("kubernetes:core/v1:Namespace", "notes").inputs
    assert namespace["metadata"]["labels"] == {"istio-injection": "enabled"}


def test_store_url_reaches_pods_only_through_a_secret(record):
    plan = record(lambda: McpMeshService("notes", service_args()))
    secret = plan.get("kubernetes:core/v1:Secret", "notes").inputs
    assert list(secret["stringData"]) == ["4dabf18193072939515e22adb298388d", "value"]
    text = json.dumps([r.to_json() for r in plan.resources]) + json.dumps(plan.outputs)
    assert "rediss://:secret@" not in text
    env = plan.get("kubernetes:apps/v1:Deployment", "notes").inputs["spec"]["template"]["spec"]["containers"][0]["env"]
    url = next(e for e in env if e["name"] == "MCP_SESSION_STORE_URL")
    assert url == {"name": "MCP_SESSION_STORE_URL",
                   "valueFrom": {"secretKeyRef": {"name": "mcp-session-store", "key": "url"}}}


@pytest.fixture(scope="module", params=["staging", "prod"])
def gke_plan(request):
    return plan_stack(request.param, known=True)


def kubernetes_objects(plan):
    return [r for r in plan.resources if r.type.startswith("kubernetes:") and "apiVersion" in r.inputs]


def test_every_kubernetes_object_validates_strictly(gke_plan):
    objects = [r for r in kubernetes_objects(gke_plan) if "istio.io" not in r.inputs["apiVersion"]]
    assert {r.inputs["kind"] for r in objects} >= {"Namespace", "Deployment", "Service", "HorizontalPodAutoscaler",
                                                   "PodDisruptionBudget", "ServiceAccount", "Secret"}
    errors = {r.urn: validate_kubernetes(r.manifest()) for r in objects}
    assert {urn: e for urn, e in errors.items() if e} == {}


def test_every_istio_object_validates_against_istio_schemas(gke_plan):
    objects = [r for r in kubernetes_objects(gke_plan) if "istio.io" in r.inputs["apiVersion"]]
    assert sorted({r.inputs["kind"] for r in objects}) == ["DestinationRule", "Gateway", "VirtualService"]
    results = validate_istio([r.manifest() for r in objects])
    assert {r.urn: e for r, e in zip(objects, results) if e} == {}


def test_stack_destination_rules_match_services_and_hash_the_session_header(gke_plan):
    services = {(r.inputs["metadata"]["name"], r.inputs["metadata"]["namespace"])
                for r in gke_plan.by_type("kubernetes:core/v1:Service")}
    rules = gke_plan.by_type(DR)
    assert rules
    for rule in rules:
        name, namespace, *_ = rule.inputs["spec"]["host"].split(".")
        assert (name, namespace) in services
        assert rule.inputs["spec"]["trafficPolicy"]["loadBalancer"]["consistentHash"]["httpHeaderName"] == "Mcp-Session-Id"


def test_no_secret_value_in_plaintext_in_outputs_or_inputs(gke_plan):
    for resource in gke_plan.by_type("kubernetes:core/v1:Secret"):
        assert set(resource.inputs["stringData"]) == {"4dabf18193072939515e22adb298388d", "value"}
        assert resource.inputs["stringData"]["value"] == "[secret]"
    assert "rediss://" not in json.dumps(gke_plan.to_json())


def test_global_load_balancer_fronts_the_gateway_with_a_stream_timeout(gke_plan):
    backend = gke_plan.get("gcp:compute/backendService:BackendService", "gke-gateway").inputs
    assert backend["timeoutSec"] == 3600
    assert all("networkEndpointGroups/" in b["group"] for b in backend["backends"])
    url_map = gke_plan.get("gcp:compute/uRLMap:URLMap", "load-balancer").inputs
    assert any(rule["pathMatcher"] == "gke" for rule in url_map["hostRules"])
