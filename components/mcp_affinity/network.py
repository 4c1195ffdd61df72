"""Network: a VPC with one subnet per region, private services access and, if asked, Cloud NAT.

Private services access (a reserved global range peered through
``servicenetworking.googleapis.com``) is how Memorystore for Redis in ``PRIVATE_SERVICE_ACCESS``
mode gets its address (https://cloud.google.com/vpc/docs/configure-private-services-access).
Cloud Run reaches it by Direct VPC egress through the regional subnet. Cloud NAT gives private
GKE nodes a way to pull images from outside Google (https://cloud.google.com/nat/docs/overview).
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from dataclasses import dataclass, field
from typing import Annotated, Mapping, Optional

import pulumi
import pulumi_gcp as gcp
from pydantic import AfterValidator, Field, model_validator

from .naming import RFC1035, PhysicalName, physical_name
from .settings import Bool, Faults, Int, IPv4Cidr, Model, Region, Settings, StrInput, takes_settings
from .wire import FIREWALL, GLOBAL_ADDRESS, NETWORK, ROUTER, ROUTER_NAT, SUBNETWORK

DENY_PRIORITY = 65534
"""The default-deny ingress rule's priority: above the implied rules (65535), below every allow rule
the package makes (default 1000; https://cloud.google.com/firewall/docs/firewalls#priority_order_for_firewall_rules)."""

RangeName = Annotated[str, AfterValidator(lambda v: physical_name(RFC1035, "range", v).value)]

VALID_RANGES = "https://cloud.google.com/vpc/docs/subnets#valid-ranges"
SMALLEST_SUBNET = 29
"""The smallest IPv4 subnet range Google Cloud accepts is a /29 (:data:`VALID_RANGES`)."""
PROHIBITED_RANGES = ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4")
"""IPv4 ranges a subnet may not include: this network, loopback, link-local, multicast and
reserved (:data:`VALID_RANGES`, "Prohibited IPv4 subnet ranges")."""


def _check_subnet_range(value: str) -> str:
    network = ipaddress.IPv4Network(value)
    if network.prefixlen > SMALLEST_SUBNET:
        raise ValueError(f"{value} is smaller than a /{SMALLEST_SUBNET}, the smallest subnet range ({VALID_RANGES})")
    for prohibited in PROHIBITED_RANGES:
        if network.overlaps(ipaddress.IPv4Network(prohibited)):
            raise ValueError(f"{value} includes {prohibited}, which no subnet may use ({VALID_RANGES})")
    return value


SubnetRange = Annotated[IPv4Cidr, AfterValidator(_check_subnet_range)]
"""A subnet's primary or secondary IPv4 range: CIDR form, /29 or larger, outside the prohibited ranges."""

_SUBNET_ID = re.compile(r"projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/regions/([a-z0-9-]+)/subnetworks/[a-z]([-a-z0-9]{0,61}[a-z0-9])?")


class SubnetArgs(Model):
    """One regional subnet."""

    ip_cidr_range: SubnetRange = Field(description="the subnet's primary IPv4 range (Direct VPC egress, GKE nodes).")
    secondary_ranges: dict[RangeName, SubnetRange] = Field(
        default_factory=dict,
        description="name -> IPv4 range; GKE needs `pods` and `services`.")


class NetworkArgs(Settings):
    """Settings of :class:`Network`.

    A new VPC gets a default-deny ingress firewall rule (priority 65534) and flow logs on every subnet.
    """

    subnets: dict[Region, SubnetArgs] = Field(
        default_factory=dict,
        description="region -> `SubnetArgs`, for a new VPC. No two ranges may overlap.")
    existing_network: Optional[str] = Field(
        default=None, pattern=r"^projects/[a-z][a-z0-9-]+/global/networks/[a-z]([a-z0-9-]*[a-z0-9])?$",
        description="use this VPC (`projects/P/global/networks/N`) instead of creating one; give `existingSubnets` "
                    "with it.")
    existing_subnets: dict[Region, str] = Field(
        default_factory=dict,
        description="with `existingNetwork`: region -> subnet id (`projects/P/regions/REGION/subnetworks/NAME`, in "
                    "that region).")
    private_services_access: Bool = Field(
        default=True,
        description="reserve a range and peer it with service networking, as the session store needs; turn off when "
                    "the VPC already has it. A stack file that leaves it unset gets it only when a service uses the "
                    "store.")
    private_services_prefix_length: Int = Field(
        default=20, ge=8, le=24,
        description="size of the private services access range (8 to 24; 20 is 4,096 addresses).")
    cloud_nat: Bool = Field(
        default=False,
        description="a Cloud Router and Cloud NAT in every subnet's region, for private GKE nodes that pull images "
                    "from outside Google (Istio's come from docker.io).")

    @model_validator(mode="after")
    def _shape(self) -> "NetworkArgs":
        faults = Faults("NetworkArgs")
        if self.existing_network is not None:
            if self.subnets or not self.existing_subnets:
                faults.add("existingSubnets", "with existingNetwork give existingSubnets (region -> subnet id), not subnets")
        elif not self.subnets or self.existing_subnets:
            faults.add("subnets", "a new VPC needs subnets (region -> {ipCidrRange}); existingSubnets goes with existingNetwork")
        for region, subnet_id in self.existing_subnets.items():
            match = _SUBNET_ID.fullmatch(subnet_id)
            if match is None:
                faults.add(("existingSubnets", region), f"{subnet_id!r} is not a subnet id "
                           "(projects/PROJECT/regions/REGION/subnetworks/NAME)")
            elif match[1] != region:
                faults.add(("existingSubnets", region), f"the subnet is in {match[1]}, not in {region}")
        faults.check("subnets", lambda: check_no_overlap(self.ranges()))
        faults.raise_if_any()
        return self

    def ranges(self, key: str = "") -> list[tuple[str, str]]:
        """Every subnet range as ``(key path under key, CIDR)``: primary and secondary ranges."""
        ranges = [(f"{key}subnets.{r}.ipCidrRange", s.ip_cidr_range) for r, s in self.subnets.items()]
        return ranges + [(f"{key}subnets.{r}.secondaryRanges.{n}", c)
                         for r, s in self.subnets.items() for n, c in s.secondary_ranges.items()]

    @property
    def regions(self) -> list[str]:
        return sorted(self.subnets or self.existing_subnets)

    def names(self, name: str) -> dict[str, PhysicalName]:
        """Physical names of this network's resources, keyed by role."""
        p = self.prefix
        names = {"psa": physical_name(RFC1035, GLOBAL_ADDRESS, p, name, "psa")}
        if self.existing_network is None:
            names["vpc"] = physical_name(RFC1035, NETWORK, p, name)
            names["deny_ingress"] = physical_name(RFC1035, FIREWALL, p, name, "deny-ingress")
            for region in self.subnets:
                names[f"subnet-{region}"] = physical_name(RFC1035, SUBNETWORK, p, name, region)
        if self.cloud_nat:
            for region in self.regions:
                names[f"router-{region}"] = physical_name(RFC1035, ROUTER, p, name, region)
                names[f"nat-{region}"] = physical_name(RFC1035, ROUTER_NAT, p, name, region, "nat")
        return names


def check_no_overlap(ranges: list[tuple[str, str]]) -> None:
    """Raise ``ValueError`` naming the first two of ``(key, cidr)`` that overlap."""
    for (key_a, a), (key_b, b) in itertools.combinations(ranges, 2):
        if ipaddress.IPv4Network(a).overlaps(ipaddress.IPv4Network(b)):
            raise ValueError(f"{key_a} {a} overlaps {key_b} {b}")


@dataclass(frozen=True)
class NetworkRef:
    """What other components take from a network.

    - ``network_id``: ``projects/P/global/networks/N``.
    - ``subnet_ids``: region -> subnet id.
    - ``private_services_network_id``: the same network id, resolved only once private services
      access is peered: what a Memorystore instance must wait for. Defaults to ``network_id``
      (for a VPC whose peering exists already).
    """

    network_id: StrInput
    subnet_ids: Mapping[str, StrInput]
    private_services_network_id: StrInput = None
    regions: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.private_services_network_id is None:
            object.__setattr__(self, "private_services_network_id", self.network_id)
        if not self.regions:
            object.__setattr__(self, "regions", sorted(self.subnet_ids))


class Network(pulumi.ComponentResource):
    """A VPC for MCP servers: regional subnets, private services access, optional Cloud NAT.

    Outputs: ``network_id``, ``subnet_ids`` (region -> id), ``private_services_network_id``
    (ready once peered); :meth:`ref` bundles them for other components.
    """

    network_id: pulumi.Output[str]
    subnet_ids: dict[str, pulumi.Output[str]]
    private_services_network_id: pulumi.Output[str]

    @takes_settings
    def __init__(self, name: str, args: NetworkArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("mcp-affinity:index:Network", name, None, opts)
        names = args.names(name)
        child = pulumi.ResourceOptions(parent=self)
        if args.existing_network is not None:
            self.network_id = pulumi.Output.from_input(args.existing_network)
            self.subnet_ids = {r: pulumi.Output.from_input(s) for r, s in sorted(args.existing_subnets.items())}
        else:
            vpc = gcp.compute.Network(name, name=names["vpc"].value, project=args.project,
                                      auto_create_subnetworks=False, routing_mode="GLOBAL", opts=child)
            self.network_id = vpc.id
            self.subnet_ids = {region: self._subnet(name, names, args, region, subnet, child).id
                               for region, subnet in sorted(args.subnets.items())}
            # An explicit baseline: every allow rule the package makes has a higher priority (lower number).
            gcp.compute.Firewall(f"{name}-deny-ingress", name=names["deny_ingress"].value, project=args.project,
                                 network=vpc.id, direction="INGRESS", priority=DENY_PRIORITY,
                                 source_ranges=["0.0.0.0/0"], denies=[{"protocol": "all"}],
                                 description="mcp-affinity: deny all ingress unless a rule with a higher priority allows it",
                                 opts=child)
        self.private_services_network_id = self.network_id
        if args.private_services_access:
            connection = self._private_services(name, names, args, child)
            # Carry the dependency in the value: whoever takes this id waits for the peering.
            self.private_services_network_id = pulumi.Output.all(self.network_id, connection.id).apply(lambda v: v[0])
        if args.cloud_nat:
            for region in args.regions:
                self._nat(name, names, args, region, child)
        self.register_outputs({"network_id": self.network_id, "subnet_ids": self.subnet_ids,
                               "private_services_network_id": self.private_services_network_id})

    def ref(self) -> NetworkRef:
        """This network as other components take it."""
        return NetworkRef(self.network_id, self.subnet_ids, self.private_services_network_id)

    def _subnet(self, name, names, args, region, subnet, opts):
        return gcp.compute.Subnetwork(
            f"{name}-{region}",
            name=names[f"subnet-{region}"].value,
            project=args.project,
            region=region,
            network=self.network_id,
            ip_cidr_range=subnet.ip_cidr_range,
            private_ip_google_access=True,
            secondary_ip_ranges=[{"range_name": n, "ip_cidr_range": c} for n, c in sorted(subnet.secondary_ranges.items())],
            log_config={"aggregation_interval": "INTERVAL_5_SEC", "flow_sampling": 0.5},
            opts=opts,
        )

    def _private_services(self, name, names, args, opts) -> gcp.servicenetworking.Connection:
        reserved = gcp.compute.GlobalAddress(
            f"{name}-psa-range", name=names["psa"].value, project=args.project, purpose="VPC_PEERING",
            address_type="INTERNAL", prefix_length=args.private_services_prefix_length, network=self.network_id,
            opts=opts,
        )
        return gcp.servicenetworking.Connection(
            f"{name}-psa", network=self.network_id, service="servicenetworking.googleapis.com",
            reserved_peering_ranges=[reserved.name], opts=opts,
        )

    def _nat(self, name, names, args, region, opts) -> None:
        router = gcp.compute.Router(f"{name}-{region}", name=names[f"router-{region}"].value, project=args.project,
                                    region=region, network=self.network_id, opts=opts)
        gcp.compute.RouterNat(
            f"{name}-{region}", name=names[f"nat-{region}"].value, project=args.project, region=region,
            router=router.name, nat_ip_allocate_option="AUTO_ONLY",
            source_subnetwork_ip_ranges_to_nat="ALL_SUBNETWORKS_ALL_IP_RANGES",
            log_config={"enable": True, "filter": "ERRORS_ONLY"}, opts=opts,
        )
