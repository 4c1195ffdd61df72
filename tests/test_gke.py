"""The GKE path on mocks: cluster, mesh, gateway backend and mesh services; and the staging and
prod plans as a whole: schema-valid, closed to the internet, ordered for a first ``pulumi up``."""

from __future__ import annotations

import json

import pulumi
import pulumi_kubernetes as k8s
import pytest
from mcp_affinity.errors import SettingsError

from conftest import plan_stack
from helpers import NETWORK, STORE, cluster_args, gke, mesh_args
from mcp_affinity import (
    ISTIO_VERSION, ClusterRef, GkeCluster, McpGkePlatform, McpGkePlatformArgs, McpMeshService, McpMeshServiceArgs,
    Mesh, MeshGatewayBackendRef,
)
from mcp_affinity.affinity import MODERN_VERSIONS
from mcp_affinity.mesh_service import service_host
from schemas.istio_check import is_checked_type, validate_object
from schemas.validate import validate_kubernetes

DR = "kubernetes:networking.istio.io/v1:DestinationRule"
VS = "kubernetes:networking.istio.io/v1:VirtualService"
RELEASE = "kubernetes:helm.sh/v3:Release"
CLUSTER = "gcp:container/cluster:Cluster"
POOL = "gcp:container/nodePool:NodePool"


def service_args(**overrides) -> McpMeshServiceArgs:
    values = dict(prefix="mcp-t", project="my-proj", image="img:1", session_mode="shared-sessions",
                  hosts=["notes.example.com"], access="public")
    return McpMeshServiceArgs(**{**values, **overrides})


def mesh_service(args=None, mesh_overrides=None, **context):
    args = args or service_args()
    cluster, _, mesh = gke(mesh_overrides, services={"notes": args})
    return McpMeshService("notes", args, cluster=cluster, mesh=mesh, **{"session_store": STORE, **context})


def spec(plan, type_, name):
    return plan.get(type_, name).inputs["spec"]


# --- cluster -------------------------------------------------------------------------------------

def test_cluster_is_private_with_authorized_networks_workload_identity_and_encrypted_secrets(record):
    plan = record(lambda: GkeCluster("gke", cluster_args(deletion_protection=True, master_authorized_networks={
        "ci": "203.0.113.0/24"}), network=NETWORK))
    cluster = plan.get(CLUSTER, "gke")
    inputs = cluster.inputs
    assert inputs["name"] == "mcp-t-gke" and inputs["location"] == "europe-west1"
    assert inputs["privateClusterConfig"]["enablePrivateNodes"] is True
    assert inputs["masterAuthorizedNetworksConfig"]["cidrBlocks"] == [{"displayName": "ci", "cidrBlock": "203.0.113.0/24"}]
    assert inputs["masterAuthorizedNetworksConfig"]["gcpPublicCidrsAccessEnabled"] is False
    assert inputs["workloadIdentityConfig"] == {"workloadPool": "my-proj.svc.id.goog"}
    assert inputs["datapathProvider"] == "ADVANCED_DATAPATH"
    assert inputs["databaseEncryption"] == {"state": "ENCRYPTED", "keyName": "gke-id"}
    assert inputs["deletionProtection"] is True and cluster.protect is True
    agent = plan.get("gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember", "gke-gke-agent").inputs
    assert agent["member"] == "serviceAccount:service-123456789012@container-engine-robot.iam.gserviceaccount.com"
    assert agent["role"] == "roles/cloudkms.cryptoKeyEncrypterDecrypter"


