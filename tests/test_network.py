"""Network on mocks: subnets per region, private services access, Cloud NAT, or an existing VPC."""

from __future__ import annotations

import pytest
from mcp_affinity.errors import SettingsError

from mcp_affinity import Network, NetworkArgs, SubnetArgs

SUBNETS = {"europe-west1": {"ip_cidr_range": "10.0.0.0/24"}, "us-central1": {"ip_cidr_range": "10.0.1.0/24"}}


def test_new_vpc_has_one_subnet_per_region_and_private_services_access(record):
    plan = record(lambda: Network("net", NetworkArgs(prefix="mcp-t", subnets=SUBNETS)))
    assert plan.get("gcp:compute/network:Network", "net").inputs["name"] == "mcp-t-net"
    subnets = plan.by_type("gcp:compute/subnetwork:Subnetwork")
    assert sorted((s.inputs["name"], s.inputs["region"], s.inputs["ipCidrRange"]) for s in subnets) == [
        ("mcp-t-net-europe-west1", "europe-west1", "10.0.0.0/24"), ("mcp-t-net-us-central1", "us-central1", "10.0.1.0/24")]
    reserved = plan.get("gcp:compute/globalAddress:GlobalAddress", "net-psa-range").inputs
    assert reserved["purpose"] == "VPC_PEERING" and reserved["prefixLength"] == 20 and reserved["name"] == "mcp-t-net-psa"
    connection = plan.get("gcp:servicenetworking/connection:Connection", "net-psa").inputs
    assert connection["service"] == "servicenetworking.googleapis.com"
    assert connection["reservedPeeringRanges"] == ["mcp-t-net-psa"]
    assert plan.by_type("gcp:compute/routerNat:RouterNat") == []


def test_cloud_nat_per_region_when_asked(record):
    plan = record(lambda: Network("net", NetworkArgs(prefix="mcp-t", subnets=SUBNETS, cloud_nat=True)))
    nats = plan.by_type("gcp:compute/routerNat:RouterNat")
    assert sorted(n.inputs["region"] for n in nats) == ["europe-west1", "us-central1"]
    assert {n.inputs["sourceSubnetworkIpRangesToNat"] for n in nats} == {"ALL_SUBNETWORKS_ALL_IP_RANGES"}


def test_the_store_waits_for_the_peering_through_the_network_id(record):
    from mcp_affinity import SessionStore, SessionStoreArgs

    def program():
        network = Network("net", NetworkArgs(prefix="mcp-t", subnets=SUBNETS))
        SessionStore("sessions", SessionStoreArgs(prefix="mcp-t"), network=network.ref())

    plan = record(program)
    connection = plan.get("gcp:servicenetworking/connection:Connection", "net-psa")
    redis = plan.get("gcp:redis/instance:Instance", "sessions")
    assert connection.urn in redis.dependencies


def test_existing_vpc_creates_no_network_or_subnet(record):
    args = NetworkArgs(prefix="mcp-t", private_services_access=False,
                       existing_network="projects/my-proj/global/networks/shared", existing_subnets={"europe-west1": "projects/my-proj/regions/europe-west1/subnetworks/sub"})
    plan = record(lambda: Network("net", args))
    assert [r.type for r in plan.resources] == ["mcp-affinity:index:Network"]


@pytest.mark.parametrize("values,message", [
    ({"subnets": SUBNETS, "existing_network": "projects/my-proj/global/networks/n"}, "existingSubnets"),
    ({}, "needs subnets"),
    ({"subnets": {"europe-west1": {"ip_cidr_range": "10.0.0.0/33"}}}, "not an IPv4 CIDR"),
    ({"subnets": {"europe-west1": {"ip_cidr_range": "10.0.0.1/24"}}}, "write the range as 10.0.0.0/24"),
    ({"subnets": {"europe-west1": {"ip_cidr_range": "10.0.0.0/16"}, "us-central1": {"ip_cidr_range": "10.0.1.0/24"}}},
     "overlaps"),
    ({"subnets": {"europe-west1": {"ip_cidr_range": "10.0.0.0/24", "secondary_ranges": {"pods": "10.0.0.128/25"}}}},
     "overlaps"),
    ({"subnets": {"mars-north1": {"ip_cidr_range": "10.0.0.0/24"}}}, "not a Google Cloud region"),
    ({"subnets": SUBNETS, "cloud_nat": "yes"}, "valid boolean"),
])
def test_bad_networks_are_refused_with_the_reason(values, message):
    with pytest.raises(SettingsError, match=message):
        NetworkArgs(prefix="mcp-t", **values)


def test_names_are_checked_not_truncated():
    args = NetworkArgs(prefix="mcp-t", subnets=SUBNETS)
    with pytest.raises(ValueError, match="allowed 1 to 63"):
        args.names("n" * 60)
    assert SubnetArgs(ip_cidr_range="10.1.0.0/16").ip_cidr_range == "10.1.0.0/16"
