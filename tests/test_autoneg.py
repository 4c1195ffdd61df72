"""AutonegController and autoneg_annotation, on mocks.

Expected values come from gke-autoneg-controller at the pinned tag (v2.0.1): ``deploy/autoneg.yaml``
(RBAC, Deployment), ``deploy/workload_identity.sh`` and ``terraform/gcp/main.tf`` (IAM),
``controllers/types.go`` and README.md (annotation format), ``main.go`` (flags).
"""

from __future__ import annotations

import json

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s
import pytest
from pulumi.runtime import mocks
from mcp_affinity.errors import SettingsError

from mcp_affinity.autoneg import (
    AUTONEG_ANNOTATION,
    AUTONEG_VERSION,
    NEG_ANNOTATION,
    AutonegController,
    AutonegControllerArgs,
    autoneg_annotation,
    check_workload_pool,
)
from mcp_affinity.gke_cluster import ClusterRef
from mcp_affinity.cli.runner import run_function
from schemas.validate import validate_kubernetes

COMPONENT = "mcp-affinity:index:AutonegController"
POOL = "my-proj.svc.id.goog"
MEMBER = f"serviceAccount:{POOL}[mcp-autoneg/autoneg-controller-manager]"
IMAGE = "ghcr.io/googlecloudplatform/gke-autoneg-controller/gke-autoneg-controller:v2.0.1"

ROLE = "gcp:projects/iAMCustomRole:IAMCustomRole"
PROJECT_MEMBER = "gcp:projects/iAMMember:IAMMember"
SA_MEMBER = "gcp:serviceaccount/iAMMember:IAMMember"
ACCOUNT = "gcp:serviceaccount/account:Account"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
CLUSTER_ROLE = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole"
CLUSTER_ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding"
ROLE_K8S = "kubernetes:rbac.authorization.k8s.io/v1:Role"
ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
# The test program's own resources (not the component's).
OWN = {"pulumi:providers:kubernetes", "gcp:container/cluster:Cluster", "gcp:container/nodePool:NodePool"}


def settings(**overrides) -> AutonegControllerArgs:
    return AutonegControllerArgs(prefix="mcp", project="my-proj", **overrides)


def program(args: AutonegControllerArgs | None = None, holder: dict | None = None):
    """A cluster (its pool an Output), a node pool, a provider, and the component."""

    def run() -> None:
        cluster = gcp.container.Cluster("cluster", location="europe-west1",
                                        workload_identity_config={"workload_pool": POOL})
        node_pool = gcp.container.NodePool("pool", cluster=cluster.name, location="europe-west1")
        provider = k8s.Provider("k8s", kubeconfig="{}")
        pool = cluster.workload_identity_config.apply(lambda c: c.workload_pool if c else None)
        component = AutonegController("autoneg", args or settings(),
                                      cluster=ClusterRef(cluster.id, pool, "mcp-gke", provider, (node_pool,)))
        if holder is not None:
            holder["component"] = component

    return run


@pytest.fixture(scope="module")
def plan():
    from conftest import GcpMocks

    return run_function(program(), project="test", stack="test", mock=GcpMocks(), preview=False)


def urn(plan, type_: str, name: str) -> str:
    return plan.get(type_, name).urn


# ----------------------------------------------------------------------------- Google IAM


def test_custom_role_has_exactly_the_permissions_the_controller_calls_need(plan):
    role = plan.get(ROLE, "autoneg").inputs
    assert role["permissions"] == [
        "compute.backendServices.get",         # getBackendService (controllers/autoneg.go)
        "compute.backendServices.update",      # BackendServices.Patch
        "compute.globalOperations.get",        # polling the patch operation
        "compute.healthChecks.useReadOnly",    # the patched service names its health check
        "compute.networkEndpointGroups.use",   # adding a NEG as a backend
    ]
    assert role["roleId"] == "mcp_autoneg"
    assert role["project"] == "my-proj"
    assert role["stage"] == "GA"


def test_regional_backend_services_add_the_regional_permissions(record):
    plan = record(program(settings(regional=True)))
    permissions = plan.get(ROLE, "autoneg").inputs["permissions"]
    assert {"compute.regionBackendServices.get", "compute.regionBackendServices.update",
            "compute.regionHealthChecks.useReadOnly", "compute.regionOperations.get"} <= set(permissions)
    assert len(permissions) == 9


