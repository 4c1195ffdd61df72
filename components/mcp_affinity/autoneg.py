"""AutonegController: attach GKE's standalone NEGs to a backend service as GKE creates them.

GKE's NEG controller creates the zonal NEGs of a Service annotated ``cloud.google.com/neg``
(``exposed_ports``) only after the Service exists, and only in zones that have nodes
(https://cloud.google.com/kubernetes-engine/docs/how-to/standalone-neg). A backend service created
by Pulumi therefore cannot name them on the first ``pulumi up``. Google's gke-autoneg-controller
(https://github.com/GoogleCloudPlatform/gke-autoneg-controller) watches Services annotated
``controller.autoneg.dev/neg`` and adds their NEGs to a backend service created elsewhere, as they
appear, and removes them when the Service or a zone goes away.

This module installs that controller, pinned to :data:`AUTONEG_VERSION`, written from the
release's own files (read at the tag; no file of the repository is copied here):

- its Google service account, a custom IAM role with the permissions the controller's calls need,
  bound at project level, and Workload Identity for its Kubernetes service account;
- the Kubernetes objects of the release manifest ``deploy/autoneg.yaml``: namespace, service
  account, RBAC (manager ClusterRole, metrics-auth ClusterRole, leader-election Role, bindings) and
  the Deployment, hardened (non-root, read-only root filesystem, no capabilities);
- :func:`autoneg_annotation`, the annotations a Service needs for this version.

Wiring rules the caller must keep (each is an ordering or ownership fact, not a preference):

- The annotated Service ``depends_on`` ``AutonegController.ref().ready`` (:class:`~mcp_affinity.Mesh`
  takes that reference and does so). The controller puts the finalizer
  ``controller.autoneg.dev/neg`` on the Service (``controllers/autoneg.go``, ``autonegFinalizer``)
  and removes it after detaching the NEGs. Pulumi deletes dependents first,
  so on ``destroy`` the Service goes while the controller, its RBAC and its IAM still exist;
  otherwise the Service's deletion waits forever on the finalizer.
- The Service also depends on the backend service: the controller reads it by name
  (``backendServices.get``) and retries until it exists.
- The backend service is created with no ``backends`` and ``ignore_changes=["backends"]``: the
  controller owns that list (it patches it, ``controllers/autoneg.go`` ``updateBackends``); a
  Pulumi-managed list would remove its NEGs on the next ``up``.
- Nodes pull the image from ``ghcr.io``: private nodes need egress (Cloud NAT) or ``image`` set to
  a mirror (an Artifact Registry remote repository).
- One controller per cluster: its leader-election lease id is fixed
  (``9fe89c94.controller.autoneg.dev``, ``main.go``) in its own namespace, and every instance
  reconciles every annotated Service it can see.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Annotated, Optional, Sequence

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s
from pydantic import Field, Strict, model_validator

from .gke_cluster import ClusterRef, kubernetes_options
from .naming import KUBERNETES, SERVICE_ACCOUNT, NameRule, PhysicalName, physical_name
from .settings import Bool, Faults, Int, Settings, StrInput, takes_settings
from .wire import CLUSTER_ROLE, CLUSTER_ROLE_BINDING, GOOGLE_SERVICE_ACCOUNT, NAMESPACE, PROJECT_CUSTOM_ROLE

AUTONEG_VERSION = "v2.0.1"
"""The pinned release: the newest tag of GoogleCloudPlatform/gke-autoneg-controller (2026-04-13).

Every fact below was read at this tag. The tag's CI (``.github/workflows/go.yml``, run on tags
``v*``) pushes ``$(RELEASE_IMG):$(VERSION)`` with ``VERSION`` the tag name (``Makefile``,
``release-push``), so the image is ``...:v2.0.1``. Note: at this tag ``deploy/autoneg.yaml``,
``deploy/chart/Chart.yaml`` (appVersion) and ``terraform/autoneg/variables.tf`` still name
``v2.0.0`` (the tag was cut without ``.github/release.sh``), so a copy of those files would run the
previous binary.
"""

AUTONEG_IMAGE_REPOSITORY = "ghcr.io/googlecloudplatform/gke-autoneg-controller/gke-autoneg-controller"
"""Where the release image is published (``Makefile`` ``RELEASE_IMG``; ``deploy/autoneg.yaml``)."""

AUTONEG_ANNOTATION = "controller.autoneg.dev/neg"
"""The controller's configuration annotation (``controllers/autoneg.go`` ``autonegAnnotation``).

