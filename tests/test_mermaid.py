"""plan/mermaid.py: the real staging plan, a header-hash variant of it, and a hand-written mesh plan."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from conftest import plan_document, plan_example, plan_stack
from mcp_affinity.cli import find_project, run_plan
from mcp_affinity.cli.mermaid import Links, escape, graph, to_mermaid
from mcp_affinity.impact import workload_uses_store
from mcp_affinity.wire import BACKEND as BACKEND_TYPE, REDIS as REDIS_TYPE, STATEFUL_SET

ROOT = Path(__file__).parents[1]
STACK = "urn:pulumi:gke::mcp-affinity::pulumi:pulumi:Stack::mcp-affinity-gke"
MESH = "urn:pulumi:gke::mcp-affinity::pulumi:pulumi:Stack$mcp-affinity:index:McpMeshService::tools"
LB = "urn:pulumi:gke::mcp-affinity::pulumi:pulumi:Stack$mcp-affinity:index:GlobalHttpsLoadBalancer::lb"
NODE = re.compile(r'^\s+([A-Za-z0-9_]+)\["([^"\[\](){}<>]|<br/>)*"\]$')
EDGE = re.compile(r"^\s+([A-Za-z0-9_]+) -->(\|[a-z]+\|)? ([A-Za-z0-9_]+)$")


@pytest.fixture
def staging() -> dict:
    return plan_document("staging")


def component(plan: dict, kind: str) -> str:
    """The logical name of the plan's one component of ``kind`` (names may change; ids follow them)."""
    return next(r["name"] for r in plan["resources"] if r["type"] == f"mcp-affinity:index:{kind}")


@pytest.fixture(scope="module")
def header_hash(tmp_path_factory) -> dict:
    """Staging with ``tools`` hashing at the load balancer: the real program sets the backend."""
    folder = tmp_path_factory.mktemp("hash")
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    project.update(main=str(ROOT / "infra"), stackConfigDir=".")
    stack = yaml.safe_load((ROOT / "stacks" / "Pulumi.staging.yaml").read_text())
    stack["config"]["mcp-affinity:services"]["tools"].update(loadBalancerHash=True, acknowledge=["lb-hash-unsupported"])
    (folder / "Pulumi.yaml").write_text(yaml.safe_dump(project))
    (folder / "Pulumi.staging.yaml").write_text(yaml.safe_dump(stack))
    return run_plan(find_project(folder), "staging").document()


def res(urn: str, type_: str, name: str, parent: str, inputs: dict, custom: bool = True, refers: tuple = ()) -> dict:
    """A resource; ``refers``: the URNs its inputs carry (the plan's ``dependencies``)."""
    return {"urn": urn, "type": type_, "name": name, "parent": parent, "custom": custom, "inputs": inputs,
            "dependencies": list(refers)}