def test_nodes_have_least_privilege_and_pull_only_from_named_repositories(record):
    plan = record(lambda: GkeCluster("gke", cluster_args(image_repositories=["europe/mcp"]), network=NETWORK))
    roles = {r.inputs["role"] for r in plan.by_type("gcp:projects/iAMMember:IAMMember")}
    assert "roles/artifactregistry.reader" not in roles and "roles/logging.logWriter" in roles
    (pull,) = plan.by_type("gcp:artifactregistry/repositoryIamMember:RepositoryIamMember")
    assert (pull.inputs["location"], pull.inputs["repository"], pull.inputs["role"]) == (
        "europe", "mcp", "roles/artifactregistry.reader")
    pool = plan.get(POOL, "gke").inputs
    assert pool["nodeConfig"]["tags"] == ["mcp-t-gke"]
    assert pool["nodeConfig"]["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}
    assert "gke-gcloud-auth-plugin" in plan.get("pulumi:providers:kubernetes", "gke").inputs["kubeconfig"]


def test_binary_authorization_and_private_endpoint_are_options(record):
    plan = record(lambda: GkeCluster("gke", cluster_args(binary_authorization=True, private_endpoint=True,
                                                          secrets_encryption=False), network=NETWORK))
    inputs = plan.get(CLUSTER, "gke").inputs
    assert inputs["binaryAuthorization"] == {"evaluationMode": "PROJECT_SINGLETON_POLICY_ENFORCE"}
    assert inputs["privateClusterConfig"]["enablePrivateEndpoint"] is True
    assert inputs["databaseEncryption"] == {"state": "DECRYPTED"}


@pytest.mark.parametrize("overrides,message", [
    ({"zones": ["europe-west4-b"]}, "not a zone of region"),
    ({"master_cidr": "172.16.0.0/24"}, "must be a /28"),
    ({"master_authorized_networks": {"ci": "0.0.0.0/33"}}, "not an IPv4 CIDR"),
    ({"project": None}, "project is needed"),
    ({"node_pool": {"min_nodes": 5, "max_nodes": 2}}, "is larger than maxNodes"),
    ({"image_repositories": ["europe-docker.pkg.dev/p/mcp"]}, "LOCATION/REPOSITORY"),
])
def test_bad_cluster_settings_are_refused(overrides, message):
    with pytest.raises(SettingsError, match=message):
        cluster_args(**overrides)


# --- mesh ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides,message", [
    ({"kind": "linkerd"}, "Linkerd cannot hash on a request header"),
    ({"data_plane": "ambient"}, "ztunnel is L4 only"),
    ({"kind": "gke-gateway"}, "no field for the header name"),
])
def test_meshes_that_cannot_hash_on_a_header_are_refused(overrides, message):
    with pytest.raises(SettingsError, match=message):
        mesh_args(**overrides)


def test_istio_charts_are_pinned_read_top_level_values_and_wait_for_nodes(record):
    plan = record(lambda: gke())
    releases = {r.inputs["chart"]: r for r in plan.by_type(RELEASE)}
    assert sorted(releases) == ["base", "gateway", "istiod"]
    assert {r.inputs["version"] for r in releases.values()} == {ISTIO_VERSION} == {"1.30.3"}
    istiod = releases["istiod"].manifest()["values"]
    assert istiod == {"autoscaleMin": 2}
    pool = plan.get(POOL, "gke")
    assert all(pool.urn in r.dependencies for r in releases.values())


def test_gateway_is_cluster_ip_behind_negs_and_drains_as_long_as_streams(record):
    plan = record(lambda: gke())
    values = plan.get(RELEASE, "gke-mesh-gateway").manifest()["values"]
    assert values["service"]["type"] == "ClusterIP"
    annotations = values["service"]["annotations"]
    assert json.loads(annotations["cloud.google.com/neg"]) == {"exposed_ports": {"80": {}}}
    autoneg = json.loads(annotations["controller.autoneg.dev/neg"])
    assert autoneg["backend_services"]["80"][0]["name"] == "mcp-t-gke-gateway"
    assert values["terminationGracePeriodSeconds"] == 3600
    assert json.loads(values["podAnnotations"]["proxy.istio.io/config"]) == {"terminationDrainDuration": "3600s"}
    backend = plan.get("gcp:compute/backendService:BackendService", "gke-gateway")
    assert backend.inputs["timeoutSec"] == 3600 and backend.inputs["connectionDrainingTimeoutSec"] == 3600
    assert "backends" not in backend.inputs and backend.ignore_changes == ["backends"]
    assert backend.urn in plan.get(RELEASE, "gke-mesh-gateway").dependencies


def test_firewall_admits_google_front_ends_to_the_nodes_on_used_ports_only(record):
    rule = record(lambda: gke()).get("gcp:compute/firewall:Firewall", "gke-gateway").inputs
    assert rule["targetTags"] == ["mcp-t-gke"]
    assert rule["sourceRanges"] == ["35.191.0.0/16", "130.211.0.0/22"]
    assert rule["allows"] == [{"protocol": "tcp", "ports": ["80", "15021"]}]


