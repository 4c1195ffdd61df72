"""Two of every component in one program: no two resources share a logical name, and no two share a
physical name where the platform needs it unique: per project on Google Cloud, per cluster and
namespace on Kubernetes. Two meshes on two clusters and two autoneg controllers included."""

from __future__ import annotations

import dataclasses
import sys
import typing
from collections import Counter

import pulumi

from helpers import NETWORK, STORE, cluster_args, mesh_args
from mcp_affinity import (
    AutonegController, AutonegControllerArgs, CloudRunMcpService, CloudRunMcpServiceArgs, GkeCluster,
    GlobalHttpsLoadBalancer, GlobalHttpsLoadBalancerArgs, McpGkePlatform, McpGkePlatformArgs, McpMeshService,
    McpMeshServiceArgs, Mesh, MeshGatewayBackend, MeshGatewayBackendArgs, Network, NetworkArgs, SessionStore,
    SessionStoreArgs,
)
from mcp_affinity.mesh import CONTROL_PLANE_NAMESPACE
from mcp_affinity.mesh_service import gateway_access

P = dict(prefix="acme", project="my-proj")
COMPONENTS = 11  # with EdgePolicy (in each Cloud Run service and gateway backend)
# Istio's control plane keeps Istio's names: one per cluster (see mcp_affinity.mesh).
ISTIO_RELEASES = {"base", "istiod", "cni", "ztunnel"}


def program() -> None:
    for name in ("one", "two"):
        Network(f"net-{name}", NetworkArgs(**P, subnets={"europe-west1": {"ip_cidr_range": "10.0.0.0/24"}}, cloud_nat=True))
        SessionStore(f"store-{name}", SessionStoreArgs(**P), network=NETWORK)
        CloudRunMcpService(f"svc-{name}", CloudRunMcpServiceArgs(**P, image="i:1", session_mode="shared-sessions", access="public"),
                           network=NETWORK, session_store=STORE)
        GlobalHttpsLoadBalancer(f"lb-{name}", GlobalHttpsLoadBalancerArgs(
            **P, certificates={"main": ["a.example.com"]}, routes={"a": {"hosts": ["a.example.com"]}}),
            backends={"a": "bs"})
        cluster = GkeCluster(f"gke-{name}", cluster_args(prefix="acme"), network=NETWORK).ref()
        autoneg = AutonegController(f"autoneg-{name}", AutonegControllerArgs(**P), cluster=cluster)
        served = {f"mcp-{name}-{service}": McpMeshServiceArgs(
            **P, image="i:1", session_mode="in-memory-sessions", pinning="learned", hosts=["a.example.com"],
            access={"mode": "iam", "members": ["user:a@example.com"]}) for service in ("a", "b")}  # two on one cluster
        gateway = MeshGatewayBackend(f"gw-{name}", MeshGatewayBackendArgs(**P), network=NETWORK, cluster=cluster,
                                     **gateway_access(served))
        mesh = Mesh(f"mesh-{name}", mesh_args(prefix="acme"), cluster=cluster, gateway_backend=gateway.ref(),
                    autoneg=autoneg.ref()).ref()
        for service, args in served.items():
            McpMeshService(service, args, cluster=cluster, mesh=mesh)
        on_platform = McpMeshServiceArgs(**P, image="i:1", session_mode="stateless", hosts=["a.example.com"],
                                         access="public")
        platform = McpGkePlatform(f"plat-{name}", McpGkePlatformArgs(
            **P, cluster={"region": "europe-west1", "zones": ["europe-west1-b"]},
            mesh={"kind": "cloud-service-mesh", "fleet_feature": name == "one"}), network=NETWORK,
            mesh_services={f"on-plat-{name}": on_platform}).ref()
        McpMeshService(f"on-plat-{name}", on_platform, cluster=platform.cluster, mesh=platform.mesh)


def test_two_of_every_component_share_no_logical_or_physical_name(record):
    plan = record(program)
    kinds = Counter(r.type for r in plan.resources if not r.custom)
    assert len(kinds) == COMPONENTS and all(count >= 2 for count in kinds.values()), kinds
    assert len({r.urn for r in plan.resources}) == len(plan.resources)
    named = Counter(key for r in plan.resources if (key := physical_key(r)) is not None)
    assert sum(1 for key in named if key[0].startswith("kubernetes:")) > 50
    assert {key: n for key, n in named.items() if n > 1} == {}
    names = [key[-1] for key in named]
    assert all(n.startswith(("acme-", "acme_")) or n in ISTIO_RELEASES | {"servicemesh", CONTROL_PLANE_NAMESPACE}
               for n in names if not is_namespaced(n, named)), sorted(set(names))


def physical_key(resource) -> tuple | None:
    """What the platform keys a resource by: ``(type, location, name)`` in a project on Google Cloud;
    ``(type, cluster, namespace, name)`` on Kubernetes (the cluster is the resource's provider).
    None for what has no name of its own (IAM members, providers, components)."""
    inputs, type_ = resource.inputs, resource.type
    if not resource.custom or type_.startswith("pulumi:providers:"):
        return None
    if type_.startswith("kubernetes:"):
        meta = inputs if type_ == "kubernetes:helm.sh/v3:Release" else inputs.get("metadata", {})
        return type_, resource.provider, meta.get("namespace"), meta["name"]
    if "IamMember" in type_ or "IAMMember" in type_:
        return None
    name = (inputs.get("name") or inputs.get("accountId") or inputs.get("secretId") or inputs.get("roleId")
            or inputs.get("membershipId"))
    where = inputs.get("location") or inputs.get("region") or inputs.get("zone")
    return (type_, where, name) if name else None


def is_namespaced(name: str, keys) -> bool:
    """True for the name of an object inside a namespace (its namespace carries the prefix)."""
    return any(k[0].startswith("kubernetes:") and k[2] is not None and k[-1] == name
               and not k[0].endswith(":Release") for k in keys)


def test_every_component_declares_typed_outputs_registers_them_and_offers_a_ref(record, monkeypatch):
    registered: dict[type, set[str]] = {}
    original = pulumi.ComponentResource.register_outputs

    def register_outputs(self, outputs):
        if type(self).__module__.startswith("mcp_affinity"):
            registered[type(self)] = set(outputs)
        return original(self, outputs)

    monkeypatch.setattr(pulumi.ComponentResource, "register_outputs", register_outputs)
    record(program)
    assert len(registered) == COMPONENTS
    for component, keys in registered.items():
        outputs = {name for name, hint in component.__annotations__.items() if "Output[" in str(hint)}
        assert outputs and outputs <= keys, (component.__name__, outputs, keys)
        ref = typing.get_type_hints(component.ref, vars(sys.modules[component.__module__]))["return"]
        assert dataclasses.is_dataclass(ref) and ref.__dataclass_params__.frozen, component.__name__