def test_role_is_granted_to_the_controller_account_at_project_level(plan):
    grant = plan.get(PROJECT_MEMBER, "autoneg-role").inputs
    assert grant == {"project": "my-proj", "role": "autoneg-id",  # the custom role's id (mock)
                     "member": "serviceAccount:sa@p.iam.gserviceaccount.com"}
    account = plan.get(ACCOUNT, "autoneg").inputs
    assert account["accountId"] == "mcp-autoneg"
    assert account["project"] == "my-proj"


def test_workload_identity_member_comes_from_the_clusters_pool(plan):
    binding = plan.get(SA_MEMBER, "autoneg-workload-identity").inputs
    assert binding == {"serviceAccountId": "autoneg-id", "role": "roles/iam.workloadIdentityUser", "member": MEMBER}


def test_workload_identity_binding_waits_for_the_cluster(monkeypatch):
    # The engine orders a resource after every resource its inputs' Outputs come from
    # (RegisterResourceRequest.propertyDependencies): the member must carry the cluster, so the
    # binding is created only once the pool exists. A string built from the project would not.
    from conftest import GcpMocks

    carried: dict[str, dict[str, list[str]]] = {}
    register = mocks.MockMonitor.RegisterResource

    def recording(self, request):
        carried[request.name] = {k: list(v.urns) for k, v in request.propertyDependencies.items()}
        return register(self, request)

    monkeypatch.setattr(mocks.MockMonitor, "RegisterResource", recording)
    plan = run_function(program(), project="test", stack="test", mock=GcpMocks(), preview=False)
    cluster = urn(plan, "gcp:container/cluster:Cluster", "cluster")
    assert cluster in carried["autoneg-workload-identity"]["member"]


def test_a_cluster_without_workload_identity_is_refused():
    # The component applies this check to the pool Output; tested directly, because an exception
    # raised inside a mocked program leaves the runtime in a state that breaks the next test.
    with pytest.raises(ValueError, match="no Workload Identity pool"):
        check_workload_pool(None)
    with pytest.raises(ValueError, match="not a GKE Workload Identity pool"):
        check_workload_pool("my-proj")
    assert check_workload_pool(POOL) == POOL


def test_a_pool_passed_as_an_output_is_used_verbatim(record):
    def run() -> None:
        AutonegController("autoneg", settings(), cluster=ClusterRef(
            "c", pulumi.Output.from_input("other-proj.svc.id.goog"), "mcp-gke", k8s.Provider("k8s", kubeconfig="{}")))

    member = record(run).get(SA_MEMBER, "autoneg-workload-identity").inputs["member"]
    assert member == "serviceAccount:other-proj.svc.id.goog[mcp-autoneg/autoneg-controller-manager]"


# ----------------------------------------------------------------------------- Kubernetes objects


def test_deployment_runs_the_pinned_release_image_hardened(plan):
    deployment = plan.get(DEPLOYMENT, "autoneg").inputs
    assert deployment["metadata"]["namespace"] == "mcp-autoneg"
    assert deployment["spec"]["replicas"] == 1
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "autoneg-controller-manager"
    assert pod["nodeSelector"] == {"iam.gke.io/gke-metadata-server-enabled": "true"}
    assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                                      "seccompProfile": {"type": "RuntimeDefault"}}
    (container,) = pod["containers"]
    assert container["image"] == IMAGE
    assert AUTONEG_VERSION == "v2.0.1"
    assert container["command"] == ["/manager"]
    assert container["args"] == ["--health-probe-bind-address=:8081", "--metrics-bind-address=:8443",
                                 "--leader-elect=true", "--zap-encoder=json", "--project-id=my-proj"]
    assert container["securityContext"] == {
        "runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"},
        "allowPrivilegeEscalation": False, "privileged": False, "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["resources"] == {"requests": {"cpu": "100m", "memory": "20Mi"},
                                      "limits": {"cpu": "100m", "memory": "30Mi"}}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 8081}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 8081}


def test_service_account_names_the_google_account(plan):
    account = plan.get("kubernetes:core/v1:ServiceAccount", "autoneg").inputs
    assert account["metadata"]["name"] == "autoneg-controller-manager"
    assert account["metadata"]["annotations"] == {"iam.gke.io/gcp-service-account": "sa@p.iam.gserviceaccount.com"}