def test_ambient_with_a_waypoint_installs_ztunnel_and_cloud_service_mesh_uses_the_fleet(record):
    ambient = record(lambda: gke({"data_plane": "ambient", "waypoint": True}))
    assert sorted(r.inputs["chart"] for r in ambient.by_type(RELEASE)) == ["base", "cni", "gateway", "istiod", "ztunnel"]
    managed = record(lambda: gke({"kind": "cloud-service-mesh"}))
    membership = managed.get("gcp:gkehub/featureMembership:FeatureMembership", "gke-mesh-servicemesh").inputs
    assert membership["mesh"] == {"management": "MANAGEMENT_AUTOMATIC"}
    assert [r.inputs["chart"] for r in managed.by_type(RELEASE)] == ["gateway"]


# --- mesh services -------------------------------------------------------------------------------

def test_shared_sessions_hash_the_header_and_the_route_has_no_timeout(record):
    plan = record(lambda: mesh_service(service_args(session_header="X-Session")))
    rule = spec(plan, DR, "notes-policy")
    assert rule == {"host": "notes.mcp-t-notes.svc.cluster.local",
                    "trafficPolicy": {"loadBalancer": {"consistentHash": {"httpHeaderName": "X-Session"}}}}
    route = spec(plan, VS, "notes-route")
    assert route["gateways"] == ["mcp-t-gke-mesh-gateway/mcp-t-gke-mesh-gateway"]
    assert route["http"] == [{"name": "default", "route": [{"destination": {
        "host": "notes.mcp-t-notes.svc.cluster.local", "port": {"number": 80}}}]}]
    assert validate_object(plan.get(VS, "notes-route").manifest()) == []


def test_in_memory_sessions_need_pinning_and_hashing_alone_is_refused():
    with pytest.raises(SettingsError, match=r"pins a session to \*a\* replica"):
        service_args(session_mode="in-memory-sessions")
    with pytest.raises(SettingsError, match="pinning goes with sessionMode in-memory-sessions"):
        service_args(pinning="learned")


def test_cookie_pinning_labels_the_service_and_needs_the_mesh_filter(record):
    with pytest.raises(SettingsError, match="clients that keep cookies"):
        service_args(session_mode="in-memory-sessions", pinning="cookie")
    args = service_args(session_mode="in-memory-sessions", pinning="cookie", acknowledge=["cookie-clients-only"])
    with pytest.raises(ValueError, match="persistentSessionFilter"):
        record(lambda: mesh_service(args))
    plan = record(lambda: mesh_service(args, {"persistent_session_filter": True}))
    labels = plan.get("kubernetes:core/v1:Service", "notes").inputs["metadata"]["labels"]
    assert labels["istio.io/persistent-session"] == "mcp-affinity"
    assert spec(plan, DR, "notes-policy")["trafficPolicy"] == {"loadBalancer": {"simple": "LEAST_REQUEST"}}
    istiod = plan.get(RELEASE, "gke-mesh-istiod").manifest()["values"]
    assert istiod["env"] == {"PILOT_ENABLE_PERSISTENT_SESSION_FILTER": "true"}
    assert "MCP_SESSION_STORE_URL" not in json.dumps(plan.get("kubernetes:apps/v1:Deployment", "notes").inputs)


