"""Pulumi's wire-format sentinels, the plan's placeholder for a secret and every resource type
token the package names, defined once.

The components, the command line, the policy rules, the stack program and the conformance run all
take them from here.

The engine sends unknown values as the string ``UNKNOWN`` and secrets in an envelope
``{SECRET_SIG: SECRET_VALUE_SIG, "value": ...}``; see ``pulumi/sdk/python/lib/pulumi/runtime/rpc.py``.
"""

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
"""The unknown sentinel the engine sends for a value only the provider computes."""

UNKNOWNS = frozenset({UNKNOWN, "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7", "3eeb2bf0-c639-47a8-9e75-3b44932eb421",
                      "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2", "030794c1-ac77-496b-92df-f27374a8bd58",
                      "e48ece36-62e2-4504-bad9-02848725956a", "dd056dcd-154b-4c76-9bd3-c8f88648b5ff"})
"""Every typed unknown sentinel (string, bool, number, array, object, asset, archive)."""

SECRET_SIG = "4dabf18193072939515e22adb298388d"
"""The key that marks a special value in a property bag."""

SECRET_VALUE_SIG = "1b47061264138c4ac30d75fd1eb44270"
"""The value of ``SECRET_SIG`` that marks a secret envelope."""

MASKED = "[secret]"
"""What a secret's value becomes in every plan this tool writes, and what a ``secure:`` config value
reads as under ``mcp-affinity plan`` (which has no key to decrypt it)."""

PLANNED_ID = "mcp-affinity-planned-id:"
"""How a resource's id reads while ``mcp-affinity plan`` runs the program (``PLANNED_ID`` and a serial
number); the plan turns every string holding one back into :data:`UNKNOWN` (``cli/runner.py``)."""

COMPUTED = "(known after apply)"
"""How an unknown value reads in a plan, as in ``pulumi preview``."""


# Resource type tokens (``pkg:module:Member``), as the pinned pulumi-gcp and pulumi-kubernetes name
# them in each resource class's ``super().__init__('...')``. Every type the package, the command line,
# the stack program and the conformance run name is here, once; ``tests/test_wire_tokens.py`` checks
# each against the installed SDKs and that no other module spells one out.