def test_namespace_enforces_the_restricted_pod_security_standard(plan):
    namespace = plan.get("kubernetes:core/v1:Namespace", "autoneg").inputs
    assert namespace["metadata"]["name"] == "mcp-autoneg"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_rbac_matches_the_release_manifest(plan):
    manager = plan.get(CLUSTER_ROLE, "autoneg-manager").inputs
    assert manager["metadata"]["name"] == "mcp-autoneg-manager"
    assert {(tuple(r["apiGroups"]), tuple(r["resources"])): r["verbs"] for r in manager["rules"]} == {
        (("",), ("events",)): ["create", "patch"],
        (("",), ("services",)): ["get", "list", "patch", "update", "watch"],
        (("",), ("services/finalizers",)): ["update"],
        (("",), ("services/status",)): ["get", "patch", "update"],
        (("networking.gke.io",), ("servicenetworkendpointgroups",)): ["get", "list", "watch"],
    }
    metrics = plan.get(CLUSTER_ROLE, "autoneg-metrics-auth").inputs
    assert [(r["resources"], r["verbs"]) for r in metrics["rules"]] == [
        (["tokenreviews"], ["create"]), (["subjectaccessreviews"], ["create"])]
    leader = plan.get(ROLE_K8S, "autoneg-leader-election").inputs
    assert leader["metadata"]["namespace"] == "mcp-autoneg"
    assert [r["resources"] for r in leader["rules"]] == [["configmaps"], ["leases"], ["events"]]
    subject = [{"kind": "ServiceAccount", "name": "autoneg-controller-manager", "namespace": "mcp-autoneg"}]
    for type_, name, role in [(CLUSTER_ROLE_BINDING, "autoneg-manager", "mcp-autoneg-manager"),
                              (CLUSTER_ROLE_BINDING, "autoneg-metrics-auth", "mcp-autoneg-metrics-auth"),
                              (ROLE_BINDING, "autoneg-leader-election", "autoneg-leader-election")]:
        binding = plan.get(type_, name).inputs
        assert binding["subjects"] == subject
        assert binding["roleRef"]["name"] == role


def test_metrics_off_drops_the_endpoint_and_its_role(record):
    plan = record(program(settings(metrics=False, watch_namespaces=["istio-ingress"], replicas=2)))
    assert [r.name for r in plan.by_type(CLUSTER_ROLE)] == ["autoneg-manager"]
    container = plan.get(DEPLOYMENT, "autoneg").inputs["spec"]["template"]["spec"]["containers"][0]
    assert "--metrics-bind-address=0" in container["args"]
    assert "--namespaces=istio-ingress" in container["args"]
    assert [p["name"] for p in container["ports"]] == ["health"]
    assert plan.get(DEPLOYMENT, "autoneg").inputs["spec"]["replicas"] == 2


def test_image_can_point_at_a_mirror(record):
    mirror = "europe-docker.pkg.dev/my-proj/ghcr/googlecloudplatform/gke-autoneg-controller/gke-autoneg-controller:v2.0.1"
    plan = record(program(settings(image=mirror)))
    assert plan.get(DEPLOYMENT, "autoneg").inputs["spec"]["template"]["spec"]["containers"][0]["image"] == mirror


def test_every_kubernetes_object_validates_strictly(plan):
    objects = [r for r in plan.resources if r.type.startswith("kubernetes:") and r.custom]
    assert sorted(r.inputs["kind"] for r in objects) == [
        "ClusterRole", "ClusterRole", "ClusterRoleBinding", "ClusterRoleBinding", "Deployment", "Namespace",
        "Role", "RoleBinding", "ServiceAccount"]
    errors = {r.urn: validate_kubernetes(r.manifest()) for r in objects}
    assert {u: e for u, e in errors.items() if e} == {}


# ----------------------------------------------------------------------------- structure and ordering


def test_every_child_is_parented_to_the_component(plan):
    (component,) = plan.by_type(COMPONENT)
    children = [r for r in plan.resources if r.type not in OWN and r.type != COMPONENT]
    assert len(children) == 13  # 4 Google resources, 9 Kubernetes objects
    assert {r.parent for r in children} == {component.urn}


def test_kubernetes_objects_use_the_clusters_provider_and_wait_for_the_node_pool(plan):
    provider = urn(plan, "pulumi:providers:kubernetes", "k8s")
    node_pool = urn(plan, "gcp:container/nodePool:NodePool", "pool")
    for resource in plan.resources:
        if resource.type.startswith("kubernetes:"):
            assert resource.provider == provider, resource.urn
            assert node_pool in resource.depends_on, resource.urn


def test_a_provider_the_caller_passes_in_opts_providers_is_the_one_every_child_uses(record):
    def run() -> None:
        own = k8s.Provider("own", kubeconfig="{}")
        AutonegController("autoneg", settings(), cluster=ClusterRef(
            "c", POOL, "mcp-gke", k8s.Provider("k8s", kubeconfig="{}")), opts=pulumi.ResourceOptions(providers=[own]))

    plan = record(run)
    own, cluster = urn(plan, "pulumi:providers:kubernetes", "own"), urn(plan, "pulumi:providers:kubernetes", "k8s")
    objects = [r for r in plan.resources if r.type.startswith("kubernetes:")]
    assert len(objects) == 9 and {r.provider for r in objects} == {own} and own != cluster