def test_learned_pinning_puts_a_peered_haproxy_that_learns_the_session_in_front_of_the_pods(record):
    args = service_args(session_mode="in-memory-sessions", pinning="learned", pinning_replicas=3)
    plan = record(lambda: mesh_service(args))
    config = plan.get("kubernetes:core/v1:ConfigMap", "notes-pinning").inputs["data"]["haproxy.cfg"]
    # Learn only what a server answered; a client's made-up id is looked up, never stored.
    assert "stick store-response res.hdr(Mcp-Session-Id),sha1" in config
    assert "stick match req.hdr(Mcp-Session-Id),sha1" in config and "stick on" not in config
    assert "stick-table type binary len 20 size 100000 expire 1800s srvkey addr peers pinning" in config
    # 2 x 2,000 connections + 64 + one check socket per slot (30: maxReplicas 10 and two draining sets).
    assert "maxconn 2000\n  ulimit-n 4094\n" in config
    assert "timeout client 3600s" in config and "timeout http-request 10s" in config
    assert "timeout http-keep-alive 30s" in config
    assert [line.split()[1] for line in config.splitlines() if line.strip().startswith("peer ")] == [
        "notes-pinning-0", "notes-pinning-1", "notes-pinning-2"]
    assert "server-template mcp 1-30 notes-pods.mcp-t-notes.svc.cluster.local:8080" in config
    front = plan.get("kubernetes:core/v1:Service", "notes").inputs["spec"]
    assert front["selector"] == {"app": "notes-pinning"} and front["ports"][0]["targetPort"] == 8080
    pods = plan.get("kubernetes:core/v1:Service", "notes-pods").inputs["spec"]
    assert pods["clusterIP"] == "None" and pods["selector"] == {"app": "notes"}
    stateful = plan.get("kubernetes:apps/v1:StatefulSet", "notes-pinning").inputs["spec"]
    assert stateful["replicas"] == 3 and stateful["serviceName"] == "notes-pinning-peers"
    (haproxy,) = stateful["template"]["spec"]["containers"]
    # 32 MiB + 100,000 pins x 256 B + 2,000 connections x 33 KiB, rounded up to 16 MiB.
    assert haproxy["resources"]["limits"] == {"memory": "128Mi"} == {"memory": haproxy["resources"]["requests"]["memory"]}
    assert haproxy["readinessProbe"]["initialDelaySeconds"] == 5
    assert haproxy["livenessProbe"] == {"tcpSocket": {"port": 8404}, "periodSeconds": 10}
    to_pods = spec(plan, "kubernetes:security.istio.io/v1:AuthorizationPolicy", "notes-from-proxy")
    assert to_pods["rules"][0]["from"] == [{"source": {"principals": ["cluster.local/ns/mcp-t-notes/sa/notes-pinning"]}}]
    to_proxy = spec(plan, "kubernetes:security.istio.io/v1:AuthorizationPolicy", "notes-pinning-from-gateway")
    assert to_proxy["rules"][0]["from"] == [{"source": {"principals": ["cluster.local/ns/mcp-t-gke-mesh-gateway/sa/mcp-t-gke-mesh-gateway"]}}]
    for resource in plan.resources:
        if resource.type.startswith("kubernetes:") and "apiVersion" in resource.inputs:
            manifest = resource.manifest()
            errors = validate_object(manifest) if "istio.io" in manifest["apiVersion"] else validate_kubernetes(manifest)
            assert errors == [], (resource.name, errors)


def test_method_routes_send_mcp_methods_to_another_mesh_service(record):
    args = service_args(session_mode="stateless", method_routes={
        "render": {"method": "tools/call", "name": "render_video", "service": "heavy"}})
    plan = record(lambda: mesh_service(args, route_hosts={"heavy": service_host("mcp-t", "heavy")}))
    first, default = spec(plan, VS, "notes-route")["http"]
    assert first == {"name": "render", "match": [{"headers": {"mcp-method": {"exact": "tools/call"},
                                                              "mcp-name": {"exact": "render_video"},
                                                              "mcp-protocol-version": {"regex": MODERN_VERSIONS}}}],
                     "route": [{"destination": {"host": "heavy.mcp-t-heavy.svc.cluster.local", "port": {"number": 80}}}]}
    assert default["name"] == "default"
    assert validate_object(plan.get(VS, "notes-route").manifest()) == []


def test_only_the_gateway_may_call_a_mesh_service(record):
    plan = record(mesh_service)
    assert spec(plan, "kubernetes:security.istio.io/v1:PeerAuthentication", "notes-mtls")["mtls"] == {"mode": "STRICT"}
    policy = spec(plan, "kubernetes:security.istio.io/v1:AuthorizationPolicy", "notes-from-gateway")
    assert policy["action"] == "ALLOW"
    assert policy["rules"] == [{"from": [{"source": {"principals": ["cluster.local/ns/mcp-t-gke-mesh-gateway/sa/mcp-t-gke-mesh-gateway"]}}],
                                "to": [{"operation": {"ports": ["8080"]}}]}]
    network_policy = spec(plan, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "notes-from-gateway")
    assert network_policy["ingress"][0]["from"] == [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "mcp-t-gke-mesh-gateway"}}}]
    for kind, name in [("security.istio.io/v1:PeerAuthentication", "notes-mtls"),
                       ("security.istio.io/v1:AuthorizationPolicy", "notes-from-gateway")]:
        assert validate_object(plan.get(f"kubernetes:{kind}", name).manifest()) == []


