"""mcp-affinity: Pulumi components that keep MCP streamable-HTTP sessions working at scale on Google Cloud.

Each component takes **settings** (a pydantic model, validated before any resource exists) and a
**context** of typed references to other components' outputs (keyword arguments; frozen
dataclasses such as :class:`NetworkRef` and :class:`ClusterRef`, made by each component's
``ref()``); providers come through ``opts`` (``providers=[...]``) and reach every child::

    network = Network("net", NetworkArgs(prefix="acme", subnets={"europe-west1": SubnetArgs(ip_cidr_range="10.0.0.0/24")}))
    store = SessionStore("sessions", SessionStoreArgs(prefix="acme"), network=network.ref())
    tools = CloudRunMcpService("tools", CloudRunMcpServiceArgs(prefix="acme", image="...", session_mode="shared-sessions", access="public"),
                               network=network.ref(), session_store=store.ref())

The command line (``mcp-affinity plan/diff/check``) lives in :mod:`mcp_affinity.cli`, installed
with the ``cli`` extra.
"""

from .access import AccessArgs, AccessMode, JwtArgs
from .affinity import DEFAULT_SESSION_HEADER, SessionMode, StoreRole
from .autoneg import AutonegController, AutonegControllerArgs, AutonegControllerRef
from .cloud_run_service import CloudRunMcpService, CloudRunMcpServiceArgs, CloudRunMcpServiceRef
from .errors import ConfigError, SettingsError
from .gateway_backend import MeshGatewayBackend, MeshGatewayBackendArgs, MeshGatewayBackendRef
from .gke_cluster import ClusterRef, GkeCluster, GkeClusterArgs, NodePoolArgs
from .gke_platform import McpGkePlatform, McpGkePlatformArgs, McpGkePlatformRef
from .load_balancer import (
    GlobalHttpsLoadBalancer, GlobalHttpsLoadBalancerArgs, GlobalHttpsLoadBalancerRef, MethodRouteArgs, RouteArgs,
)
from .mesh import ISTIO_VERSION, Mesh, MeshArgs, MeshRef
from .mesh_metrics import McpMeshMetrics, McpMeshMetricsArgs
from .mesh_service import McpMeshService, McpMeshServiceArgs, McpMeshServiceRef
from .monitoring import McpMonitoring, MeshTarget, MonitoringArgs, MonitoringTargets, ProxyTarget, ServiceTarget, ThresholdsArgs
from .network import Network, NetworkArgs, NetworkRef, SubnetArgs
from .security_policy import EdgeArgs, EdgePolicy, EdgePolicyArgs, EdgePolicyRef, EdgeScopeArgs
from .session_store import MaintenanceWindowArgs, SessionStore, SessionStoreArgs, SessionStoreRef
from .settings import COMMON_FIELDS, Settings

__all__ = [
    "COMMON_FIELDS",
    "AccessArgs",
    "AccessMode",
    "DEFAULT_SESSION_HEADER",
    "ISTIO_VERSION",
    "AutonegController",
    "AutonegControllerArgs",
    "AutonegControllerRef",
    "ClusterRef",
    "CloudRunMcpService",
    "CloudRunMcpServiceArgs",
    "CloudRunMcpServiceRef",
    "ConfigError",
    "EdgeArgs",
    "EdgePolicy",
    "EdgePolicyArgs",
    "EdgePolicyRef",
    "EdgeScopeArgs",
    "GkeCluster",
    "GkeClusterArgs",
    "GlobalHttpsLoadBalancer",
    "GlobalHttpsLoadBalancerArgs",
    "GlobalHttpsLoadBalancerRef",
    "JwtArgs",
    "MaintenanceWindowArgs",
    "McpMeshService",
    "McpMeshServiceArgs",
    "McpMeshServiceRef",
    "McpGkePlatform",
    "McpMeshMetrics",
    "McpMeshMetricsArgs",
    "McpMonitoring",
    "McpGkePlatformArgs",
    "McpGkePlatformRef",
    "Mesh",
    "MeshArgs",
    "MeshGatewayBackend",
    "MeshGatewayBackendArgs",
    "MeshGatewayBackendRef",
    "MeshRef",
    "MonitoringArgs",
    "MeshTarget",
    "MonitoringTargets",
    "MethodRouteArgs",
    "Network",
    "NetworkArgs",
    "NetworkRef",
    "NodePoolArgs",
    "ProxyTarget",
    "RouteArgs",
    "ServiceTarget",
    "SessionMode",
    "SessionStore",
    "SessionStoreArgs",
    "SessionStoreRef",
    "SettingsError",
    "Settings",
    "StoreRole",
    "SubnetArgs",
    "ThresholdsArgs",
]
