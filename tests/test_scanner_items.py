"""What security scanners (Checkov's Google rules) look for, on mocks: a default-deny ingress rule
below every allow rule the package makes, flow logs on every subnet, intranode visibility, no client
certificate, and Google Groups for RBAC when asked."""

from __future__ import annotations

import pytest
from mcp_affinity.errors import SettingsError

from helpers import NETWORK, cluster_args
from mcp_affinity import GkeCluster, Network, NetworkArgs
from mcp_affinity.gateway_backend import MeshGatewayBackend, MeshGatewayBackendArgs

FIREWALL = "gcp:compute/firewall:Firewall"
CLUSTER = "gcp:container/cluster:Cluster"
SUBNETS = {"europe-west1": {"ip_cidr_range": "10.0.0.0/24"}}


def test_a_new_vpc_denies_ingress_below_the_packages_allow_rules(record):
    def program():
        Network("net", NetworkArgs(prefix="mcp-t", subnets=SUBNETS))
        cluster = GkeCluster("gke", cluster_args(), network=NETWORK)
        MeshGatewayBackend("gateway", MeshGatewayBackendArgs(prefix="mcp-t"), network=NETWORK, cluster=cluster)

    plan = record(program)
    deny = plan.get(FIREWALL, "net-deny-ingress").inputs
    assert deny["name"] == "mcp-t-net-deny-ingress" and deny["direction"] == "INGRESS"
    assert deny["denies"] == [{"protocol": "all"}] and deny["sourceRanges"] == ["0.0.0.0/0"]
    allow = plan.get(FIREWALL, "gateway").inputs
    assert allow.get("priority", 1000) < deny["priority"] < 65535
    assert all(s.inputs["logConfig"] for s in plan.by_type("gcp:compute/subnetwork:Subnetwork"))


def test_an_existing_vpc_keeps_its_own_firewall(record):
    plan = record(lambda: Network("net", NetworkArgs(prefix="mcp-t", existing_network="projects/my-proj/global/networks/vpc",
                                                     existing_subnets={"europe-west1": "projects/my-proj/regions/europe-west1/subnetworks/subnet"})))
    assert plan.by_type(FIREWALL) == []


def test_cluster_has_intranode_visibility_and_no_client_certificate(record):
    cluster = record(lambda: GkeCluster("gke", cluster_args(), network=NETWORK)).get(CLUSTER, "gke").inputs
    assert cluster["enableIntranodeVisibility"] is True
    assert cluster["masterAuth"] == {"clientCertificateConfig": {"issueClientCertificate": False}}
    assert "authenticatorGroupsConfig" not in cluster


def test_google_groups_for_rbac_when_asked(record):
    args = cluster_args(rbac_security_group="gke-security-groups@example.com")
    cluster = record(lambda: GkeCluster("gke", args, network=NETWORK)).get(CLUSTER, "gke").inputs
    assert cluster["authenticatorGroupsConfig"] == {"securityGroup": "gke-security-groups@example.com"}
    with pytest.raises(SettingsError, match="rbacSecurityGroup"):
        cluster_args(rbac_security_group="admins@example.com")

