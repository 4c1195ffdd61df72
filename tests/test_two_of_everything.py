"""Two of every component in one program: no two resources of one type get one physical name."""

from __future__ import annotations

from collections import Counter

from helpers import NETWORK, STORE, cluster_args, mesh_args
from mcp_affinity import (
    AutonegController, AutonegControllerArgs, CloudRunMcpService, CloudRunMcpServiceArgs, GkeCluster,
    GlobalHttpsLoadBalancer, GlobalHttpsLoadBalancerArgs, McpMeshService, McpMeshServiceArgs, Mesh,
    MeshGatewayBackend, MeshGatewayBackendArgs, Network, NetworkArgs, SessionStore, SessionStoreArgs,
)

P = dict(prefix="acme", project="my-proj")


def program() -> None:
    for name in ("one", "two"):
        Network(f"net-{name}", NetworkArgs(**P, subnets={"europe-west1": {"ip_cidr_range": "10.0.0.0/24"}}, cloud_nat=True))
        SessionStore(f"store-{name}", SessionStoreArgs(**P), network=NETWORK)
        CloudRunMcpService(f"svc-{name}", CloudRunMcpServiceArgs(**P, image="i:1", session_mode="shared-sessions", access="public"),
                           network=NETWORK, session_store=STORE)
        GlobalHttpsLoadBalancer(f"lb-{name}", GlobalHttpsLoadBalancerArgs(
            **P, certificates={"main": ["a.example.com"]}, routes={"a": {"hosts": ["a.example.com"]}}),
            backends={"a": "bs"})
        cluster = GkeCluster(f"gke-{name}", cluster_args(prefix="acme"), network=NETWORK)
        AutonegController(f"autoneg-{name}", AutonegControllerArgs(**P), workload_pool=cluster.workload_pool,
                          kubernetes_provider=cluster.kubernetes_provider)
        gateway = MeshGatewayBackend(f"gw-{name}", MeshGatewayBackendArgs(**P), network=NETWORK, cluster=cluster)
        mesh = Mesh(f"mesh-{name}", mesh_args(prefix="acme", kind="cloud-service-mesh", fleet_feature=name == "one"),
                    cluster=cluster,
                    gateway_annotations=gateway.gateway_annotations)
        McpMeshService(f"mcp-{name}", McpMeshServiceArgs(**P, image="i:1", session_mode="stateless",
                                                         hosts=["a.example.com"], access="public"), cluster=cluster, mesh=mesh)


def test_two_of_every_component_share_no_physical_name(record):
    plan = record(program)
    kinds = Counter(r.type for r in plan.resources if not r.custom)
    assert all(count == 2 for count in kinds.values()) and len(kinds) == 10, kinds
    named = Counter(physical_name(r) for r in plan.resources if r.custom and r.type.startswith("gcp:"))
    assert {k: n for k, n in named.items() if n > 1 and k[1] is not None} == {}
    assert all(name.startswith(("acme-", "acme_")) for (_, name, _) in named if name and name != "servicemesh")


def physical_name(resource) -> tuple:
    """(type, name, location): what Google Cloud keys a resource by; IAM members have no name."""
    inputs = resource.inputs
    name = (inputs.get("name") or inputs.get("accountId") or inputs.get("secretId") or inputs.get("roleId")
            or inputs.get("membershipId"))
    where = inputs.get("location") or inputs.get("region") or inputs.get("zone")
    return resource.type, None if "IamMember" in resource.type or "IAMMember" in resource.type else name, where