def test_workload_identity_names_the_pool_from_the_cluster_and_grants_nothing_unused(record):
    plan = record(mesh_service)
    binding = plan.get("gcp:serviceaccount/iAMMember:IAMMember", "notes-workload-identity")
    assert binding.inputs["member"] == "serviceAccount:my-proj.svc.id.goog[mcp-t-notes/notes]"
    assert plan.get(CLUSTER, "gke").urn in binding.dependencies
    assert plan.by_type("gcp:secretmanager/secretIamMember:SecretIamMember") == []


def test_pods_drain_streams_and_read_the_store_only_through_a_secret(record):
    plan = record(mesh_service)
    template = spec(plan, "kubernetes:apps/v1:Deployment", "notes")["template"]
    assert template["spec"]["terminationGracePeriodSeconds"] == 3600
    assert json.loads(template["metadata"]["annotations"]["proxy.istio.io/config"]) == {"terminationDrainDuration": "3600s"}
    env = {e["name"]: e for e in template["spec"]["containers"][0]["env"]}
    assert env["MCP_SESSION_STORE_URL"]["valueFrom"] == {"secretKeyRef": {"name": "mcp-redis", "key": "url"}}
    secret = plan.get("kubernetes:core/v1:Secret", "notes").inputs
    assert secret["stringData"]["value"] == "[secret]"
    assert "rediss://" not in json.dumps([r.to_json() for r in plan.resources])


# --- the staging and prod plans ------------------------------------------------------------------

@pytest.fixture(scope="module", params=["staging", "prod"])
def gke_plan(request):
    return plan_stack(request.param, known=True)


def kubernetes_objects(plan):
    return [r for r in plan.resources if r.type.startswith("kubernetes:") and "apiVersion" in r.inputs]


def test_every_kubernetes_object_validates_strictly(gke_plan):
    objects = [r for r in kubernetes_objects(gke_plan) if not is_checked_type(r.type)]  # CRDs: tests/schemas/istio_check
    assert {r.inputs["kind"] for r in objects} >= {"Namespace", "Deployment", "Service", "HorizontalPodAutoscaler",
                                                   "PodDisruptionBudget", "ServiceAccount", "Secret", "NetworkPolicy"}
    errors = {r.urn: validate_kubernetes(r.manifest()) for r in objects}
    assert {urn: e for urn, e in errors.items() if e} == {}