def mesh_plan() -> dict:
    """A GKE stack: LB -> backend on zonal NEGs -> Istio gateway -> rule -> Deployment (HPA) -> store,
    each link as the plan records it: a reference (the forwarding rule's target, the Deployment's
    store address) or a name (the gateway's autoneg annotation, the VirtualService's gateway and host)."""
    rule = {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": "mcp-tools"},
            "spec": {"host": "mcp-tools.mcp.svc.cluster.local",
                     "trafficPolicy": {"loadBalancer": {"consistentHash": {"httpHeaderName": "Mcp-Session-Id"}}}}}
    hpa = {"kind": "HorizontalPodAutoscaler", "spec": {"minReplicas": 2.0, "maxReplicas": 6.0,
                                                       "scaleTargetRef": {"kind": "Deployment", "name": "mcp-tools"}}}
    negs = [{"group": f"projects/p/zones/europe-west1-{z}/networkEndpointGroups/mcp-gw"} for z in "cb"]
    return {"project": "mcp-affinity", "stack": "gke", "outputs": {}, "resources": [
        res(LB, "mcp-affinity:index:GlobalHttpsLoadBalancer", "lb", STACK, {}, custom=False),
        res(LB + "$gcp:compute/globalForwardingRule:GlobalForwardingRule::lb-443",
            "gcp:compute/globalForwardingRule:GlobalForwardingRule", "lb-443", LB, {"portRange": "443"},
            refers=["urn:backend"]),
        res("urn:backend", "gcp:compute/backendService:BackendService", "gw", STACK,
            {"name": "mcp-gw-backend", "backends": negs}),
        res(MESH, "mcp-affinity:index:McpMeshService", "tools", STACK, {}, custom=False),
        res(MESH + "$kubernetes:networking.istio.io/v1:DestinationRule::tools",
            "kubernetes:networking.istio.io/v1:DestinationRule", "tools", MESH, rule),
        res(MESH + "$kubernetes:apps/v1:Deployment::tools", "kubernetes:apps/v1:Deployment", "tools", MESH,
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "mcp-tools"},
             "spec": {"replicas": 3.0, "template": {"spec": {"containers": [
                 {"name": "mcp", "env": [{"name": "MCP_SESSION_HEADER", "value": "Mcp-Session-Id"}]}]}}}},
            refers=["urn:redis"]),
        res(MESH + "$kubernetes:autoscaling/v2:HorizontalPodAutoscaler::tools",
            "kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "tools", MESH, hpa),
        res("urn:gateway", "kubernetes:apps/v1:Deployment", "gateway", STACK,
            {"kind": "Deployment", "metadata": {"name": "istio-ingressgateway", "annotations": {
                "controller.autoneg.dev/neg": '{"backend_services": {"80": [{"name": "mcp-gw-backend"}]}}'}}}),
        res("urn:redis", "gcp:redis/instance:Instance", "store", STACK,
            {"name": 'odd "name" [x] #1', "tier": "STANDARD_HA"}),
        res(MESH + "$kubernetes:networking.istio.io/v1:VirtualService::tools", "kubernetes:networking.istio.io/v1:VirtualService",
            "tools", MESH, {"kind": "VirtualService", "metadata": {"name": "tools-route"}, "spec": {
                "gateways": ["istio-ingressgateway"],
                "http": [{"route": [{"destination": {"host": "mcp-tools.mcp.svc.cluster.local"}}]}]}}),
    ]}


def edges(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if "-->" in line]


def test_staging_draws_lb_backend_neg_cloud_run_store(staging):
    text = to_mermaid(staging)
    lines = text.splitlines()
    lb, store = component(staging, "GlobalHttpsLoadBalancer"), component(staging, "SessionStore")
    assert lines[0] == "flowchart LR"
    # Components holding one drawn node (load balancer, store) get no subgraph: two-space indent.
    assert f'  lb_{lb}["Load balancer {lb}<br/>ports 80, 443"]' in lines
    assert any(line.startswith('    be_tools["Backend mcp-stg-tools') and line.endswith('<br/>no LB affinity"]')
               for line in lines)
    assert '    neg_tools["Serverless NEGs<br/>europe-west1, europe-west4"]' in lines
    assert ('    run_mcp_stg_tools["Cloud Run mcp-stg-tools<br/>regions europe-west1, europe-west4<br/>'
            'timeout 3600s<br/>ingress INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER<br/>access iam<br/>cookie affinity on"]') in lines
    assert any(line.startswith(f'  store_{store}["Session store mcp-stg-') and
               line.endswith('<br/>tier BASIC<br/>TLS SERVER_AUTHENTICATION"]') for line in lines)
    assert lines[lines.index('  subgraph grp_tools["CloudRunMcpService tools"]') + 1].startswith("    be_tools[")
    # Other platforms in the stack may add edges; the Cloud Run chains must be exactly these.
    assert [e for e in edges(text) if ("search" in e or "tools" in e) and not e.startswith("mon_")] == [
        f"lb_{lb} --> be_search", "be_search --> neg_search",
        f"lb_{lb} --> be_tools", "be_tools --> neg_tools",
        "neg_search --> run_mcp_stg_search", "neg_tools --> run_mcp_stg_tools",
        f"run_mcp_stg_search -->|sessions| store_{store}",
        f"run_mcp_stg_tools -->|sessions| store_{store}",
    ]
    # Monitoring watches the backends its metrics and alerts name.
    assert {e for e in edges(text) if e.startswith("mon_")} == {
        f"mon_monitoring -->|watches| be_{name}" for name in ("search", "tools", "gateway")}