# Google Cloud (pulumi-gcp).
REDIS = "gcp:redis/instance:Instance"
CLOUD_RUN = "gcp:cloudrunv2/service:Service"
CLOUD_RUN_IAM_MEMBER = "gcp:cloudrunv2/serviceIamMember:ServiceIamMember"
NEG = "gcp:compute/regionNetworkEndpointGroup:RegionNetworkEndpointGroup"
BACKEND = "gcp:compute/backendService:BackendService"
URL_MAP = "gcp:compute/uRLMap:URLMap"
TARGET_HTTPS_PROXY = "gcp:compute/targetHttpsProxy:TargetHttpsProxy"
TARGET_HTTP_PROXY = "gcp:compute/targetHttpProxy:TargetHttpProxy"
SSL_POLICY = "gcp:compute/sSLPolicy:SSLPolicy"
MANAGED_SSL_CERTIFICATE = "gcp:compute/managedSslCertificate:ManagedSslCertificate"
FORWARDING_RULE = "gcp:compute/globalForwardingRule:GlobalForwardingRule"
GLOBAL_ADDRESS = "gcp:compute/globalAddress:GlobalAddress"
ADDRESS = "gcp:compute/address:Address"
SECURITY_POLICY = "gcp:compute/securityPolicy:SecurityPolicy"
SECURITY_POLICY_RULE = "gcp:compute/securityPolicyRule:SecurityPolicyRule"
HEALTH_CHECK = "gcp:compute/healthCheck:HealthCheck"
FIREWALL = "gcp:compute/firewall:Firewall"
NETWORK = "gcp:compute/network:Network"
SUBNETWORK = "gcp:compute/subnetwork:Subnetwork"
ROUTER = "gcp:compute/router:Router"
ROUTER_NAT = "gcp:compute/routerNat:RouterNat"
SERVICE_NETWORKING_CONNECTION = "gcp:servicenetworking/connection:Connection"
CONTAINER_CLUSTER = "gcp:container/cluster:Cluster"
NODE_POOL = "gcp:container/nodePool:NodePool"
GKE_HUB_MEMBERSHIP = "gcp:gkehub/membership:Membership"
KMS_KEY_RING = "gcp:kms/keyRing:KeyRing"
KMS_CRYPTO_KEY = "gcp:kms/cryptoKey:CryptoKey"
SECRET_MANAGER_SECRET = "gcp:secretmanager/secret:Secret"
SECRET_VERSION = "gcp:secretmanager/secretVersion:SecretVersion"
SECRET_IAM_MEMBER = "gcp:secretmanager/secretIamMember:SecretIamMember"
GOOGLE_SERVICE_ACCOUNT = "gcp:serviceaccount/account:Account"
SERVICE_ACCOUNT_IAM_MEMBER = "gcp:serviceaccount/iAMMember:IAMMember"
PROJECT_IAM_MEMBER = "gcp:projects/iAMMember:IAMMember"
PROJECT_CUSTOM_ROLE = "gcp:projects/iAMCustomRole:IAMCustomRole"
PROJECT_SERVICE_IDENTITY = "gcp:projects/serviceIdentity:ServiceIdentity"
IAP_BACKEND_IAM_MEMBER = "gcp:iap/webBackendServiceIamMember:WebBackendServiceIamMember"
IAP_SETTINGS = "gcp:iap/settings:Settings"
DASHBOARD = "gcp:monitoring/dashboard:Dashboard"
ALERT_POLICY = "gcp:monitoring/alertPolicy:AlertPolicy"
LOG_METRIC = "gcp:logging/metric:Metric"
UPTIME_CHECK = "gcp:monitoring/uptimeCheckConfig:UptimeCheckConfig"

GET_PROJECT = "gcp:organizations/getProject:getProject"
"""The token of the ``gcp.organizations.get_project`` invoke (a function, not a resource type)."""

# Kubernetes (pulumi-kubernetes).
K8S_SERVICE = "kubernetes:core/v1:Service"
NAMESPACE = "kubernetes:core/v1:Namespace"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
HORIZONTAL_POD_AUTOSCALER = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
STATEFUL_SET = "kubernetes:apps/v1:StatefulSet"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
CLUSTER_ROLE = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole"
CLUSTER_ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding"
HELM_V3_RELEASE = "kubernetes:helm.sh/v3:Release"

# Istio's custom resources: ``CustomResource`` registers ``kubernetes:{apiVersion}:{kind}``.
DESTINATION_RULE = "kubernetes:networking.istio.io/v1:DestinationRule"
VIRTUAL_SERVICE = "kubernetes:networking.istio.io/v1:VirtualService"
ISTIO_GATEWAY = "kubernetes:networking.istio.io/v1:Gateway"
REQUEST_AUTHENTICATION = "kubernetes:security.istio.io/v1:RequestAuthentication"
AUTHORIZATION_POLICY = "kubernetes:security.istio.io/v1:AuthorizationPolicy"

# Pulumi's Python dynamic provider: a ``pulumi.dynamic.Resource`` subclass declared with a module
# and a name registers ``pulumi-python:dynamic/{module}:{name}`` (pulumi/dynamic/dynamic.py).
GENERATION_GUARD = "pulumi-python:dynamic/mcp-affinity:GenerationGuard"
"""The guard of a sharded Cloud Run service's named revisions (:mod:`mcp_affinity.generation_guard`)."""

KUBERNETES_PROVIDER = "kubernetes:index:Provider"
"""A member of the ``kubernetes`` package for ``Resource.get_provider``, which reads only the package."""
