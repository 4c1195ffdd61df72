"""mcp-affinity: Pulumi components that keep MCP streamable-HTTP sessions working at scale on Google Cloud.

Each component takes **settings** (a pydantic model, validated before any resource exists) and a
**context** of other components' outputs (keyword arguments)::

    network = Network("net", NetworkArgs(prefix="acme", subnets={"europe-west1": SubnetArgs(ip_cidr_range="10.0.0.0/24")}))
    store = SessionStore("sessions", SessionStoreArgs(prefix="acme"), network=network.ref())
    tools = CloudRunMcpService("tools", CloudRunMcpServiceArgs(prefix="acme", image="...", session_mode="shared-sessions", access="public"),
                               network=network.ref(), session_store=store.ref())

The command line (``mcp-affinity plan/diff/check``) lives in :mod:`mcp_affinity.cli`, installed
with the ``cli`` extra.
"""

from .access import AccessArgs, AccessMode, JwtArgs
from .affinity import DEFAULT_SESSION_HEADER, SessionMode, StoreRole
from .autoneg import AutonegController, AutonegControllerArgs
from .cloud_run_service import CloudRunMcpService, CloudRunMcpServiceArgs
from .config import load_stack_config
from .errors import ConfigError
from .gateway_backend import MeshGatewayBackend, MeshGatewayBackendArgs
from .gke_cluster import GkeCluster, GkeClusterArgs, NodePoolArgs
from .load_balancer import GlobalHttpsLoadBalancer, GlobalHttpsLoadBalancerArgs, MethodRouteArgs, RouteArgs
from .mesh import ISTIO_VERSION, Mesh, MeshArgs
from .mesh_service import McpMeshService, McpMeshServiceArgs
from .network import Network, NetworkArgs, NetworkRef, SubnetArgs
from .security_policy import EdgeArgs, EdgePolicy, EdgePolicyArgs, EdgeScopeArgs
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
    "CloudRunMcpService",
    "CloudRunMcpServiceArgs",
    "ConfigError",
    "EdgeArgs",
    "EdgePolicy",
    "EdgePolicyArgs",
    "EdgeScopeArgs",
    "GkeCluster",
    "GkeClusterArgs",
    "GlobalHttpsLoadBalancer",
    "GlobalHttpsLoadBalancerArgs",
    "JwtArgs",
    "MaintenanceWindowArgs",
    "McpMeshService",
    "McpMeshServiceArgs",
    "Mesh",
    "MeshArgs",
    "MeshGatewayBackend",
    "MeshGatewayBackendArgs",
    "MethodRouteArgs",
    "Network",
    "NetworkArgs",
    "NetworkRef",
    "NodePoolArgs",
    "RouteArgs",
    "SessionMode",
    "SessionStore",
    "SessionStoreArgs",
    "SessionStoreRef",
    "Settings",
    "StoreRole",
    "SubnetArgs",
    "load_stack_config",
]