def test_without_any_kubernetes_provider_the_component_refuses():
    with pytest.raises(ValueError, match="no Kubernetes provider"):
        AutonegController("autoneg", settings(), cluster=ClusterRef("c", POOL, "mcp-gke"))


def test_deployment_waits_for_its_permissions(plan):
    depends = set(plan.get(DEPLOYMENT, "autoneg").depends_on)
    assert {urn(plan, PROJECT_MEMBER, "autoneg-role"), urn(plan, SA_MEMBER, "autoneg-workload-identity"),
            urn(plan, CLUSTER_ROLE_BINDING, "autoneg-manager"), urn(plan, ROLE_BINDING, "autoneg-leader-election")} <= depends


def test_ready_lists_what_an_annotated_service_must_depend_on(record):
    holder: dict = {}
    record(program(holder=holder))
    ready = holder["component"].ref().ready
    assert [type(r).__name__ for r in ready] == [
        "Deployment", "ClusterRoleBinding", "ClusterRoleBinding", "RoleBinding", "IAMMember", "IAMMember"]


# ----------------------------------------------------------------------------- settings and names


def test_settings_are_strict():
    with pytest.raises(SettingsError):
        settings(version="v2.1.0")  # RBAC and flags were read at v2.0.1 only
    with pytest.raises(SettingsError):
        settings(replicas="2")
    with pytest.raises(SettingsError):
        settings(memory_request_mib=64, memory_limit_mib=32)
    with pytest.raises(SettingsError):
        settings(image="gke-autoneg-controller")  # no registry, no tag
    with pytest.raises(SettingsError):
        settings(unknown=1)
    assert AutonegControllerArgs.model_validate({"prefix": "mcp", "watchNamespaces": ["istio-ingress"]}).watch_namespaces == [
        "istio-ingress"]


def test_names_follow_each_rule():
    names = settings().names("edge-autoneg")
    assert names["service_account"].value == "mcp-edge-autoneg"
    assert names["role"].value == "mcp_edge_autoneg"
    with pytest.raises(ValueError, match="service account id"):
        AutonegControllerArgs(prefix="a").names("b")  # 3 characters, a service account id needs 6
    with pytest.raises(ValueError, match="IAM custom role id"):
        settings().names("auto/neg")
    with pytest.raises(ValueError, match="service account id"):
        settings().names("x" * 40)


# ----------------------------------------------------------------------------- the annotation helper


def test_annotation_for_a_global_backend_service():
    assert autoneg_annotation("mcp-gateway", 80, max_rate_per_endpoint=1000) == {
        "cloud.google.com/neg": '{"exposed_ports":{"80":{}}}',
        "controller.autoneg.dev/neg": '{"backend_services":{"80":[{"name":"mcp-gateway","max_rate_per_endpoint":1000}]}}',
    }


def test_annotation_for_a_regional_backend_service_with_a_fractional_rate():
    value = autoneg_annotation("ilb-be", 8080, region="europe-west4", max_rate_per_endpoint=12.5)
    assert value[AUTONEG_ANNOTATION] == (
        '{"backend_services":{"8080":[{"name":"ilb-be","region":"europe-west4","max_rate_per_endpoint":12.5}]}}')
    assert json.loads(value[NEG_ANNOTATION]) == {"exposed_ports": {"8080": {}}}


def test_annotation_without_a_rate_leaves_it_to_the_controller():
    assert autoneg_annotation("be", 443)[AUTONEG_ANNOTATION] == '{"backend_services":{"443":[{"name":"be"}]}}'


@pytest.mark.parametrize("call", [
    lambda: autoneg_annotation("Bad_Name", 80),
    lambda: autoneg_annotation("b" * 64, 80),
    lambda: autoneg_annotation("be", 0),
    lambda: autoneg_annotation("be", 70000),
    lambda: autoneg_annotation("be", True),
    lambda: autoneg_annotation("be", 80, region="europe west4"),
    lambda: autoneg_annotation("be", 80, max_rate_per_endpoint=0),
    lambda: autoneg_annotation("be", 80, max_rate_per_endpoint=float("inf")),
])
def test_annotation_refuses_what_the_controller_or_compute_would(call):
    with pytest.raises(ValueError):
        call()
