"""GKE access at every seam, on mocks (issue 19 items 2, 3 and 6 for GKE).

- A mesh service refuses a gateway that does not enforce its ``access`` (IAP and its members and
  clients) and its ``edge`` rules; the gateway's backend service always has a Cloud Armor policy.
- Ambient mode: the Service opts in to its waypoint, the waypoint admits only the gateway and holds
  the token checks, the pods admit only the waypoint, the NetworkPolicies admit HBONE.
- Behind IAP the gateway verifies IAP's signed header; its namespace admits only Google's front ends
  and health checkers; the control plane opens to the internet only with an acknowledgement.

Every Istio object is checked against the pinned Istio's CRDs, CEL rules included.
"""

from __future__ import annotations

import copy
import ipaddress

import pytest
from hypothesis import given, settings, strategies as st
from mcp_affinity.errors import SettingsError

from conftest import ROOT, GcpMocks, plan_example, plan_stack
from helpers import NETWORK, STORE, cluster_args, gke
from mcp_affinity import McpGkePlatform, McpGkePlatformArgs, McpMeshService, McpMeshServiceArgs
from mcp_affinity.gateway_backend import GatewayAccess, MeshGatewayBackend, MeshGatewayBackendArgs
from mcp_affinity.mesh import MeshRef
from mcp_affinity.cli.runner import run_function
from mcp_affinity.mesh_service import gateway_access
from schemas.istio_check import validate_object
from schemas.validate import validate_kubernetes
from test_hostile_config import BASE, NS, problems

BACKEND = "gcp:compute/backendService:BackendService"
POLICY = "gcp:compute/securityPolicy:SecurityPolicy"
AP = "kubernetes:security.istio.io/v1:AuthorizationPolicy"
RA = "kubernetes:security.istio.io/v1:RequestAuthentication"
NP = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
SVC = "kubernetes:core/v1:Service"
IAP = {"mode": "iap", "members": ["group:dev@example.com"], "programmatic_clients": ["1-abc.apps.googleusercontent.com"]}
GATEWAY_PRINCIPAL = "cluster.local/ns/mcp-t-gke-mesh-gateway/sa/mcp-t-gke-mesh-gateway"
WAYPOINT_TARGET = [{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "waypoint"}]
EXAMPLES = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in (ROOT / "examples").glob("Pulumi.*.yaml"))


def args(access="public", **overrides) -> McpMeshServiceArgs:
    values = dict(prefix="mcp-t", project="my-proj", image="img:1", session_mode="stateless",
                  hosts=["notes.example.com"], access=access)
    return McpMeshServiceArgs(**{**values, **overrides})


def platform(**context):
    return McpGkePlatform("gke", McpGkePlatformArgs(prefix="mcp-t", project="my-proj", cluster={
        "region": "europe-west1", "zones": ["europe-west1-b"]}), network=NETWORK, **context).ref()


def serve(service: McpMeshServiceArgs, **context):
    ref = platform(**context)
    return McpMeshService("notes", service, cluster=ref.cluster, mesh=ref.mesh, session_store=STORE)


def faults(error: SettingsError) -> dict[str, str]:
    return dict(error.problems)


def manifest(resource) -> dict:
    return {k: resource.inputs[k] for k in ("apiVersion", "kind", "metadata", "spec")}


# --- item 2: components carry access ------------------------------------------------------------

@pytest.mark.parametrize("context, service, says", [
    ({}, args(IAP), "has no IAP"),
    ({"mesh_services": {"notes": args()}}, args(IAP), "has no IAP"),
    ({"mesh_services": {"notes": args({**IAP, "members": ["group:other@example.com"]})}}, args(IAP),
     "has IAP (iap (group:other@example.com"),
    ({"mesh_services": {"notes": args(IAP)}}, args("public"), "has IAP"),
])
def test_a_mesh_service_refuses_a_gateway_without_its_iap(record, context, service, says):
    with pytest.raises(SettingsError) as error:
        record(lambda: serve(service, **context))
    assert says in faults(error.value)["access"]


def test_a_mesh_service_refuses_a_gateway_without_its_edge_rules(record):
    service = args(edge={"rate_limit": {"requests": 50}})
    with pytest.raises(SettingsError) as error:
        record(lambda: serve(service, mesh_services={"notes": args()}))
    assert "does not carry notes's rules" in faults(error.value)["edge"]
    with pytest.raises(SettingsError) as error:  # a hand-made reference: nothing known, nothing promised
        record(lambda: McpMeshService("notes", args(IAP), cluster=platform().cluster,
                                      mesh=MeshRef("ns/gw", "ns", "cluster.local/ns/ns/sa/gw")))
    assert "has none made by the package" in faults(error.value)["access"]


