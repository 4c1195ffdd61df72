"""The stack configuration of this repository's program, as a pydantic model.

Keys live in the ``mcp-affinity`` namespace and are camelCase in the stack files
(``stacks/Pulumi.<stack>.yaml``). Unknown keys are rejected. A service field left out takes the
component's default (see :class:`mcp_affinity.CloudRunMcpServiceArgs`), so each default is
written once, in the component.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from mcp_affinity._args import (
    Concurrency, HeaderName, Instances, Memory, Mode, Port, Prefix, Region, TimeoutSeconds, UrlPath,
)
from mcp_affinity.mesh import check_mesh_kind
from mcp_affinity.session_store import Day, SnapshotPeriod

NAMESPACE = "mcp-affinity"
MeshKind = Annotated[str, AfterValidator(check_mesh_kind)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=False, frozen=True)

    # Fields the stack program wires itself rather than passing to the component as they are.
    wired_fields: ClassVar[frozenset[str]] = frozenset()

    def component_fields(self) -> dict:
        """The fields the component takes as they are; None means 'component default'."""
        return self.model_dump(exclude_none=True, exclude=set(self.wired_fields))


class RegionConfig(Model):
    subnet_cidr: str
    secondary_ranges: dict[str, str] = Field(default_factory=dict)


class NetworkConfig(Model):
    existing_network: Optional[str] = None
    existing_subnets: dict[Region, str] = Field(default_factory=dict)
    private_services_access: bool = True
    private_services_prefix_length: int = 20


class MaintenanceWindowConfig(Model):
    day: Day
    hour: int = Field(ge=0, le=23)


class SessionStoreConfig(Model):
    """The session store. Left-out fields take SessionStoreArgs' defaults; region defaults to the
    first stack region."""

    region: Optional[Region] = None
    tier: Optional[Literal["BASIC", "STANDARD_HA"]] = None
    memory_size_gb: Optional[int] = Field(default=None, ge=1, le=300)
    redis_version: Optional[str] = None
    read_replicas: Optional[int] = Field(default=None, ge=0, le=5)
    rdb_snapshot_period: Optional[SnapshotPeriod] = None
    maintenance_window: Optional[MaintenanceWindowConfig] = None

    wired_fields: ClassVar[frozenset[str]] = frozenset({"region"})


class ServiceConfig(Model):
    """One MCP server. Left-out fields take CloudRunMcpServiceArgs' defaults."""

    image: str
    regions: Optional[list[Region]] = None
    hosts: list[str] = Field(default_factory=list)
    path_prefixes: list[str] = Field(default_factory=list)
    affinity_mode: Optional[Mode] = None
    session_header: Optional[HeaderName] = None
    port: Optional[Port] = None
    timeout_seconds: Optional[TimeoutSeconds] = None
    concurrency: Optional[Concurrency] = None
    min_instances: Optional[Instances] = None
    max_instances: Optional[Instances] = None
    cpu: Optional[str] = None
    memory: Optional[Memory] = None
    startup_probe_path: Optional[UrlPath] = None
    env: Optional[dict[str, str]] = None
    image_managed_by_ci: Optional[bool] = None
    public_invoker: Optional[bool] = None

    wired_fields: ClassVar[frozenset[str]] = frozenset({"regions", "hosts", "path_prefixes"})


class NodePoolConfig(Model):
    machine_type: Optional[str] = None
    min_nodes: Optional[int] = None
    max_nodes: Optional[int] = None
    spot: Optional[bool] = None


class MeshConfig(Model):
    """The mesh. ``kind``: istio | cloud-service-mesh (linkerd and gke-gateway are refused)."""

    kind: Optional[MeshKind] = None
    data_plane: Optional[Literal["sidecar", "ambient"]] = None
    waypoint: Optional[bool] = None
    version: Optional[str] = None


class GkeConfig(Model):
    """The GKE platform: one regional cluster, its mesh, and whether the global LB fronts it."""

    region: Region
    zones: list[str] = Field(min_length=1)
    master_cidr: Optional[str] = None
    release_channel: Optional[Literal["RAPID", "REGULAR", "STABLE"]] = None
    node_pool: NodePoolConfig = NodePoolConfig()
    mesh: MeshConfig = MeshConfig()
    behind_load_balancer: bool = True


class MeshServiceConfig(Model):
    """One MCP server on GKE. Left-out fields take McpMeshServiceArgs' defaults."""

    image: str
    hosts: list[str] = Field(min_length=1)
    session_header: Optional[HeaderName] = None
    port: Optional[Port] = None
    cpu: Optional[str] = None
    memory: Optional[Memory] = None
    min_replicas: Optional[int] = None
    max_replicas: Optional[int] = None
    drain_seconds: Optional[int] = None
    health_path: Optional[UrlPath] = None
    env: Optional[dict[str, str]] = None


class LoadBalancerConfig(Model):
    certificates: dict[str, list[str]]
    default_route: Optional[str] = None


class StackConfig(Model):
    """All of a stack's ``mcp-affinity:*`` keys."""

    environment: Literal["dev", "staging", "prod"]
    prefix: Prefix
    regions: dict[Region, RegionConfig] = Field(min_length=1)
    network: NetworkConfig = NetworkConfig()
    session_store: SessionStoreConfig = SessionStoreConfig()
    platforms: list[Literal["cloud-run", "gke"]] = Field(default=["cloud-run"], min_length=1)
    services: dict[str, ServiceConfig] = Field(default_factory=dict)
    gke: Optional[GkeConfig] = None
    mesh_services: dict[str, MeshServiceConfig] = Field(default_factory=dict)
    load_balancer: LoadBalancerConfig
    deletion_protection: bool = False

    @property
    def protected(self) -> bool:
        return self.deletion_protection

    @model_validator(mode="after")
    def _cross_checks(self) -> "StackConfig":
        self._check_platforms()
        for name, service in self.services.items():
            extra = set(service.regions or []) - set(self.regions)
            if extra:
                raise ValueError(f"services.{name}.regions: {sorted(extra)} not in regions {sorted(self.regions)}")
        store_region = self.session_store.region
        if store_region is not None and store_region not in self.regions:
            raise ValueError(f"sessionStore.region: {store_region!r} not in regions {sorted(self.regions)}")
        if self.environment == "prod" and not self.deletion_protection:
            raise ValueError("deletionProtection: must be true when environment is prod")
        if self.load_balancer.default_route and self.load_balancer.default_route not in self.routes():
            raise ValueError(f"loadBalancer.defaultRoute: {self.load_balancer.default_route!r} is not a service")
        return self

    def _check_platforms(self) -> None:
        cloud_run, gke = "cloud-run" in self.platforms, "gke" in self.platforms
        if cloud_run != bool(self.services):
            raise ValueError("services: needed exactly when platforms includes cloud-run")
        if gke != (self.gke is not None) or gke != bool(self.mesh_services):
            raise ValueError("gke and meshServices: needed exactly when platforms includes gke")
        if self.gke is not None:
            ranges = self.regions.get(self.gke.region)
            if ranges is None:
                raise ValueError(f"gke.region: {self.gke.region!r} not in regions {sorted(self.regions)}")
            missing = {"pods", "services"} - set(ranges.secondary_ranges)
            if missing and not self.network.existing_network:
                raise ValueError(f"regions.{self.gke.region}.secondaryRanges: needs {sorted(missing)} for GKE")

    def routes(self) -> list[str]:
        """Load-balancer route keys: each Cloud Run service, and ``gke`` when the LB fronts GKE."""
        fronted = self.gke is not None and self.gke.behind_load_balancer
        return sorted(self.services) + (["gke"] if fronted else [])
