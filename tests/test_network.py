"""Network on mocks: subnets per region, private services access, or an existing VPC."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mcp_affinity import ExistingNetworkArgs, Network, NetworkArgs, SubnetArgs


def test_new_vpc_has_one_subnet_per_region_and_private_services_access(record):
    args = NetworkArgs(prefix="mcp-t", subnets={"europe-west1": SubnetArgs(ip_cidr_range="10.0.0.0/24"),
                                                "us-central1": SubnetArgs(ip_cidr_range="10.0.1.0/24")})
    plan = record(lambda: Network("net", args))
    assert plan.get("gcp:compute/network:Network", "net").inputs["autoCreateSubnetworks"] is False
    subnets = plan.by_type("gcp:compute/subnetwork:Subnetwork")
    assert sorted((s.inputs["region"], s.inputs["ipCidrRange"]) for s in subnets) == [
        ("europe-west1", "10.0.0.0/24"), ("us-central1", "10.0.1.0/24")]
    reserved = plan.get("gcp:compute/globalAddress:GlobalAddress", "net-psa-range").inputs
    assert reserved["purpose"] == "VPC_PEERING" and reserved["prefixLength"] == 20
    connection = plan.get("gcp:servicenetworking/connection:Connection", "net-psa").inputs
    assert connection["service"] == "servicenetworking.googleapis.com"
    assert connection["reservedPeeringRanges"] == ["mcp-t-psa-range"]


def test_existing_vpc_creates_no_network_or_subnet(record):
    args = NetworkArgs(prefix="mcp-t", private_services_access=False,
                       existing=ExistingNetworkArgs(network="projects/p/global/networks/shared",
                                                    subnets={"europe-west1": "sub"}))
    plan = record(lambda: Network("net", args))
    assert [r.type for r in plan.resources] == ["mcp-affinity:index:Network"]


def test_new_vpc_and_existing_vpc_are_exclusive():
    with pytest.raises(ValidationError, match="not both"):
        NetworkArgs(prefix="mcp-t", subnets={"europe-west1": SubnetArgs(ip_cidr_range="10.0.0.0/24")},
                    existing=ExistingNetworkArgs(network="n", subnets={}))


def test_bad_cidr_is_refused():
    with pytest.raises(ValidationError):
        SubnetArgs(ip_cidr_range="10.0.0.300/24")