def test_a_gateway_with_a_policy_of_your_own_refuses_a_services_own_edge_rules(record):
    def program(service):
        cluster, _, _ = gke(name="c")
        gateway = MeshGatewayBackend("gw", MeshGatewayBackendArgs(prefix="mcp-t", security_policy="own"),
                                     network=NETWORK, cluster=cluster, **gateway_access({"notes": service}))
        assert gateway.ref().access.edge_scopes is None
        from mcp_affinity import AutonegController, AutonegControllerArgs, Mesh
        from helpers import mesh_args
        autoneg = AutonegController("an", AutonegControllerArgs(prefix="mcp-u", project="my-proj"), cluster=cluster)
        mesh = Mesh("m", mesh_args(prefix="mcp-u"), cluster=cluster, gateway_backend=gateway.ref(), autoneg=autoneg.ref())
        McpMeshService("notes", service, cluster=cluster, mesh=mesh.ref())

    record(lambda: program(args()))
    with pytest.raises(SettingsError) as error:
        record(lambda: program(args(edge={"require_method_header": True})))
    assert "these rules would do nothing" in faults(error.value)["edge"]


def test_the_stack_refuses_a_mesh_services_edge_beside_the_gateways_own_policy():
    config = copy.deepcopy(BASE)
    config[NS + "gke"]["gateway"] = {"securityPolicy": "own-armor"}
    assert problems(config) == []
    config[NS + "meshServices"]["notes"]["edge"] = {"requireMethodHeader": True}
    assert dict(problems(config))[NS + "meshServices.notes.edge"].startswith("does nothing")


def test_the_stack_refuses_learned_pinning_in_ambient_mode_and_an_open_control_plane_under_their_keys():
    config = copy.deepcopy(BASE)
    config[NS + "gke"]["mesh"] = {"dataPlane": "ambient", "waypoint": True}
    config[NS + "gke"]["masterAuthorizedNetworks"] = {"anyone": "0.0.0.0/0"}
    config[NS + "meshServices"]["notes"].update(sessionMode="in-memory-sessions", pinning="learned")
    found = dict(problems(config))
    assert "past the waypoint" in found[NS + "meshServices.notes.pinning"]
    assert "control-plane-internet" in found[NS + "gke.masterAuthorizedNetworks.anyone"]
    config[NS + "gke"]["acknowledge"] = ["control-plane-internet"]
    assert NS + "gke.masterAuthorizedNetworks.anyone" not in dict(problems(config))


def test_mixed_iap_settings_are_refused_before_anything_exists():
    with pytest.raises(ValueError, match="all must be iap"):
        gateway_access({"a": args(IAP), "b": args(), })
    with pytest.raises(ValueError, match="not both"):
        McpGkePlatform("gke", McpGkePlatformArgs(prefix="mcp-t", project="my-proj", cluster={
            "region": "europe-west1", "zones": ["europe-west1-b"]}), network=NETWORK,
            mesh_services={"a": args()}, edge_scopes={})
    with pytest.raises(ValueError, match="mode iap"):
        MeshGatewayBackend("gw", MeshGatewayBackendArgs(prefix="mcp-t"), network=NETWORK, cluster=None,
                           iap=args("oauth").access)


@pytest.mark.parametrize("access", [IAP, "public"])
def test_the_platform_carries_its_services_access_and_rules_in_its_reference(record, access):
    service = args(access)
    refs = []
    plan = record(lambda: refs.append(platform(mesh_services={"notes": service})) or
                  McpMeshService("notes", service, cluster=refs[0].cluster, mesh=refs[0].mesh))
    enforced: GatewayAccess = refs[0].gateway_access
    assert enforced is refs[0].mesh.gateway_access
    assert enforced.iap == (service.access if access == IAP else None)
    assert set(enforced.edge_scopes) == {"notes"} and enforced.edge_scopes["notes"].hosts == ["notes.example.com"]
    backend = plan.get(BACKEND, "gke-gateway").inputs
    assert backend["securityPolicy"] == "gke-gateway-id"  # the package's policy, by id
    assert backend.get("iap") == ({"enabled": True} if access == IAP else None)
    rules = plan.get(POLICY, "gke-gateway").inputs["rules"]
    scoped = [r for r in rules if "expr" in r["match"] and r["priority"] >= 1000]  # not the policy-wide Log4j rule
    assert scoped and all("notes\\\\.example\\\\.com" in r["match"]["expr"]["expression"] for r in scoped)


