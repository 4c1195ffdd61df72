"""Every fault of a stack file at once, under the key the user wrote, never a traceback; valid
files pass; no message prints a secure value.

Each class of mistake a new user makes on a stack file has a case here (the validation pass of
``infra/stack_config.py``); a few go through ``mcp-affinity plan`` because they depend on how the
stack file is read (YAML scalars, anchors, secure values).
"""

from __future__ import annotations

import copy

import pytest
import yaml

from conftest import ROOT
from test_hostile_config import BASE, NS, mutate, plan_file, problems

NOTES = BASE[NS + "meshServices"]["notes"]
STATELESS_RUN = {name: {**service, "sessionMode": "stateless"} for name, service in BASE[NS + "services"].items()}
NO_STORE = {**{k: v for k, v in BASE.items() if k != NS + "sessionStore"}, NS + "services": STATELESS_RUN}


def with_notes(**changes) -> dict:
    """BASE without a store need on Cloud Run (so nothing short-circuits) and notes changed."""
    return {**NO_STORE, NS + "meshServices": {"notes": {**NOTES, **changes}}}


def with_tools(**changes) -> dict:
    return mutate(NS + "services.tools", {**BASE[NS + "services"]["tools"], **changes})


def keys(config: dict, secret_keys=()) -> set[str]:
    return {key for key, _ in problems(config, secret_keys)}


