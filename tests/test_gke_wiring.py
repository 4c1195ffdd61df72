"""One GKE wiring: ``infra/`` builds GKE through ``McpGkePlatform``, and a stack created by the
former wiring (the cluster, autoneg controller, gateway backend and mesh at the stack's root)
moves under the platform without a replacement or a deletion.

Two checks, both on the plans ``mcp-affinity plan`` makes:

- ``tests/fixtures/gke_urns_before_21.json`` holds the URNs main planned for the GKE parts of
  staging and prod before the change; each is still planned, or is an alias of a planned resource
  (the engine moves it: https://www.pulumi.com/docs/iac/operations/stack-management/refactoring-with-aliases/).
- The former wiring (:func:`former_build`, ``infra/platforms/gke.py`` ``build`` at b5fc90d) runs on
  today's components and settings; ``diff`` from its plan to the program's finds no replacement and
  no deletion, and the one update is the autoneg controller now watching only the gateway's
  namespace (the platform's default).
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import ROOT, plan_document
from mcp_affinity.cli import find_project, run_plan
from mcp_affinity.cli.diff import diff_plans, moves
from mcp_affinity.cli.plan_file import validate

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "gke_urns_before_21.json").read_text())

FORMER_PROGRAM = textwrap.dedent('''
    """infra/ with its GKE platform's build() as it was before issue 21 (b5fc90d)."""
    import runpy
    import sys

    sys.path.insert(0, INFRA)
    from mcp_affinity import AutonegController, GkeCluster, McpMeshService, Mesh, MeshGatewayBackend
    from mcp_affinity.access import AccessMode
    from mcp_affinity.mesh_service import service_host
    from mcp_affinity.security_policy import EdgeScopeArgs
    from platforms import gke as platform


    def former_build(parts, context):
        gke = GkeCluster("gke", parts["cluster"], network=context.network)
        cluster = gke.ref()
        autoneg = AutonegController("autoneg", parts["autoneg"], cluster=cluster)
        services_args = parts["services"]
        iap = next((s.access for s in services_args.values() if s.access.mode is AccessMode.IAP), None)
        scopes = {name: EdgeScopeArgs(edge=s.edge, hosts=s.hosts, scoped=True,
                                      oauth_metadata=s.access.mode is AccessMode.OAUTH)
                  for name, s in services_args.items()}
        gateway = MeshGatewayBackend("gateway", parts["gateway"], network=context.network, cluster=cluster,
                                     iap=iap, edge_scopes=scopes)
        mesh = Mesh("mesh", parts["mesh"], cluster=cluster, gateway_backend=gateway.ref(),
                    autoneg=autoneg.ref()).ref()
        hosts = {name: service_host(args.prefix, name) for name, args in services_args.items()}
        services = {
            name: McpMeshService(name, args, cluster=cluster, mesh=mesh, session_store=context.session_store,
                                 route_hosts=hosts, secret_env=context.secret_env("meshServices", args.env))
            for name, args in sorted(parts["services"].items())
        }
        outputs = {"gkeCluster": gke.cluster_name,
                   "meshServiceHosts": {name: service.service_host for name, service in services.items()},
                   "meshServiceAccess": {name: args.access.summary() for name, args in sorted(services_args.items())}}
        return {platform.ROUTE: gateway.backend_service_id}, outputs


    # The module may outlive this run (a test imported it before): patch it for this run only.
    current, platform.build = platform.build, former_build
    try:
        runpy.run_path(INFRA + "/__main__.py", run_name="__main__")
    finally:
        platform.build = current
''')


def former_plan(stack: str, tmp_path: Path) -> dict:
    """The plan of ``infra/`` with the former GKE wiring, as ``plan --json`` writes it."""
    program = tmp_path / "__main__.py"
    program.write_text(f"INFRA = {str(ROOT / 'infra')!r}\n" + FORMER_PROGRAM)
    infra = str(ROOT / "infra")
    before = set(sys.modules)
    try:
        plan = run_plan(find_project(ROOT), stack, program=program)
    finally:
        # The infra modules the former program imported (and patched) must not reach other tests.
        for module in set(sys.modules) - before:
            if (getattr(sys.modules[module], "__file__", None) or "").startswith(infra):
                del sys.modules[module]
    return json.loads(json.dumps(plan.to_json()))


@pytest.mark.parametrize("stack", sorted(FIXTURE["urns"]))
def test_every_former_urn_is_planned_or_aliased(stack):
    plan = plan_document(stack)
    planned = {r["urn"] for r in plan["resources"]}
    aliased = {alias for r in plan["resources"] for alias in r.get("aliases", [])}
    lost = [urn for urn in FIXTURE["urns"][stack] if urn not in planned and urn not in aliased]
    assert not lost, f"{len(lost)} resources of existing {stack} stacks would be deleted: {lost[:5]}"
    # The move is real: the four parts now sit under the platform, each aliased to its root URN.
    moved = {r["name"] for r in plan["resources"] if r.get("aliases") and r["type"].startswith("mcp-affinity:index:")
             and r["parent"].split("::")[2].endswith("$mcp-affinity:index:McpGkePlatform")}
    assert set(moved) == {"gke", "autoneg", "gateway", "mesh"}


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_former_wiring_to_platform_replaces_and_deletes_nothing(stack, tmp_path):
    before, after = validate(former_plan(stack, tmp_path)), validate(plan_document(stack))
    diff = diff_plans(before, after)
    assert not diff.removed and not diff.replaced, (diff.removed, diff.replaced)
    # Besides the platform, only what #20 added since (the former wiring predates McpMeshMetrics).
    assert [r.type for r in diff.added if "McpMeshMetrics" not in r.urn] == ["mcp-affinity:index:McpGkePlatform"]
    assert len(moves({r["urn"]: r for r in before["resources"]}, {r["urn"]: r for r in after["resources"]})) >= 4
    # The one update: the autoneg controller watches only the gateway's namespace (the platform's default).
    assert [(c.type, c.name) for c in diff.updated] == [("kubernetes:apps/v1:Deployment", "autoneg")]
    (change,) = diff.updated[0].changes
    assert change.new.startswith("--namespaces=") and change.new.endswith("-mesh-gateway")


def test_without_aliases_the_move_would_delete_every_part(tmp_path):
    """The diff is alias-aware, not blind: dropping the aliases shows each part deleted and re-created."""
    before, after = former_plan("staging", tmp_path), plan_document("staging")
    for resource in after["resources"]:
        resource.pop("aliases", None)
    diff = diff_plans(validate(before), validate(after))
    assert {r.name for r in diff.removed if r.type.startswith("mcp-affinity:index:")} == {
        "gke", "autoneg", "gateway", "mesh"}