def test_a_platform_given_no_services_still_puts_a_default_policy_on_the_gateway(record):
    plan = record(lambda: platform())
    assert plan.get(BACKEND, "gke-gateway").inputs["securityPolicy"] == "gke-gateway-id"
    rules = plan.get(POLICY, "gke-gateway").inputs["rules"]
    origin = next(r for r in rules if r["description"].startswith("Origin"))
    assert origin["match"]["expr"]["expression"] == "has(request.headers['origin'])"  # no host known: browsers refused
    limit = next(r for r in rules if r["description"] == "per-client limit")
    assert limit["rateLimitOptions"]["rateLimitThreshold"] == {"count": 600, "intervalSec": 60}


def plans():
    return [("stack", s, lambda s=s: plan_stack(s)) for s in ("dev", "staging", "prod")] + [
        ("example", e, lambda e=e: plan_example(e)) for e in EXAMPLES]


@pytest.mark.parametrize("kind, name, plan", plans(), ids=[f"{k}-{n}" for k, n, _ in plans()])
def test_every_backend_service_that_forwards_to_a_server_has_a_cloud_armor_policy(kind, name, plan):
    backends = [r for r in plan().by_type(BACKEND) if r.name != "lb-nohost"]  # the 404 placeholder forwards nowhere
    assert backends
    assert [r.name for r in backends if not r.inputs.get("securityPolicy")] == []


# --- item 3: ambient through the waypoint --------------------------------------------------------

AMBIENT = {"data_plane": "ambient", "waypoint": True}


def ambient_plan(record, service):
    def program():
        cluster, _, mesh = gke(AMBIENT, services={"notes": service})
        McpMeshService("notes", service, cluster=cluster, mesh=mesh, session_store=STORE)
    return record(program)


def test_ambient_sends_the_gateway_through_the_waypoint_which_holds_every_check(record):
    plan = ambient_plan(record, args({"mode": "iam", "members": ["serviceAccount:bot@p.iam.gserviceaccount.com"]}))
    assert plan.get(SVC, "notes").inputs["metadata"]["labels"]["istio.io/ingress-use-waypoint"] == "true"
    waypoint_principal = "cluster.local/ns/mcp-t-notes/sa/waypoint"
    pods = plan.get(AP, "notes-from-waypoint").inputs["spec"]
    assert pods["selector"] == {"matchLabels": {"app": "notes"}}
    assert pods["rules"] == [{"from": [{"source": {"principals": [waypoint_principal]}}],
                              "to": [{"operation": {"ports": ["8080"]}}]}]
    at_waypoint = plan.get(AP, "notes-waypoint-from-gateway").inputs["spec"]
    assert at_waypoint == {"targetRefs": WAYPOINT_TARGET, "action": "ALLOW",
                           "rules": [{"from": [{"source": {"principals": [GATEWAY_PRINCIPAL]}}]}]}
    for resource in (plan.get(RA, "notes-jwt"), plan.get(AP, "notes-callers")):
        assert resource.inputs["spec"]["targetRefs"] == WAYPOINT_TARGET and "selector" not in resource.inputs["spec"]
    assert plan.by_type("kubernetes:security.istio.io/v1:AuthorizationPolicy")
    checked = [r for r in plan.resources if "istio.io" in r.type or "gateway.networking.k8s.io" in r.type]
    assert len(checked) >= 7
    assert {r.name: validate_object(manifest(r)) for r in checked} == {r.name: [] for r in checked}


def test_ambient_network_policies_admit_hbone_and_the_rewritten_probes_only(record):
    plan = ambient_plan(record, args())
    pods = plan.get(NP, "notes-from-waypoint").inputs["spec"]
    assert pods["ingress"] == [
        {"from": [{"podSelector": {"matchLabels": {"gateway.networking.k8s.io/gateway-name": "waypoint"}}}],
         "ports": [{"protocol": "TCP", "port": 15008}]},
        {"from": [{"ipBlock": {"cidr": "169.254.7.127/32"}}], "ports": [{"protocol": "TCP", "port": 8080}]}]
    waypoint = plan.get(NP, "notes-waypoint-from-gateway").inputs["spec"]
    assert waypoint["podSelector"] == {"matchLabels": {"gateway.networking.k8s.io/gateway-name": "waypoint"}}
    assert waypoint["ingress"] == [{"from": [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "mcp-t-gke-mesh-gateway"}}}], "ports": [{"protocol": "TCP", "port": 15008}]}]
    for name in ("notes-from-waypoint", "notes-waypoint-from-gateway"):
        assert validate_kubernetes(manifest(plan.get(NP, name))) == []