The older ``anthos.cft.dev/autoneg`` is not read since v2.0.0 (README.md, "Using Autoneg")."""

NEG_ANNOTATION = "cloud.google.com/neg"
"""GKE's standalone-NEG annotation (https://cloud.google.com/kubernetes-engine/docs/how-to/standalone-neg)."""

KSA_NAME = "autoneg-controller-manager"
"""The controller's Kubernetes service account, as the release manifest names it (``deploy/autoneg.yaml``)."""

RUN_AS = 65532
"""The non-root uid/gid of the release manifest's securityContext (``deploy/autoneg.yaml``)."""

HEALTH_PORT = 8081
METRICS_PORT = 8443

APP_LABELS = {"app": "autoneg", "control-plane": "controller-manager"}
"""The release manifest's pod labels and selector (``deploy/autoneg.yaml``)."""

# ----------------------------------------------------------------------------- Google IAM
# What the controller calls (controllers/autoneg.go at v2.0.1):
# - getBackendService: BackendServices.Get, or RegionBackendServices.Get when "region" is set;
# - updateBackends: BackendServices.Patch / RegionBackendServices.Patch with the whole service
#   (backends + the health checks it already names), then polls GlobalOperations.Get /
#   RegionOperations.Get until the patch is DONE.
# The release's own least-privilege role (deploy/workload_identity.sh; terraform/gcp/main.tf,
# locals zonal_permissions / permissions) is: backendServices.get, backendServices.update,
# networkEndpointGroups.use, healthChecks.useReadOnly, plus regionBackendServices.get/update and
# regionHealthChecks.useReadOnly when regional. The Compute API reference requires
# compute.globalOperations.get for globalOperations.get
# (https://cloud.google.com/compute/docs/reference/rest/v1/globalOperations/get) and
# compute.regionOperations.get for regionOperations.get; the release's role omits them, and a
# refused poll would make every patch end in a 4-minute retry and a reconcile error
# (maxElapsedTime), so they are added here.
GLOBAL_PERMISSIONS = (
    "compute.backendServices.get",
    "compute.backendServices.update",
    "compute.globalOperations.get",
    "compute.healthChecks.useReadOnly",
    "compute.networkEndpointGroups.use",
)
"""Permissions for global backend services (the global external Application Load Balancer)."""

REGIONAL_PERMISSIONS = (
    "compute.regionBackendServices.get",
    "compute.regionBackendServices.update",
    "compute.regionHealthChecks.useReadOnly",
    "compute.regionOperations.get",
)
"""Added with ``regional=True``: backend services named with a ``region`` in the annotation."""

CUSTOM_ROLE = NameRule("IAM custom role id", 64,
                       "https://cloud.google.com/iam/docs/reference/rest/v1/projects.roles/create",
                       min_length=3, pattern=r"[a-zA-Z0-9_.]+")
"""A project custom role id: 3 to 64 of ``[a-zA-Z0-9_.]`` (no hyphens)."""


_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
K8sName = Annotated[str, Strict(), Field(pattern=_DNS_LABEL)]
"""A Kubernetes namespace name: an RFC 1123 label of at most 63 characters."""

_IMAGE = r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[0-9a-f]{64})$"