def test_staging_mesh_services_reach_gateway_rule_and_store(staging):
    """Every McpMeshService in the real plan: gateway -> its DestinationRule -> Deployment -> store."""
    meshes = [r for r in staging["resources"] if r["type"] == "mcp-affinity:index:McpMeshService"]
    if not meshes:
        pytest.skip("the staging stack has no mesh services")
    text = to_mermaid(staging)
    for mesh in meshes:
        rule = next(r["inputs"] for r in staging["resources"]
                    if r["parent"] == mesh["urn"] and r["type"].endswith(":DestinationRule"))
        name = rule["metadata"]["name"]
        header = rule["spec"]["trafficPolicy"]["loadBalancer"]["consistentHash"]["httpHeaderName"]
        assert f'dr_{name}["DestinationRule {name}<br/>host {rule["spec"]["host"]}<br/>hash header {header}"]' in text
        assert f"dr_{name} --> dep_{name}" in edges(text)
        assert f"dep_{name} -->|sessions| store_{component(staging, 'SessionStore')}" in edges(text)
        sources = [e.split(" --> ")[0] for e in edges(text) if e.endswith(f" --> dr_{name}")]
        assert sources and all(source.startswith("gw_") for source in sources)


def test_header_hash_affinity_is_on_the_backend_label(header_hash):
    text = to_mermaid(header_hash)
    assert re.search(r'be_tools\["Backend mcp-stg-tools[^"]*<br/>affinity HEADER_FIELD / RING_HASH / Mcp-Session-Id"\]', text)
    assert re.search(r'be_search\["Backend mcp-stg-search[^"]*<br/>no LB affinity"\]', text)


@pytest.mark.parametrize("inputs, label", [
    ({"sessionAffinity": "NONE"}, "no LB affinity"),
    ({"localityLbPolicy": "MAGLEV"}, "affinity MAGLEV"),
    ({"sessionAffinity": "HEADER_FIELD", "consistentHash": {"httpHeaderName": "X-Session"}},
     "affinity HEADER_FIELD / X-Session"),
])
def test_backend_affinity_label(inputs, label):
    plan = {"resources": [res("urn:be", "gcp:compute/backendService:BackendService", "be", STACK,
                              {"name": "mcp-be", **inputs})]}
    assert to_mermaid(plan) == f'flowchart LR\n  be_be["Backend mcp-be<br/>{label}"]\n'


def test_every_line_is_a_node_edge_or_subgraph(staging, header_hash):
    for plan in (staging, header_hash, mesh_plan()):
        lines = to_mermaid(plan).splitlines()
        assert lines[0] == "flowchart LR"
        for line in lines[1:]:
            assert (NODE.match(line) or EDGE.match(line) or line == "  end"
                    or re.match(r'^  subgraph grp_[A-Za-z0-9_]+\["[^"\[\]]*"\]$', line)), line


def test_output_is_deterministic(staging):
    shuffled = dict(staging, resources=list(reversed(staging["resources"])))
    assert to_mermaid(staging) == to_mermaid(shuffled) == to_mermaid(staging)


def test_mesh_lb_to_gateway_rule_deployment_store():
    assert to_mermaid(mesh_plan()) == (
        "flowchart LR\n"
        '  lb_lb["Load balancer lb<br/>ports 443"]\n'
        '  gw_istio_ingressgateway["Istio gateway istio-ingressgateway"]\n'
        '  be_gw["Backend mcp-gw-backend<br/>no LB affinity"]\n'
        '  neg_gw["Zonal NEGs mcp-gw<br/>europe-west1-b, europe-west1-c"]\n'
        '  store_store["Session store odd #quot;name#quot; #91;x#93; #35;1<br/>tier STANDARD_HA<br/>TLS off"]\n'
        '  subgraph grp_tools["McpMeshService tools"]\n'
        '    dr_mcp_tools["DestinationRule mcp-tools<br/>host mcp-tools.mcp.svc.cluster.local<br/>'
        'hash header Mcp-Session-Id"]\n'
        '    dep_mcp_tools["Deployment mcp-tools<br/>replicas 2-6 HPA"]\n'
        "  end\n"
        "  lb_lb --> be_gw\n"
        "  be_gw --> neg_gw\n"
        "  neg_gw --> gw_istio_ingressgateway\n"
        "  gw_istio_ingressgateway --> dr_mcp_tools\n"
        "  dr_mcp_tools --> dep_mcp_tools\n"
        "  dep_mcp_tools -->|sessions| store_store\n"
    )


