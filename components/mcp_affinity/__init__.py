"""mcp-affinity: Pulumi components that keep MCP streamable-HTTP sessions working at scale on Google Cloud.

Public API::

    from mcp_affinity import (
        Network, NetworkArgs, SubnetArgs, ExistingNetworkArgs,
        SessionStore, SessionStoreArgs, SessionStoreRef, MaintenanceWindowArgs,
        CloudRunMcpService, CloudRunMcpServiceArgs, AffinityMode,
        GlobalHttpsLoadBalancer, GlobalHttpsLoadBalancerArgs, RouteArgs,
        GkeCluster, GkeClusterArgs, NodePoolArgs, Mesh, MeshArgs,
        McpMeshService, McpMeshServiceArgs, MeshGatewayBackend, MeshGatewayBackendArgs,
        ConfigError, load_stack_config,
    )
"""

from .affinity import DEFAULT_SESSION_HEADER, AffinityMode
from .cloud_run_service import CloudRunMcpService, CloudRunMcpServiceArgs
from .config import load_stack_config
from .errors import ConfigError
from .gateway_backend import MeshGatewayBackend, MeshGatewayBackendArgs
from .gke_cluster import GkeCluster, GkeClusterArgs, NodePoolArgs
from .mesh import Mesh, MeshArgs, MeshRef
from .mesh_service import McpMeshService, McpMeshServiceArgs
from .load_balancer import GlobalHttpsLoadBalancer, GlobalHttpsLoadBalancerArgs, RouteArgs
from .network import ExistingNetworkArgs, Network, NetworkArgs, SubnetArgs
from .session_store import MaintenanceWindowArgs, SessionStore, SessionStoreArgs, SessionStoreRef

__all__ = [
    "DEFAULT_SESSION_HEADER",
    "AffinityMode",
    "CloudRunMcpService",
    "CloudRunMcpServiceArgs",
    "ConfigError",
    "ExistingNetworkArgs",
    "GkeCluster",
    "GkeClusterArgs",
    "GlobalHttpsLoadBalancer",
    "GlobalHttpsLoadBalancerArgs",
    "MaintenanceWindowArgs",
    "McpMeshService",
    "McpMeshServiceArgs",
    "Mesh",
    "MeshArgs",
    "MeshGatewayBackend",
    "MeshGatewayBackendArgs",
    "MeshRef",
    "Network",
    "NetworkArgs",
    "NodePoolArgs",
    "RouteArgs",
    "SessionStore",
    "SessionStoreArgs",
    "SessionStoreRef",
    "SubnetArgs",
    "load_stack_config",
]