class AutonegControllerArgs(Settings):
    """Settings of :class:`AutonegController`.

    ``deletion_protection`` and ``labels`` have nothing to act on here (no stateful resource, and
    neither a service account nor a custom role takes labels).
    """

    version: Annotated[str, Strict(), Field(pattern=r"^v2\.0\.\d+$")] = Field(
        default=AUTONEG_VERSION,
        description="the controller release, `v2.0.x`; another minor version is refused until its manifest and "
                    "controllers are checked.")
    image: Optional[Annotated[str, Strict(), Field(pattern=_IMAGE, max_length=512)]] = Field(
        default=None,
        description="a full image reference (`host/path:tag` or `...@sha256:...`) to pull instead of the release "
                    "image, e.g. an Artifact Registry mirror for nodes without internet egress. None uses "
                    "`ghcr.io/.../gke-autoneg-controller:{version}`.")
    namespace: Optional[K8sName] = Field(
        default=None,
        description="where the controller runs; unset: `{prefix}-{name}` (`{prefix}-autoneg` in a stack). The "
                    "namespaced objects keep the release manifest's names inside it.")
    replicas: Int = Field(
        default=1, ge=1, le=5,
        description="controller pods; with leader election on, one is active at a time and the others wait "
                    "(`--leader-elect`, `main.go`); with 2, a standby takes over a lost pod's lease after at most 30"
                    " s (`--leader-elect-lease-duration`) instead of after a reschedule.")
    regional: Bool = Field(
        default=False,
        description="also grant the regional backend-service permissions (annotation `region`); the global external "
                    "Application Load Balancer needs only the global ones.")
    watch_namespaces: list[K8sName] = Field(
        default_factory=list,
        description="reconcile only Services in these namespaces (`--namespaces`); empty means all. Anyone who may "
                    "annotate a watched Service may attach its NEGs to any backend service in the project: restrict "
                    "this to the gateway's namespace, which it must include.")
    metrics: Bool = Field(
        default=True,
        description="serve Prometheus metrics over HTTPS with Kubernetes authentication and authorization; false "
                    "turns the endpoint off and drops the role it needs.")
    cpu_millicores: Int = Field(
        default=100, ge=10, le=4000,
        description="the container's CPU request, millicores (the release manifest: 100).")
    memory_request_mib: Int = Field(
        default=20, ge=16, le=4096,
        description="the container's memory request, MiB (the release manifest: 20).")
    memory_limit_mib: Int = Field(
        default=30, ge=16, le=4096,
        description="the container's memory limit, MiB (the release manifest: 30).")

    @model_validator(mode="after")
    def _rules(self) -> "AutonegControllerArgs":
        faults = Faults("AutonegControllerArgs")
        if self.memory_request_mib > self.memory_limit_mib:
            faults.add("memoryRequestMib", f"{self.memory_request_mib} is larger than memoryLimitMib {self.memory_limit_mib}")
        for index, namespace in enumerate(self.watch_namespaces):
            if namespace in self.watch_namespaces[:index]:
                faults.add(("watchNamespaces", index), f"{namespace} is listed twice")
        faults.raise_if_any()
        return self

    @property
    def image_reference(self) -> str:
        """The image the Deployment runs: ``image``, or the release image of ``version``."""
        return self.image or f"{AUTONEG_IMAGE_REPOSITORY}:{self.version}"

    @property
    def permissions(self) -> list[str]:
        """The custom role's permissions, sorted (see :data:`GLOBAL_PERMISSIONS`)."""
        return sorted(GLOBAL_PERMISSIONS + (REGIONAL_PERMISSIONS if self.regional else ()))

    def names(self, name: str) -> dict[str, PhysicalName]:
        """Physical names: Google service account id, custom role id, the namespace and the
        cluster-scoped RBAC.

        The role id cannot hold hyphens: ``{prefix}_{name}`` with hyphens turned into ``_``.
        Raises ``ValueError`` naming the rule when a name breaks it.
        """
        p = self.prefix
        role_id = "_".join((p, name)).replace("-", "_")
        if not re.fullmatch(CUSTOM_ROLE.pattern, role_id):
            raise ValueError(f"the {CUSTOM_ROLE.what} {role_id!r} is not allowed: letters, digits, '_' and '.' "
                             f"only ({CUSTOM_ROLE.source}): use another component name")
        return {
            "service_account": physical_name(SERVICE_ACCOUNT, GOOGLE_SERVICE_ACCOUNT, p, name),
            "role": physical_name(CUSTOM_ROLE, PROJECT_CUSTOM_ROLE, role_id),
            "namespace": (physical_name(KUBERNETES, NAMESPACE, self.namespace) if self.namespace
                          else physical_name(KUBERNETES, NAMESPACE, p, name)),
            "manager_role": physical_name(KUBERNETES, CLUSTER_ROLE, p, name, "manager"),
            "manager_binding": physical_name(KUBERNETES, CLUSTER_ROLE_BINDING, p, name, "manager"),
            "metrics_role": physical_name(KUBERNETES, CLUSTER_ROLE, p, name, "metrics-auth"),
            "metrics_binding": physical_name(KUBERNETES, CLUSTER_ROLE_BINDING, p, name, "metrics-auth"),
        }

    def controller_args(self) -> list[str]:
        """The container's flags (``main.go`` at :data:`AUTONEG_VERSION` defines each).

        Leader election is set explicitly (its default is already true since v2.0.0) so that the
        intent survives a version whose default differs. ``--project-id`` is given when ``project``
        is: otherwise the controller asks the metadata server for the cluster's project.
        """
        args = [
            f"--health-probe-bind-address=:{HEALTH_PORT}",
            f"--metrics-bind-address=:{METRICS_PORT}" if self.metrics else "--metrics-bind-address=0",
            "--leader-elect=true",
            "--zap-encoder=json",
        ]
        if self.project:
            args.append(f"--project-id={self.project}")
        if self.watch_namespaces:
            args.append(f"--namespaces={','.join(self.watch_namespaces)}")
        return args


