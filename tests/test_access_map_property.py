"""Property: every route of every host ends where that host's access holds, or the stack is refused.

Hypothesis writes stack files that mix platforms (Cloud Run, GKE), access modes and members, method
routes, session shards, path prefixes and ``oauth`` services (whose metadata paths the load balancer
routes), plans each offline as ``mcp-affinity plan`` does, and reads the access map of the plan
(:mod:`mcp_affinity.access_map`): no route may cross to a backend that does not hold the host's
access and edge, unless the stack check refused the stack naming the method route's key and both
services.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, Phase, event, given, settings, strategies as st

from conftest import ROOT
from mcp_affinity import ConfigError
from mcp_affinity.access_map import access_map, crossings
from mcp_affinity.cli import find_project, run_plan

MEMBERS = ["user:ana@example.com", "group:dev@example.com", "serviceAccount:agent@p-1234.iam.gserviceaccount.com"]
SHARED = "shared.example.com"
IMAGE = "europe-docker.pkg.dev/p/mcp/server:1"

access_st = st.one_of(
    st.sampled_from(["public", "oauth"]),
    st.builds(lambda mode, members: {"mode": mode, "members": members}, st.sampled_from(["iam", "iap"]),
              st.lists(st.sampled_from(MEMBERS[1:]), min_size=1, max_size=2, unique=True).map(sorted)),
)
limit_st = st.fixed_dictionaries({"method": st.just("tools/call"), "requests": st.sampled_from([10, 20]),
                                  "intervalSeconds": st.just(60)},
                                 optional={"name": st.sampled_from(["render", "search"])})
edge_st = st.fixed_dictionaries({}, optional={
    "requireMethodHeader": st.booleans(),
    "rateLimit": st.builds(lambda n: {"requests": n, "intervalSeconds": 60}, st.sampled_from([300, 600])),
    "methodLimits": st.dictionaries(st.sampled_from(["l1", "l2"]), limit_st, max_size=2),
    "refuseJndiLookups": st.booleans(),
    "waf": st.fixed_dictionaries({"enabled": st.booleans(), "preview": st.booleans(), "sensitivity": st.sampled_from([1, 2]),
                                  "ruleSets": st.sampled_from([["sqli"], ["sqli", "xss"]])}),
})


@st.composite
def cloud_run_services(draw, names: list[str]) -> dict:
    services = {}
    for index, name in enumerate(names):
        service = {"image": IMAGE, "sessionMode": "stateless", "access": draw(access_st), "regions": ["europe-west1"]}
        if draw(st.booleans()) and index > 0:
            service["pathPrefixes"] = [f"/{name}"]
        else:
            service["hosts"] = [f"{name}.example.com"]
        if "hosts" in service and draw(st.booleans()):
            service.update(sessionMode="in-memory-sessions", pinning="shards", shards=draw(st.integers(1, 2)))
        edge = draw(edge_st)
        if edge:
            service["edge"] = edge
        services[name] = service
    for name, service in services.items():
        targets = [n for n in names if n != name]
        if "hosts" in service and targets and draw(st.booleans()):
            target = draw(st.sampled_from(targets))
            service["methodRoutes"] = {"r": {"method": "tools/call", "service": target,
                                             **({"name": "render"} if draw(st.booleans()) else {})}}
            if draw(st.booleans()):  # half the routes go to a service set up to hold the host's access and edge
                services[target]["access"] = service["access"]
                services[target].pop("edge", None)
                services[target].update({"edge": service["edge"]} if "edge" in service else {})
    return services


@st.composite
def mesh_services(draw) -> dict:
    services = {}
    for name in ("mone", "mtwo"):
        access = draw(st.sampled_from(["public", {"mode": "iam", "members": [MEMBERS[0]]},
                                       {"mode": "iam", "members": [MEMBERS[2]]}]))
        services[name] = {"image": IMAGE, "sessionMode": "stateless", "hosts": [f"{name}.example.com"], "access": access}
    if draw(st.booleans()):
        if draw(st.booleans()):
            services["mtwo"]["access"] = services["mone"]["access"]
        services["mone"]["methodRoutes"] = {"r": {"method": "tools/call", "service": "mtwo"}}
    return services


@st.composite
def stacks(draw) -> dict:
    names = ["alpha", "bravo", "carol"][:draw(st.integers(2, 3))]
    config = {
        "gcp:project": "my-project-1234",
        "mcp-affinity:environment": "dev",
        "mcp-affinity:prefix": "ptest",
        "mcp-affinity:network": {"subnets": {"europe-west1": {"ipCidrRange": "10.40.0.0/24"}}},
        "mcp-affinity:services": draw(cloud_run_services(names)),
    }
    services = config["mcp-affinity:services"].values()
    shared = {SHARED} if any("pathPrefixes" in s for s in services) else set()
    hosts = sorted({h for s in services for h in s.get("hosts", [])} | shared)
    if draw(st.integers(0, 3)) == 0:  # GKE is the slower plan: about one stack in four
        config["mcp-affinity:platforms"] = ["cloud-run", "gke"]
        config["mcp-affinity:network"] = {"cloudNat": True, "subnets": {"europe-west1": {
            "ipCidrRange": "10.40.0.0/24", "secondaryRanges": {"pods": "10.140.0.0/16", "services": "10.40.128.0/20"}}}}
        config["mcp-affinity:gke"] = {"region": "europe-west1", "zones": ["europe-west1-b"], "masterCidr": "172.16.40.0/28",
                                      "masterAuthorizedNetworks": {"ci": "203.0.113.0/24"}}
        config["mcp-affinity:meshServices"] = draw(mesh_services())
        hosts += ["mone.example.com", "mtwo.example.com"]
    config["mcp-affinity:loadBalancer"] = {"certificates": {"main": hosts}}
    return {"config": config}


def plan_or_refusal(stack: dict):
    """The plan of ``stack`` (a stack file's content), or the ConfigError refusing it."""
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "Pulumi.prop.yaml").write_text(yaml.safe_dump(stack))
        project = dataclasses.replace(find_project(ROOT), stack_config_dir=Path(folder))
        try:
            return run_plan(project, "prop")
        except ConfigError as error:
            return error


