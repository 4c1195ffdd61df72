"""Network: a VPC with one subnet per region and private services access, or an existing VPC.

Private services access (a reserved global range peered through
``servicenetworking.googleapis.com``) is how Memorystore for Redis in ``PRIVATE_SERVICE_ACCESS``
mode gets its address (https://cloud.google.com/vpc/docs/configure-private-services-access).
Cloud Run reaches it by Direct VPC egress through the regional subnet.
"""

from __future__ import annotations

import ipaddress
from typing import Optional

import pulumi
import pulumi_gcp as gcp
from pydantic import Field, field_validator

from ._args import Args, Prefix, Region, StrInput


class SubnetArgs(Args):
    """One regional subnet: a primary CIDR and optional named secondary ranges (GKE pods, services)."""

    ip_cidr_range: str
    secondary_ranges: dict[str, str] = Field(default_factory=dict)

    @field_validator("ip_cidr_range")
    @classmethod
    def _cidr(cls, value: str) -> str:
        ipaddress.ip_network(value)
        return value

    @field_validator("secondary_ranges")
    @classmethod
    def _secondary(cls, value: dict[str, str]) -> dict[str, str]:
        for cidr in value.values():
            ipaddress.ip_network(cidr)
        return value


class ExistingNetworkArgs(Args):
    """A VPC the component should use, not create: its id and one subnet id per region."""

    network: StrInput
    subnets: dict[str, StrInput]


class NetworkArgs(Args):
    """Arguments of :class:`Network`.

    - ``prefix``: prefix of every resource name (lowercase, starts with a letter).
    - ``subnets``: region -> :class:`SubnetArgs`, for a new VPC.
    - ``existing``: use this VPC instead; ``subnets`` must then be empty.
    - ``private_services_access``: reserve a range and peer it with service networking (needed by
      the session store); turn off when the VPC already has it.
    - ``private_services_prefix_length``: size of that range (8 to 24; 20 is 4,096 addresses).
    """

    prefix: Prefix
    project: Optional[str] = None
    subnets: dict[Region, SubnetArgs] = Field(default_factory=dict)
    existing: Optional[ExistingNetworkArgs] = None
    private_services_access: bool = True
    private_services_prefix_length: int = Field(default=20, ge=8, le=24)

    def model_post_init(self, _context: object) -> None:
        if self.existing is not None and self.subnets:
            raise ValueError("give either subnets (new VPC) or existing (reuse a VPC), not both")
        if self.existing is None and not self.subnets:
            raise ValueError("a new VPC needs at least one subnet")


class Network(pulumi.ComponentResource):
    """A VPC for MCP servers: regional subnets and private services access.

    Outputs: ``network_id`` (``projects/P/global/networks/N``), ``subnet_ids`` (region -> subnet id),
    ``regions`` (sorted), and ``private_services_connection`` (the peering resource, or None) for
    resources that must wait for it.
    """

    network_id: pulumi.Output[str]
    subnet_ids: dict[str, pulumi.Output[str]]
    private_services_connection: Optional[gcp.servicenetworking.Connection]

    def __init__(self, name: str, args: NetworkArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("mcp-affinity:index:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        if args.existing is not None:
            self.network_id = pulumi.Output.from_input(args.existing.network)
            self.subnet_ids = {r: pulumi.Output.from_input(s) for r, s in args.existing.subnets.items()}
        else:
            vpc = gcp.compute.Network(
                name,
                name=f"{args.prefix}-vpc",
                project=args.project,
                auto_create_subnetworks=False,
                routing_mode="GLOBAL",
                opts=child,
            )
            self.network_id = vpc.id
            self.subnet_ids = {
                region: self._subnet(name, args, region, subnet, vpc, child).id
                for region, subnet in sorted(args.subnets.items())
            }
        self.regions = sorted(self.subnet_ids)
        self.private_services_connection = (
            self._private_services(name, args, child) if args.private_services_access else None
        )
        self.register_outputs({"network_id": self.network_id, "subnet_ids": self.subnet_ids})

    @staticmethod
    def _subnet(name, args, region, subnet, vpc, opts):
        return gcp.compute.Subnetwork(
            f"{name}-{region}",
            name=f"{args.prefix}-{region}",
            project=args.project,
            region=region,
            network=vpc.id,
            ip_cidr_range=subnet.ip_cidr_range,
            private_ip_google_access=True,
            secondary_ip_ranges=[
                {"range_name": range_name, "ip_cidr_range": cidr}
                for range_name, cidr in sorted(subnet.secondary_ranges.items())
            ],
            log_config={"aggregation_interval": "INTERVAL_5_SEC", "flow_sampling": 0.5},
            opts=opts,
        )

    def _private_services(self, name, args, opts):
        reserved = gcp.compute.GlobalAddress(
            f"{name}-psa-range",
            name=f"{args.prefix}-psa-range",
            project=args.project,
            purpose="VPC_PEERING",
            address_type="INTERNAL",
            prefix_length=args.private_services_prefix_length,
            network=self.network_id,
            opts=opts,
        )
        return gcp.servicenetworking.Connection(
            f"{name}-psa",
            network=self.network_id,
            service="servicenetworking.googleapis.com",
            reserved_peering_ranges=[reserved.name],
            opts=opts,
        )