# ----------------------------------------------------------------------------- Kubernetes RBAC
# deploy/autoneg.yaml at v2.0.1 (ClusterRole autoneg-manager-role; its Go source has the same
# rules as kubebuilder markers in controllers/service_controller.go, plus svcneg for --use-svcneg,
# which is on by default since v2.0.0 and reads networking.gke.io ServiceNetworkEndpointGroups).
MANAGER_RULES = [
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "patch", "update", "watch"]},
    {"apiGroups": [""], "resources": ["services/finalizers"], "verbs": ["update"]},
    {"apiGroups": [""], "resources": ["services/status"], "verbs": ["get", "patch", "update"]},
    {"apiGroups": ["networking.gke.io"], "resources": ["servicenetworkendpointgroups"], "verbs": ["get", "list", "watch"]},
]
"""The controller's cluster-wide rules (``deploy/autoneg.yaml``, ClusterRole ``autoneg-manager-role``)."""

METRICS_AUTH_RULES = [
    {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
    {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
]
"""Rules the authenticated metrics endpoint needs (``deploy/autoneg.yaml``, ClusterRole ``autoneg-proxy-role``)."""

_ALL = ["get", "list", "watch", "create", "update", "patch", "delete"]
LEADER_ELECTION_RULES = [
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": _ALL},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": _ALL},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
]
"""Leader election in the controller's namespace (``deploy/autoneg.yaml``, Role ``autoneg-leader-election-role``)."""


# ----------------------------------------------------------------------------- Service annotation


def autoneg_annotation(backend_service_name: str, port: int, region: str | None = None,
                       max_rate_per_endpoint: float | None = None) -> dict[str, str]:
    """The annotations a Service needs so that the pinned controller attaches its NEGs.

    Returns two entries, each a compact JSON string:

    - ``cloud.google.com/neg``: ``{"exposed_ports": {"<port>": {}}}``: GKE creates standalone
      zonal NEGs for that Service port (https://cloud.google.com/kubernetes-engine/docs/how-to/standalone-neg).
    - ``controller.autoneg.dev/neg``:
      ``{"backend_services": {"<port>": [{"name": ..., "region": ..., "max_rate_per_endpoint": ...}]}}``.
      The format the controller reads at v2.0.1 (``controllers/types.go`` ``AutonegConfigTemp``
      and ``AutonegNEGConfig``; README.md, "Example annotations"): a map from the Service port, as
      a string, to a list of backend services. ``region`` is present only for a regional backend
      service (then the controller needs ``regional=True`` permissions).

    ``port`` is the Service port (1 to 65535), the key both annotations share. ``max_rate_per_endpoint``
    is requests per second per pod (> 0), sent as ``balancingMode: RATE``
    (``controllers/autoneg.go`` ``Backend``). When it is None the field is left out and the
    controller falls back to its ``--max-rate-per-endpoint`` flag, whose default 0 makes it
    register ``CONNECTION`` mode, which the backends of an Application Load Balancer do not take
    (https://cloud.google.com/load-balancing/docs/backend-service#balancing-mode): behind one, give
    a rate.

    Raises ``ValueError`` for a backend service name that is not a Compute Engine name (RFC 1035,
    at most 63 characters, https://cloud.google.com/compute/docs/naming-resources), a port out of
    range, a malformed region, or a rate that is not a positive finite number.
    """
    if not isinstance(backend_service_name, str) or not re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?",
                                                                     backend_service_name):
        raise ValueError(f"backend service name {backend_service_name!r}: 1 to 63 lowercase letters, digits and "
                         "hyphens, starting with a letter (https://cloud.google.com/compute/docs/naming-resources)")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"port {port!r}: a Service port is a whole number from 1 to 65535")
    entry: dict[str, object] = {"name": backend_service_name}
    if region is not None:
        if not isinstance(region, str) or not re.fullmatch(r"[a-z]+(-[a-z]+)+[0-9]+", region):
            raise ValueError(f"region {region!r} is not a Google Cloud region name such as europe-west1")
        entry["region"] = region
    if max_rate_per_endpoint is not None:
        rate = max_rate_per_endpoint
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0:
            raise ValueError(f"max_rate_per_endpoint {rate!r}: requests per second per endpoint, a number above 0")
        entry["max_rate_per_endpoint"] = int(rate) if float(rate).is_integer() else float(rate)
    key = str(port)
    return {
        NEG_ANNOTATION: json.dumps({"exposed_ports": {key: {}}}, separators=(",", ":")),
        AUTONEG_ANNOTATION: json.dumps({"backend_services": {key: [entry]}}, separators=(",", ":")),
    }