def test_istio_gateway_object_lists_its_ports():
    plan = mesh_plan()
    plan["resources"][7] = res("urn:gw", "kubernetes:networking.istio.io/v1:Gateway", "gw", STACK, {
        "apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": {"name": "mcp-gateway"},
        "spec": {"servers": [{"port": {"number": 443.0}}, {"port": {"number": 80.0}}]}})
    assert '  gw_mcp_gateway["Istio gateway mcp-gateway<br/>ports 80, 443"]\n' in to_mermaid(plan)


def test_colliding_names_get_distinct_ids():
    plan = {"resources": [
        res(f"urn:{i}", "gcp:redis/instance:Instance", name, STACK, {"tier": "BASIC"})
        for i, name in enumerate(["a-b", "a_b", "a.b"])]}
    ids = re.findall(r"^  (\w+)\[", to_mermaid(plan), re.M)
    assert ids == ["store_a_b", "store_a_b_2", "store_a_b_3"]


def test_escape_leaves_no_raw_quotes_or_brackets():
    assert escape('a"b[c](d){e}<f>|g`h#i') == "a#quot;b#91;c#93;#40;d#41;#123;e#125;#lt;f#gt;#124;g#96;h#35;i"


STACKS = ("dev", "staging", "prod")
EXAMPLES = tuple(sorted(p.name[len("Pulumi."):-len(".yaml")] for p in (ROOT / "examples").glob("Pulumi.*.yaml")))


def picture_of(name: str) -> tuple[dict, str, dict, dict]:
    plan = (plan_stack(name) if name in STACKS else plan_example(name)).document()
    members, edges_ = graph(plan)
    return plan, to_mermaid(plan), members, edges_


@pytest.mark.parametrize("name", STACKS + EXAMPLES)
def test_the_picture_holds_to_the_plan(name):
    """Every edge drawn is a link of the plan; every backend, proxy and store is drawn, with its
    IAP and Cloud Armor; a workload reaches the store only when it reads the store's address."""
    plan, text, members, edges_ = picture_of(name)
    by_urn = {r["urn"]: r for r in plan["resources"]}
    drawn = {urn for found in members.values() for urn in found}
    links = Links(plan["resources"])
    for source, target in edges_:
        assert links.linked(members[source], members[target], drawn), (source, target)
    for resource in plan["resources"]:
        if resource["type"] in (BACKEND_TYPE, REDIS_TYPE, STATEFUL_SET):
            assert resource["urn"] in drawn, resource["urn"]
    labels = dict(re.findall(r'^\s+(\w+)\["(.*)"\]$', text, re.M))
    for node, found in members.items():
        backends = [by_urn[u]["inputs"] for u in found if by_urn[u]["type"] == BACKEND_TYPE]
        if backends and not str(backends[0].get("description", "")).startswith("mcp-affinity: unknown hosts"):
            assert ("IAP" in labels[node]) == all(b.get("iap", {}).get("enabled") is True for b in backends), node
            assert ("Cloud Armor" in labels[node]) == all(b.get("securityPolicy") is not None for b in backends), node
    for (source, target), label in edges_.items():
        if label == "sessions":
            assert any(workload_uses_store(by_urn[u]) for u in members[source]), (source, target)


@pytest.mark.parametrize("name", STACKS + EXAMPLES)
def test_every_workload_that_reads_a_store_is_drawn_reaching_it(name):
    plan, _, members, edges_ = picture_of(name)
    stores = [node for node in members if node.startswith("store_")]
    readers = [node for node, found in members.items() if not node.startswith("store_") and any(
        workload_uses_store(r) for r in plan["resources"] if r["urn"] in found)]
    assert {(reader, store) for reader in readers for store in stores} <= set(edges_)


def test_learned_pinning_draws_the_proxy_and_the_gateway_backend_reaching_the_gateway():
    _, text, members, edges_ = picture_of("gke-in-memory-learned")
    proxy = next(node for node in members if node.startswith("proxy_"))
    gateway = next(node for node in members if node.startswith("gw_"))
    backend = next(node for node in members if node.startswith("be_") and "nohost" not in node)
    rule, deployment = (next(n for n in members if n.startswith(p)) for p in ("dr_", "dep_"))
    assert [(backend, gateway), (gateway, rule), (rule, proxy), (proxy, deployment)] == [
        e for e in edges_ if e[0] in (backend, gateway, rule, proxy)]
    assert "HAProxy x 2" in text