REFUSED = {
    # A mesh service the first GKE user gets wrong: each used to end in a traceback.
    "in-memory without pinning": (with_notes(sessionMode="in-memory-sessions"), "meshServices.notes.pinning"),
    "cookie pinning unacknowledged": (with_notes(sessionMode="in-memory-sessions", pinning="cookie"),
                                      "meshServices.notes.acknowledge"),
    "minReplicas above maxReplicas": (with_notes(minReplicas=9, maxReplicas=3), "meshServices.notes.minReplicas"),
    "stray pinningReplicas": (with_notes(pinningReplicas=3), "meshServices.notes.pinningReplicas"),
    "existing network without the GKE region": (mutate(NS + "network", {
        "existingNetwork": "projects/my-mcp-project/global/networks/shared", "cloudNat": True,
        "existingSubnets": {"europe-west4": "projects/my-mcp-project/regions/europe-west4/subnetworks/s"}}), "gke.region"),
    # Planned although invalid.
    "a /30 subnet": (mutate(NS + "network.subnets.europe-west4.ipCidrRange", "10.20.1.0/30"),
                     "network.subnets.europe-west4.ipCidrRange"),
    "a 0.0.0.0/0 subnet": (mutate(NS + "network.subnets.europe-west4.ipCidrRange", "0.0.0.0/0"),
                           "network.subnets.europe-west4.ipCidrRange"),
    "16 certificates": (mutate(NS + "loadBalancer.certificates", {
        **BASE[NS + "loadBalancer"]["certificates"], **{f"c{i}": [f"h{i}.example.com"] for i in range(15)}}),
        "loadBalancer.certificates"),
    "0.0.0.0/0 on a private endpoint": (mutate(NS + "gke", {**BASE[NS + "gke"], "privateEndpoint": True,
                                                             "masterAuthorizedNetworks": {"all": "0.0.0.0/0"}}),
                                        "gke.masterAuthorizedNetworks.all"),
    "watchNamespaces without the gateway's": (mutate(NS + "gke.autoneg", {"watchNamespaces": ["mcp-notes"]}),
                                              "gke.autoneg.watchNamespaces"),
    "method route crossing access": (with_tools(methodRoutes={"r": {"method": "tools/call", "service": "search"}}),
                                     "services.tools.methodRoutes.r"),
    "method route to a route key": (with_tools(methodRoutes={"r": {"method": "tools/call", "service": "gke"}}),
                                    "services.tools.methodRoutes.r.service"),
    "two method routes, one match": (with_tools(methodRoutes={
        "a": {"method": "tools/call", "name": "x", "service": "search"},
        "b": {"method": "tools/call", "name": "x", "service": "gke"}}), "services.tools.methodRoutes.b"),
    "existing subnet id that is not one": (mutate(NS + "network", {
        "existingNetwork": "projects/my-mcp-project/global/networks/shared", "cloudNat": True,
        "existingSubnets": {"europe-west1": "subnet-1"}}), "network.existingSubnets.europe-west1"),
    "existing subnet in another region": (mutate(NS + "network", {
        "existingNetwork": "projects/my-mcp-project/global/networks/shared", "cloudNat": True,
        "existingSubnets": {"europe-west1": "projects/my-mcp-project/regions/us-east1/subnetworks/s"}}),
        "network.existingSubnets.europe-west1"),
    "unknown machine type": (mutate(NS + "gke.nodePool.machineType", "q9-standard-4"), "gke.nodePool.machineType"),
    "security policy that is not an id": (with_tools(securityPolicy="projects/p/armor/x y"), "services.tools.securityPolicy"),
    "no private services access on a new VPC with a store": (mutate(NS + "network.privateServicesAccess", False),
                                                             "network.privateServicesAccess"),
    "deletionProtection as the text yes": (mutate(NS + "deletionProtection", "yes"), "deletionProtection"),
    # Refused under the key the user wrote.
    "method routes with path prefixes": (with_tools(pathPrefixes=["/t"], methodRoutes={
        "r": {"method": "tools/call", "service": "search"}}), "services.tools.methodRoutes"),
    "a host twice in one service": (with_tools(hosts=["tools.mcp.staging.example.com"] * 2), "services.tools.hosts.1"),
    "a host twice in one mesh service": (with_notes(hosts=["notes.mcp.staging.example.com"] * 2),
                                         "meshServices.notes.hosts.1"),
    "a host in two mesh services": ({**NO_STORE, NS + "meshServices": {"notes": NOTES, "other": NOTES}},
                                    "meshServices.other.hosts.0"),
    "a host on no certificate": (with_notes(hosts=["other.example.com"]), "meshServices.notes.hosts.0"),
    "meshServices without the gke platform": ({**{k: v for k, v in BASE.items() if k != NS + "gke"},
                                               NS + "platforms": ["cloud-run"]}, "meshServices"),
    "the environment label": (mutate(NS + "labels", {"environment": "prod"}), "labels.environment"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_under_the_key_written(name):
    config, key = REFUSED[name]
    found = keys(config)
    assert NS + key in found, (name, problems(config))
    assert NS + "gke" not in found or key == "gke", "a key the user never wrote"


def test_meshservices_without_gke_is_not_reported_under_gke():
    config, _ = REFUSED["meshServices without the gke platform"]
    assert not any(key.startswith(NS + "gke") for key in keys(config))


ACCEPTED = {
    "the prefix null": mutate(NS + "prefix", "null"),
    "the prefix true": mutate(NS + "prefix", "true"),
    "15 certificates": mutate(NS + "loadBalancer.certificates", {
        **BASE[NS + "loadBalancer"]["certificates"], **{f"c{i}": [f"h{i}.example.com"] for i in range(14)}}),
    "a custom machine type": mutate(NS + "gke.nodePool.machineType", "n2-custom-4-8192"),
    "a security policy id": with_tools(securityPolicy="projects/my-mcp-project/global/securityPolicies/edge"),
    "watchNamespaces with the gateway's": mutate(NS + "gke.autoneg", {"watchNamespaces": ["mcp-stg-mesh-gateway"]}),
    # search is oauth, with an Origin allowlist of its hosts (the shared api host, and tools' that routes to it).
    "two method routes, one target": with_tools(
        access="oauth", edge={"allowedOrigins": ["https://api.mcp.staging.example.com", "https://tools.mcp.staging.example.com"]},
        methodRoutes={"a": {"method": "tools/call", "service": "search"}, "b": {"method": "tools/call", "service": "search"}}),
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_accepted(name):
    assert problems(ACCEPTED[name]) == []


def test_every_fault_of_every_layer_in_one_run():
    """A field type, a component's own rule, a rule across components, a load-balancer rule,
    a common setting and an unknown key, all reported by one run."""
    config = copy.deepcopy(BASE)
    config[NS + "prefix"] = "MCP"
    config[NS + "colour"] = "blue"
    config[NS + "services"]["tools"]["cpu"] = True
    config[NS + "services"]["search"]["minInstances"] = 20
    config[NS + "meshServices"]["notes"].update(sessionMode="in-memory-sessions", minReplicas=9)
    config[NS + "sessionStore"]["region"] = "us-east1"
    config[NS + "meshServices"]["notes"]["hosts"] = ["elsewhere.example.com"]
    config[NS + "gke"]["nodePool"]["machineType"] = "huge"
    found = keys(config)
    expected = {"prefix", "colour", "services.tools.cpu", "services.search.minInstances", "meshServices.notes.pinning",
                "meshServices.notes.minReplicas", "sessionStore.region", "meshServices.notes.hosts.0",
                "gke.nodePool.machineType"}
    assert {NS + key for key in expected} <= found, sorted(found)


SECRET = "s3cr3t-value-9"


def test_a_secure_cpu_is_never_printed():
    config = with_notes(cpu=SECRET)
    found = problems(config, [NS + "meshServices"])
    assert (NS + "meshServices.notes.cpu") in {k for k, _ in found}
    assert not any(SECRET in message for _, message in found), found


def test_a_secure_host_in_a_collision_is_never_printed():
    host = "tools.mcp.staging.example.com"
    config = {**mutate(NS + "meshServices.notes.hosts", [host])}
    found = problems(config, [NS + "services"])
    assert found and not any(host in message for _, message in found), found


def _staging_text(**replace: str) -> str:
    text = (ROOT / "stacks" / "Pulumi.staging.yaml").read_text()
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    return text


def test_unquoted_yes_is_text_as_pulumi_reads_it(tmp_path):
    result = plan_file(tmp_path, _staging_text(**{"mcp-affinity:prefix: mcp-stg":
                                                  "mcp-affinity:prefix: mcp-stg\n  mcp-affinity:deletionProtection: yes"}))
    assert result.exit_code == 2 and "mcp-affinity:deletionProtection" in result.output, result.output


def test_a_quoted_null_prefix_plans(tmp_path):
    result = plan_file(tmp_path, _staging_text(**{"mcp-affinity:prefix: mcp-stg": 'mcp-affinity:prefix: "null"'}))
    assert result.exit_code == 0, result.output


def test_anchors_and_merge_keys_plan(tmp_path):
    text = _staging_text(**{
        "    tools:\n      image:": "    tools: &service\n      image:",
        "    search:\n      image: europe-docker.pkg.dev/my-mcp-project-staging/mcp/search:latest\n"
        "      sessionMode: shared-sessions\n      imageManagedByCi: true\n":
        "    search:\n      <<: *service\n      image: europe-docker.pkg.dev/my-mcp-project-staging/mcp/search:latest\n"
        "      hosts: []\n"})
    document = yaml.safe_load(text)
    assert document["config"]["mcp-affinity:services"]["search"]["startupProbePath"] == "/healthz"
    result = plan_file(tmp_path, text)
    assert result.exit_code == 0, result.output


def test_a_secure_authorized_network_plans(tmp_path):
    result = plan_file(tmp_path, _staging_text(**{"ci: 203.0.113.0/24": "ci:\n        secure: AAABAKMtZXhhbXBsZQ=="}))
    assert result.exit_code == 0, result.output


def test_mesh_services_are_checked_even_without_gke():
    config = {**{k: v for k, v in with_notes(minReplicas=9, maxReplicas=3).items() if k != NS + "gke"}}
    assert {NS + "gke", NS + "meshServices.notes.minReplicas"} <= keys(config)
