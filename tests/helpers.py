"""Settings and context the component tests share."""

from __future__ import annotations

from mcp_affinity import (
    AutonegController, AutonegControllerArgs, GkeCluster, GkeClusterArgs, Mesh, MeshArgs, MeshGatewayBackend, MeshGatewayBackendArgs, NetworkRef,
    SessionStoreRef,
)
from mcp_affinity.mesh_service import gateway_access

NETWORK = NetworkRef("projects/p/global/networks/vpc", {"europe-west1": "subnet-ew1", "us-central1": "subnet-uc1"},
                     private_services_network_id="projects/p/global/networks/vpc")
STORE = SessionStoreRef(secret_id="projects/p/secrets/url", secret_version="3", ca_certificate="PEM",
                        connection_url="rediss://:secret@10.0.0.3:6378")


def cluster_args(**overrides) -> GkeClusterArgs:
    values = dict(prefix="mcp-t", project="my-proj", region="europe-west1",
                  zones=["europe-west1-b", "europe-west1-c"])
    return GkeClusterArgs(**{**values, **overrides})


def mesh_args(**overrides) -> MeshArgs:
    return MeshArgs(**{**dict(prefix="mcp-t", project="my-proj"), **overrides})


def gke(mesh_overrides: dict | None = None, name: str = "gke", services: dict | None = None):
    """A cluster, an autoneg controller, a gateway backend and a mesh, as the GKE platform wires them;
    returns the cluster's and the mesh's references and the gateway backend. ``services``: name ->
    ``McpMeshServiceArgs`` of the mesh services the gateway serves (its IAP and edge rules)."""
    cluster = GkeCluster(name, cluster_args(), network=NETWORK).ref()
    autoneg = AutonegController(f"{name}-autoneg", AutonegControllerArgs(prefix="mcp-t", project="my-proj"),
                                cluster=cluster)
    gateway = MeshGatewayBackend(f"{name}-gateway", MeshGatewayBackendArgs(prefix="mcp-t", project="my-proj"),
                                 network=NETWORK, cluster=cluster, **gateway_access(services or {}))
    mesh = Mesh(f"{name}-mesh", mesh_args(**(mesh_overrides or {})), cluster=cluster,
                gateway_backend=gateway.ref(), autoneg=autoneg.ref())
    return cluster, gateway, mesh.ref()