# ----------------------------------------------------------------------------- the component


def check_workload_pool(pool: Optional[str]) -> str:
    """Return ``pool`` if it is a GKE Workload Identity pool (``PROJECT.svc.id.goog``).

    Raises ``ValueError`` when it is empty (the cluster has no Workload Identity) or of another form.
    """
    if not pool:
        raise ValueError("the cluster has no Workload Identity pool: enable Workload Identity "
                         "(workload_identity_config.workload_pool) on the cluster")
    if not pool.endswith(".svc.id.goog"):
        raise ValueError(f"{pool!r} is not a GKE Workload Identity pool (PROJECT.svc.id.goog)")
    return pool


@dataclass(frozen=True)
class AutonegControllerRef:
    """What an annotated Service takes from the controller: its Google account and ``ready``, the
    resources the Service must depend on so that the controller outlives it (module docstring)."""

    service_account_email: StrInput
    ready: Sequence[pulumi.Resource] = ()


class AutonegController(pulumi.ComponentResource):
    """gke-autoneg-controller in one cluster, with its own Google identity.

    Context: ``cluster`` (:class:`~mcp_affinity.gke_cluster.ClusterRef`):

    - its ``workload_pool``, an Output of the cluster. The pool ``PROJECT.svc.id.goog`` exists only
      once a cluster with Workload Identity exists, so the binding that names it must wait for the
      cluster (https://cloud.google.com/kubernetes-engine/docs/how-to/workload-identity); a string
      built from the project would fail in a fresh project ("Identity Pool does not exist").
    - its ``ready`` resources (the node pool: it starts with no nodes), which the Kubernetes objects wait for.
    - its ``kubernetes_provider``, unless ``opts.providers`` names another: children inherit it.

    Creates, all parented to the component: a Google service account (``names()["service_account"]``),
    a custom role with :attr:`AutonegControllerArgs.permissions` bound to it at project level (the
    NEGs it must ``use`` exist only once GKE creates them, under names GKE picks, so that grant
    cannot name them; the release grants its role on the project too), ``roles/iam.workloadIdentityUser`` on that account for
    ``serviceAccount:{workload_pool}[{namespace}/autoneg-controller-manager]``; and in the cluster
    the namespace, the annotated service account, the RBAC and the Deployment.

    Outputs: ``service_account_email`` and ``namespace``; :meth:`ref` carries ``ready``, the
    resources an annotated Service must depend on (Deployment, RBAC bindings, IAM grants), see the
    module docstring.

    Raises ``ValueError`` for a name that breaks its rule, for no project (neither ``project`` nor
    ``gcp:project``), and, when the pool is known, for a cluster without Workload Identity.
    """

    service_account_email: pulumi.Output[str]
    namespace: pulumi.Output[str]

    @takes_settings
    def __init__(self, name: str, args: AutonegControllerArgs, *, cluster: ClusterRef,
                 opts: Optional[pulumi.ResourceOptions] = None):
        names = args.names(name)
        project = args.project or gcp.config.project
        if not project:
            raise ValueError("AutonegController needs a project: set `project` or the gcp:project config")
        super().__init__("mcp-affinity:index:AutonegController", name, None, kubernetes_options(opts, cluster))
        depends_on = list(cluster.ready)
        self._args = args
        gcp_child = pulumi.ResourceOptions(parent=self)

        # Google identity and permissions.
        account = gcp.serviceaccount.Account(
            name, account_id=names["service_account"].value, project=args.project,
            display_name="gke-autoneg-controller", description=f"gke-autoneg-controller {args.version} "
            "(attaches GKE NEGs to backend services)", opts=gcp_child)
        role = gcp.projects.IAMCustomRole(
            name, role_id=names["role"].value, project=args.project, title="gke-autoneg-controller",
            description=f"What gke-autoneg-controller {args.version} calls: read and patch backend services, "
                        "use NEGs and health checks, poll the patch operations",
            permissions=args.permissions, stage="GA", opts=gcp_child)
        grant = gcp.projects.IAMMember(f"{name}-role", project=project, role=role.id, member=account.member,
                                       opts=gcp_child)
        pool = pulumi.Output.from_input(cluster.workload_pool).apply(check_workload_pool)
        workload_identity = gcp.serviceaccount.IAMMember(
            f"{name}-workload-identity", service_account_id=account.id, role="roles/iam.workloadIdentityUser",
            member=pulumi.Output.concat("serviceAccount:", pool, f"[{names['namespace'].value}/{KSA_NAME}]"),
            opts=gcp_child)

        # Kubernetes objects, through the component's Kubernetes provider (inherited from the parent).
        k8s_child = pulumi.ResourceOptions(parent=self, depends_on=depends_on)
        labels = dict(APP_LABELS)
        namespace = k8s.core.v1.Namespace(
            name, metadata={"name": names["namespace"].value, "labels": {
                **labels,
                # The pod meets the "restricted" Pod Security Standard; refuse anything that does not.
                "pod-security.kubernetes.io/enforce": "restricted"}},
            opts=k8s_child)
        ns = namespace.metadata.name
        service_account = k8s.core.v1.ServiceAccount(
            name, metadata={"name": KSA_NAME, "namespace": ns, "labels": labels,
                            "annotations": {"iam.gke.io/gcp-service-account": account.email}},
            opts=k8s_child)
        subject = [{"kind": "ServiceAccount", "name": service_account.metadata.name, "namespace": ns}]
        bindings: list[pulumi.Resource] = []

        manager = k8s.rbac.v1.ClusterRole(
            f"{name}-manager", metadata={"name": names["manager_role"].value, "labels": labels},
            rules=MANAGER_RULES, opts=k8s_child)
        bindings.append(k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-manager", metadata={"name": names["manager_binding"].value, "labels": labels},
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": manager.metadata.name},
            subjects=subject, opts=k8s_child))
        if args.metrics:
            metrics_auth = k8s.rbac.v1.ClusterRole(
                f"{name}-metrics-auth", metadata={"name": names["metrics_role"].value, "labels": labels},
                rules=METRICS_AUTH_RULES, opts=k8s_child)
            bindings.append(k8s.rbac.v1.ClusterRoleBinding(
                f"{name}-metrics-auth", metadata={"name": names["metrics_binding"].value, "labels": labels},
                role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                          "name": metrics_auth.metadata.name},
                subjects=subject, opts=k8s_child))
        leader = k8s.rbac.v1.Role(
            f"{name}-leader-election",
            metadata={"name": "autoneg-leader-election", "namespace": ns, "labels": labels},
            rules=LEADER_ELECTION_RULES, opts=k8s_child)
        bindings.append(k8s.rbac.v1.RoleBinding(
            f"{name}-leader-election",
            metadata={"name": "autoneg-leader-election", "namespace": ns, "labels": labels},
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": leader.metadata.name},
            subjects=subject, opts=k8s_child))

        deployment = k8s.apps.v1.Deployment(
            name,
            metadata={"name": "autoneg-controller-manager", "namespace": ns, "labels": labels},
            spec=self._deployment_spec(service_account.metadata.name),
            # Start once the pod can act: RBAC bound and its Google identity granted, so the first
            # reconcile does not fail on a permission that is still being created.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*depends_on, *bindings, grant, workload_identity]),
        )

        self.service_account_email = account.email
        self.namespace = ns
        self._ready = (deployment, *bindings, grant, workload_identity)
        self.register_outputs({"service_account_email": self.service_account_email, "namespace": self.namespace,
                               "ready": [r.urn for r in self._ready]})

    def ref(self) -> "AutonegControllerRef":
        """This controller as the annotated Services' owners take it."""
        return AutonegControllerRef(self.service_account_email, self._ready)

    def _deployment_spec(self, service_account_name: pulumi.Input[str]) -> dict:
        """The Deployment spec of ``deploy/autoneg.yaml`` at the pinned tag, with our settings."""
        args = self._args
        pod_security = {"runAsNonRoot": True, "runAsUser": RUN_AS, "runAsGroup": RUN_AS,
                        "seccompProfile": {"type": "RuntimeDefault"}}
        return {
            "replicas": args.replicas,
            "selector": {"matchLabels": dict(APP_LABELS)},
            "template": {
                "metadata": {"labels": dict(APP_LABELS)},
                "spec": {
                    "serviceAccountName": service_account_name,
                    # Only nodes running the GKE metadata server give pods their Workload Identity.
                    "nodeSelector": {"iam.gke.io/gke-metadata-server-enabled": "true"},
                    "securityContext": pod_security,
                    "terminationGracePeriodSeconds": 10,
                    "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                        "weight": 100,
                        "podAffinityTerm": {"labelSelector": {"matchLabels": dict(APP_LABELS)},
                                            "topologyKey": "kubernetes.io/hostname"},
                    }]}},
                    "containers": [{
                        "name": "manager",
                        "image": args.image_reference,
                        "command": ["/manager"],
                        "args": args.controller_args(),
                        "ports": [{"name": "health", "containerPort": HEALTH_PORT, "protocol": "TCP"}]
                        + ([{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}] if args.metrics else []),
                        "livenessProbe": {"httpGet": {"path": "/healthz", "port": HEALTH_PORT},
                                          "initialDelaySeconds": 15, "periodSeconds": 20},
                        "readinessProbe": {"httpGet": {"path": "/readyz", "port": HEALTH_PORT},
                                           "initialDelaySeconds": 5, "periodSeconds": 10},
                        "resources": {
                            "requests": {"cpu": f"{args.cpu_millicores}m", "memory": f"{args.memory_request_mib}Mi"},
                            "limits": {"cpu": f"{args.cpu_millicores}m", "memory": f"{args.memory_limit_mib}Mi"},
                        },
                        "securityContext": {
                            **pod_security,
                            "allowPrivilegeEscalation": False,
                            "privileged": False,
                            "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]},
                        },
                    }],
                },
            },
        }