def test_no_route_to_a_mesh_service_but_through_the_https_load_balancer(gke_plan):
    assert not [r for r in gke_plan.by_type("kubernetes:core/v1:Service") if r.inputs["spec"].get("type") == "LoadBalancer"]
    assert gke_plan.by_type("gcp:compute/address:Address") == []
    gateway = gke_plan.get(RELEASE, "mesh-gateway").manifest()["values"]["service"]
    assert gateway["type"] == "ClusterIP"
    services = {r.inputs["metadata"]["namespace"] for r in gke_plan.by_type("kubernetes:core/v1:Service")}
    policies = {r.inputs["metadata"]["namespace"] for r in gke_plan.by_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")}
    assert services <= policies
    url_map = gke_plan.get("gcp:compute/uRLMap:URLMap", "lb").inputs
    assert any(rule["pathMatcher"] == "gke" for rule in url_map["hostRules"])


def test_everything_waits_for_what_it_needs(gke_plan):
    """Kubernetes objects wait for the node pool; bindings naming the pool wait for the cluster;
    the store waits for the peering; the gateway waits for autoneg and its backend service."""
    pool = gke_plan.get(POOL, "gke").urn
    cluster = gke_plan.get(CLUSTER, "gke").urn
    for resource in gke_plan.resources:
        if resource.type.startswith("kubernetes:") and resource.custom:
            assert pool in resource.dependencies, resource.urn
    for binding in gke_plan.by_type("gcp:serviceaccount/iAMMember:IAMMember"):
        if "svc.id.goog" in binding.inputs.get("member", ""):
            assert cluster in binding.dependencies, binding.urn
    redis = gke_plan.get("gcp:redis/instance:Instance", "sessions")
    assert gke_plan.get("gcp:servicenetworking/connection:Connection", "network-psa").urn in redis.dependencies
    gateway = gke_plan.get(RELEASE, "mesh-gateway")
    assert gke_plan.get("gcp:compute/backendService:BackendService", "gateway").urn in gateway.dependencies
    assert any(r.urn in gateway.dependencies for r in gke_plan.by_type("kubernetes:apps/v1:Deployment")
               if "autoneg" in r.name)


# --- the contract: references and providers -------------------------------------------------------

def test_a_kubernetes_provider_in_opts_providers_reaches_every_kubernetes_object_of_the_platform(record):
    def program():
        own = k8s.Provider("own", kubeconfig="{}")
        platform = McpGkePlatform("gke", McpGkePlatformArgs(prefix="mcp-t", project="my-proj", cluster={
            "region": "europe-west1", "zones": ["europe-west1-b"]}), network=NETWORK,
            mesh_services={"notes": service_args()}, opts=pulumi.ResourceOptions(providers=[own])).ref()
        McpMeshService("notes", service_args(), cluster=platform.cluster, mesh=platform.mesh, session_store=STORE,
                       opts=pulumi.ResourceOptions(providers=[own]))

    plan = record(program)
    own = plan.get("pulumi:providers:kubernetes", "own").urn
    objects = [r for r in plan.resources if r.type.startswith("kubernetes:")]
    assert len(objects) > 20 and {r.provider for r in objects} == {own}


def test_without_a_provider_in_opts_each_object_uses_the_clusters(record):
    plan = record(lambda: mesh_service())
    cluster = plan.get("pulumi:providers:kubernetes", "gke").urn
    assert {r.provider for r in plan.resources if r.type.startswith("kubernetes:")} == {cluster}


def test_a_gateway_backend_without_the_autoneg_controller_is_refused():
    cluster = ClusterRef("c", "my-proj.svc.id.goog", "tag")
    gateway = MeshGatewayBackendRef("bs", {"cloud.google.com/neg": "{}"})
    with pytest.raises(ValueError, match="needs the autoneg controller"):
        Mesh("mesh", mesh_args(), cluster=cluster, gateway_backend=gateway)


def test_platform_settings_run_each_parts_rules():
    with pytest.raises(SettingsError, match="not a zone of region"):
        McpGkePlatformArgs(prefix="mcp-t", project="my-proj", cluster={"region": "europe-west1",
                                                                       "zones": ["us-central1-b"]})
    with pytest.raises(SettingsError, match="Linkerd"):
        McpGkePlatformArgs(prefix="mcp-t", project="my-proj", mesh={"kind": "linkerd"},
                           cluster={"region": "europe-west1", "zones": ["europe-west1-b"]})


def test_platform_ties_the_gateways_draining_to_the_meshs(record):
    plan = record(lambda: McpGkePlatform("gke", McpGkePlatformArgs(prefix="mcp-t", project="my-proj", cluster={
        "region": "europe-west1", "zones": ["europe-west1-b"]}, mesh={"drain_seconds": 600}), network=NETWORK))
    backend = plan.get("gcp:compute/backendService:BackendService", "gke-gateway").inputs
    assert backend["connectionDrainingTimeoutSec"] == 600 and backend["name"] == "mcp-t-gke-gateway"


def test_platform_autoneg_watches_only_the_gateways_namespace_and_refuses_a_list_without_it(record):
    args = dict(prefix="mcp-t", project="my-proj", cluster={"region": "europe-west1", "zones": ["europe-west1-b"]})
    plan = record(lambda: McpGkePlatform("gke", McpGkePlatformArgs(**args), network=NETWORK))
    container = plan.get("kubernetes:apps/v1:Deployment", "gke-autoneg").inputs["spec"]["template"]["spec"]["containers"][0]
    assert "--namespaces=mcp-t-gke-mesh-gateway" in container["args"]
    gateway = plan.get("kubernetes:helm.sh/v3:Release", "gke-mesh-gateway").inputs
    assert gateway["namespace"] == "mcp-t-gke-mesh-gateway"
    with pytest.raises(ValueError, match="leaves out the gateway's namespace"):
        McpGkePlatformArgs(**args, autoneg={"watch_namespaces": ["other"]}).parts("gke")