def test_sidecar_mode_keeps_the_gateway_principal_and_the_app_port(record):
    def program():
        cluster, _, mesh = gke(services={"notes": args()})
        McpMeshService("notes", args(), cluster=cluster, mesh=mesh)
    plan = record(program)
    assert "istio.io/ingress-use-waypoint" not in plan.get(SVC, "notes").inputs["metadata"]["labels"]
    assert plan.get(NP, "notes-from-gateway").inputs["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8080}]
    assert plan.get(AP, "notes-from-gateway").inputs["spec"]["rules"][0]["from"] == [
        {"source": {"principals": [GATEWAY_PRINCIPAL]}}]


def test_learned_pinning_is_refused_in_ambient_mode(record):
    service = args(session_mode="in-memory-sessions", pinning="learned")
    with pytest.raises(SettingsError) as error:
        ambient_plan(record, service)
    assert "past the waypoint" in faults(error.value)["pinning"]


# --- item 6 (GKE): IAP's signed header, the gateway's namespace, the control plane ---------------

def test_behind_iap_the_gateway_verifies_iaps_signed_header_for_its_backend_service(record):
    plan = record(lambda: serve(args(IAP), mesh_services={"notes": args(IAP)}))
    selector = {"matchLabels": {"istio": "mcp-t-gke-mesh-gateway"}}
    jwt = plan.get(RA, "gke-mesh-gateway-iap-jwt").inputs
    assert jwt["metadata"] == {"name": "mcp-t-gke-mesh-gateway-iap-jwt", "namespace": "mcp-t-gke-mesh-gateway"}
    assert jwt["spec"] == {"selector": selector, "jwtRules": [{
        "issuer": "https://cloud.google.com/iap", "jwksUri": "https://www.gstatic.com/iap/verify/public_key-jwk",
        # the project's number (getProject) and the backend service's numeric id
        "audiences": ["/projects/123456789012/global/backendServices/4711000042"],
        "fromHeaders": [{"name": "x-goog-iap-jwt-assertion"}], "forwardOriginalToken": True}]}
    deny = plan.get(AP, "gke-mesh-gateway-iap-required").inputs["spec"]
    assert deny == {"selector": selector, "action": "DENY",
                    "rules": [{"from": [{"source": {"notRequestPrincipals": ["https://cloud.google.com/iap/*"]}}]}]}
    for resource in (plan.get(RA, "gke-mesh-gateway-iap-jwt"), plan.get(AP, "gke-mesh-gateway-iap-required")):
        assert validate_object(manifest(resource)) == []
    mesh_objects = [r for r in plan.resources if r.type.startswith("kubernetes:") and "gke-mesh-gateway" in r.name]
    assert all(plan.get("kubernetes:networking.istio.io/v1:Gateway", "gke-mesh-gateway").urn in r.dependencies
               for r in mesh_objects if r.type in (RA, AP))


def test_without_iap_nothing_asks_for_iaps_header(record):
    plan = record(lambda: serve(args(), mesh_services={"notes": args()}))
    assert [r.name for r in plan.resources if "iap" in r.name] == []


def test_the_gateway_namespace_admits_only_googles_front_ends_and_health_checkers(record):
    plan = record(lambda: platform())
    policy = plan.get(NP, "gke-mesh-gateway").inputs
    assert policy["metadata"]["namespace"] == "mcp-t-gke-mesh-gateway"
    spec = policy["spec"]
    assert spec["podSelector"] == {"matchLabels": {"istio": "mcp-t-gke-mesh-gateway"}}
    assert spec["policyTypes"] == ["Ingress"]
    assert spec["ingress"] == [{"from": [{"ipBlock": {"cidr": "35.191.0.0/16"}}, {"ipBlock": {"cidr": "130.211.0.0/22"}}],
                                "ports": [{"protocol": "TCP", "port": 80}, {"protocol": "TCP", "port": 15021}]}]
    assert validate_kubernetes(manifest(plan.get(NP, "gke-mesh-gateway"))) == []


@pytest.mark.parametrize("cidr, acknowledged, refused", [
    ("0.0.0.0/0", False, True), ("0.0.0.0/0", True, False), ("0.0.0.0/7", False, True),
    ("10.0.0.0/8", False, False), ("203.0.113.0/24", False, False)])
def test_a_control_plane_open_to_the_internet_needs_an_acknowledgement(cidr, acknowledged, refused):
    overrides = {"master_authorized_networks": {"office": cidr}}
    if acknowledged:
        overrides["acknowledge"] = ["control-plane-internet"]
    if not refused:
        assert cluster_args(**overrides).master_authorized_networks == {"office": cidr}
        return
    with pytest.raises(SettingsError) as error:
        cluster_args(**overrides)
    assert "acknowledge: [control-plane-internet]" in faults(error.value)["masterAuthorizedNetworks.office"]
    assert ipaddress.IPv4Network(cidr).prefixlen < 8


def test_the_gateway_firewall_admits_only_googles_ranges(record):
    rule = record(lambda: platform()).get("gcp:compute/firewall:Firewall", "gke-gateway").inputs
    assert rule["sourceRanges"] == ["35.191.0.0/16", "130.211.0.0/22"]
    assert all(not ipaddress.IPv4Network(r).overlaps(ipaddress.IPv4Network("8.8.8.0/24")) for r in rule["sourceRanges"])


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_the_stacks_gateway_namespaces_are_closed(stack):
    plan = plan_stack(stack, known=True)
    policies = [r for r in plan.by_type(NP) if r.inputs["metadata"]["namespace"].endswith("-gateway")]
    assert policies and all(
        [p["from"] for p in r.inputs["spec"]["ingress"]] == [[{"ipBlock": {"cidr": "35.191.0.0/16"}},
                                                              {"ipBlock": {"cidr": "130.211.0.0/22"}}]]
        for r in policies)


def test_the_readmes_gke_example_puts_its_services_rules_on_the_gateway():
    from test_readme import python_blocks, run_example
    (example,) = [e for e in python_blocks() if "McpGkePlatform" in e]
    plan = run_example(example)
    assert plan.get(BACKEND, "gke-gateway").inputs["securityPolicy"] == "gke-gateway-id"
    rules = plan.get(POLICY, "gke-gateway").inputs["rules"]
    limit = next(r for r in rules if r["description"] == "per-client limit")
    assert limit["rateLimitOptions"]["rateLimitThreshold"]["count"] == 300
    assert "expr" not in limit["match"]  # one per-client limit for every host (security_policy)


ACCESSES = [IAP, {**IAP, "members": ["user:x@example.com"]}, "public", "oauth",
            {"mode": "iam", "members": ["serviceAccount:bot@p.iam.gserviceaccount.com"]}]


@settings(max_examples=20, deadline=None)
@given(services=st.dictionaries(st.sampled_from(["a", "b", "c"]),
                                st.tuples(st.sampled_from(range(len(ACCESSES))), st.sampled_from([None, 50, 300])),
                                min_size=1),
       served=st.sets(st.sampled_from(["a", "b", "c"])))
def test_a_service_plans_only_where_its_gateway_enforces_its_access_and_rules(services, served):
    """Mesh services of mixed access and edge, some of them given to the platform: each service the
    plan accepts is behind IAP exactly when it is ``iap``, with its members, and its per-client
    limit holds on its host (the gateway's one per-client limit, the strictest, is no looser); a
    service is refused only where that does not hold."""
    settings_ = {name: args(ACCESSES[access], hosts=[f"{name}.example.com"],
                            **({"edge": {"rate_limit": {"requests": rate}}} if rate else {}))
                 for name, (access, rate) in services.items()}
    given_ = {name: settings_[name] for name in served if name in settings_}
    accepted, refused = [], []

    def program():
        ref = platform(mesh_services=given_)
        for name, service in settings_.items():
            try:
                McpMeshService(name, service, cluster=ref.cluster, mesh=ref.mesh)
                accepted.append(name)
            except SettingsError:
                refused.append(name)

    iap = {str(s.access) for s in given_.values() if s.access.mode.value == "iap"}
    mixed = bool(iap) and (len(iap) > 1 or any(s.access.mode.value != "iap" for s in given_.values()))
    if mixed:
        with pytest.raises(ValueError, match="all must be iap"):
            gateway_access(given_)
        return
    plan = run_function(program, project="t", stack="t", mock=GcpMocks(), preview=False)
    backend = plan.get(BACKEND, "gke-gateway").inputs
    rules = plan.get(POLICY, "gke-gateway").inputs["rules"]
    for name in accepted:
        service = settings_[name]
        assert (backend.get("iap") == {"enabled": True}) == (service.access.mode.value == "iap")
        if service.access.mode.value == "iap":
            members = {r.inputs["member"] for r in plan.resources if r.name.startswith("gke-gateway-iap-member")}
            assert members == set(service.access.members)
        (limit,) = [r for r in rules if r["description"] == "per-client limit"]
        threshold, own = limit["rateLimitOptions"]["rateLimitThreshold"], service.edge.rate_limit
        assert "expr" not in limit["match"]  # every host, whatever its spelling
        assert threshold["count"] / threshold["intervalSec"] <= own.requests / own.interval_seconds
    assert set(refused) == set(settings_) - set(given_)  # refused exactly where the gateway does not carry it