def crossing_routes(config: dict) -> set[tuple[str, str, str]]:
    """(section, service, target) of every method route the stack file declares."""
    return {(section, name, route["service"])
            for section in ("services", "meshServices")
            for name, service in (config.get(f"mcp-affinity:{section}") or {}).items()
            for route in (service.get("methodRoutes") or {}).values()}


@settings(max_examples=int(os.environ.get("ACCESS_MAP_EXAMPLES", "12")), deadline=None, suppress_health_check=[HealthCheck.too_slow],
          phases=[Phase.explicit, Phase.reuse, Phase.generate])  # no shrinking: each plan takes a second or more
@given(stacks())
def test_every_route_ends_where_its_hosts_access_holds(stack):
    result = plan_or_refusal(stack)
    config = stack["config"]
    event("refused" if isinstance(result, ConfigError) else "planned")
    event(f"method routes: {len(crossing_routes(config))}")
    event("with gke" if "mcp-affinity:gke" in config else "cloud run only")
    if isinstance(result, ConfigError):
        text = str(result)
        # Refused only for a method route, under its key, naming both services.
        assert ".methodRoutes.r" in text, text
        assert any(f"{section}.{name}.methodRoutes.r" in text and repr(target) in text
                   for section, name, target in crossing_routes(config)), text
        return
    found = access_map([r.to_json() for r in result.resources])
    served = {r.host for r in found.routes}
    assert set(config["mcp-affinity:loadBalancer"]["certificates"]["main"]) <= served
    assert all(r.ends for r in found.routes), [r.line() for r in found.routes if not r.ends]
    # Every declared method route is in the map (one host per service here), so the check below cannot pass vacuously.
    assert sum(1 for r in found.routes if r.kind == "method") == len(crossing_routes(config))
    problems = [(route.line(), differences) for route, _, differences in crossings(found)]
    assert not problems, problems
