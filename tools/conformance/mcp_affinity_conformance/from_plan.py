"""What a plan says about each MCP service's routing, as the conformance run's proxy emulates it.

Read from the plan's resources, never from the stack file, so the run measures what ``pulumi up``
would deploy:

- Cloud Run (``gcp:cloudrunv2/service:Service``): one instance in one region -> ``single``;
  ``template.sessionAffinity`` (Cloud Run's cookie) -> ``cookie``; otherwise ``round-robin``. A
  serverless NEG addresses no instance, so a backend ``consistentHash`` is not emulated
  (https://cloud.google.com/run/docs/configuring/session-affinity).
- GKE: a ConfigMap ``haproxy.cfg`` with ``stick store-response res.hdr(H)`` -> ``learned`` on H,
  run as that very configuration;
  a Service labelled ``istio.io/persistent-session: C`` -> ``cookie`` C; a DestinationRule
  ``consistentHash.httpHeaderName: H`` -> ``header-hash`` on H; otherwise ``round-robin``.

Each service's ``MCP_SESSION_MODE`` picks the servers measured behind that routing.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from mcp_affinity.wire import CLOUD_RUN, SECRET_SIG, URL_MAP
from .proxy import ROUTING_KINDS, Routing


SERVERS_FOR_MODE = {
    "in-memory-sessions": ("sdk-in-memory", "fastmcp-in-memory", "ts-in-memory"),
    "stateless": ("sdk-2026", "sdk-stateless", "fastmcp-stateless", "ts-stateless"),
    "stateless+broker": ("litestar-2026", "sdk-2026", "sdk-stateless", "fastmcp-stateless", "ts-stateless"),
    "shared-sessions": (),
}
"""Session mode -> conformance server modes. No public MCP server keeps legacy sessions in Redis,
so ``shared-sessions`` has nothing real to measure; its rows say so."""


@dataclass(frozen=True)
class PlannedRouting:
    """One service of a plan: its platform, session mode, the proxy routing that emulates it, and why."""

    service: str
    platform: str
    session_mode: str
    routing: Routing
    because: str

    @property
    def server_modes(self) -> tuple[str, ...]:
        return SERVERS_FOR_MODE[self.session_mode]


def _value(value: Any) -> Any:
    return value.get("value") if isinstance(value, dict) and SECRET_SIG in value else value


def _env(container: dict, key: str) -> dict[str, Any]:
    return {e.get("name"): _value(e.get("value")) for e in container.get(key) or [] if isinstance(e, dict)}


def _resources(plan: dict) -> list[dict]:
    """The resources of a plan in any shape :func:`mcp_affinity.cli.plan_file.validate` reads."""
    from mcp_affinity.cli.plan_file import validate

    return validate(plan)["resources"]


def planned_routings(plan: dict) -> list[PlannedRouting]:
    """Every MCP service of ``plan`` (the JSON of ``mcp-affinity plan --json``), sorted by name."""
    resources = _resources(plan)
    return sorted([*_cloud_run(resources), *_gke(resources)], key=lambda p: (p.platform, p.service))


def _cloud_run(resources: list[dict]) -> Iterator[PlannedRouting]:
    by_name: dict[str, list[dict]] = {}
    for resource in resources:
        if resource.get("type") == CLOUD_RUN and not is_shard(resource["inputs"]):
            by_name.setdefault(str(resource["inputs"].get("name")), []).append(resource["inputs"])
    for name, regions in sorted(by_name.items()):
        template = regions[0].get("template") or {}
        env = _env((template.get("containers") or [{}])[0], "envs")
        mode = _mode(env)
        maximum = (template.get("scaling") or {}).get("maxInstanceCount")
        if len(regions) == 1 and maximum == 1:
            routing, why = Routing("single"), "one instance in one region"
        elif template.get("sessionAffinity"):
            routing, why = Routing("cookie"), "Cloud Run session affinity (a cookie)"
        else:
            routing, why = Routing("round-robin"), "no affinity"
        yield PlannedRouting(name, "cloud-run", mode, routing, why)


def _gke(resources: list[dict]) -> Iterator[PlannedRouting]:
    namespaces: dict[str, dict[str, list[dict]]] = {}
    for resource in resources:
        inputs = resource.get("inputs") or {}
        metadata = inputs.get("metadata") if isinstance(inputs.get("metadata"), dict) else {}
        if resource.get("type", "").startswith("kubernetes:") and metadata.get("namespace"):
            namespaces.setdefault(metadata["namespace"], {}).setdefault(inputs.get("kind", ""), []).append(inputs)
    for namespace, kinds in sorted(namespaces.items()):
        for deployment in kinds.get("Deployment", []):
            containers = deployment["spec"]["template"]["spec"]["containers"]
            env = _env(containers[0], "env")
            if "MCP_SESSION_MODE" in env:
                yield PlannedRouting(deployment["metadata"]["name"], "gke", _mode(env),
                                     *_mesh_routing(kinds, env.get("MCP_SESSION_HEADER") or "Mcp-Session-Id"))


def _mesh_routing(kinds: dict[str, list[dict]], header: str) -> tuple[Routing, str]:
    for config_map in kinds.get("ConfigMap", []):
        config = str((config_map.get("data") or {}).get("haproxy.cfg"))
        match = re.search(r"stick store-response res\.hdr\(([^)]+)\)", config)
        if match:
            return Routing("learned", header=match[1], config=config), "HAProxy learns the session id from the response"
    for service in kinds.get("Service", []):
        cookie = ((service.get("metadata") or {}).get("labels") or {}).get("istio.io/persistent-session")
        if cookie:
            return Routing("cookie", cookie=cookie), "Istio persistent session (a cookie)"
    for rule in kinds.get("DestinationRule", []):
        hashed = (((rule.get("spec") or {}).get("trafficPolicy") or {}).get("loadBalancer") or {}).get("consistentHash")
        if hashed and hashed.get("httpHeaderName"):
            return Routing("header-hash", header=hashed["httpHeaderName"]), "DestinationRule consistent hash"
    return Routing("round-robin"), "least request (no pinning)"


def _mode(env: dict[str, Any]) -> str:
    mode = str(env.get("MCP_SESSION_MODE") or "stateless")
    if mode == "stateless" and "MCP_NOTIFICATION_BROKER_URL" in env:
        return "stateless+broker"
    return mode if mode in SERVERS_FOR_MODE else "stateless"


def routings_of(plans: list[dict]) -> tuple[Routing, ...]:
    """One routing per kind, in :data:`~.proxy.ROUTING_KINDS` order, as the ``plans`` configure it
    (the first service planned with that kind). Raises ``ValueError`` for a kind no plan has:
    the matrix measures only what the package deploys."""
    planned = [p.routing for plan in plans for p in planned_routings(plan)]
    found = {}
    for routing in planned:
        found.setdefault(routing.kind, routing)
    if missing := [kind for kind in ROUTING_KINDS if kind not in found]:
        raise ValueError(f"no plan configures the routing {', '.join(missing)}")
    return tuple(found[kind] for kind in ROUTING_KINDS)


def plan_all(root: Path) -> list[dict]:
    """The plans (JSON) of every stack in ``stacks/`` and every example in ``examples/`` of the
    checkout at ``root``, as ``mcp-affinity plan --json`` gives them."""
    from mcp_affinity.cli import find_project, run_plan

    project = find_project(root)
    plans = []
    for folder in (project.stack_config_dir, root / "examples"):
        where = dataclasses.replace(project, stack_config_dir=folder)
        plans += [run_plan(where, path.name[len("Pulumi."):-len(".yaml")]).to_json()
                  for path in sorted(folder.glob("Pulumi.*.yaml"))]
    return plans


def plan_example_with(root: Path, example: str, workdir: Path, service: str, **settings: Any) -> dict:
    """The plan (JSON) of ``examples/Pulumi.<example>.yaml`` of the checkout at ``root`` with mesh
    service ``service``'s settings changed (stack-file keys, e.g. ``maxReplicas=2``), the stack file
    written to ``workdir``: the same program, the same generator, one setting apart."""
    import yaml
    from mcp_affinity.cli import find_project, run_plan

    document = yaml.safe_load((root / "examples" / f"Pulumi.{example}.yaml").read_text())
    document["config"]["mcp-affinity:meshServices"][service].update(settings)
    (workdir / f"Pulumi.{example}-changed.yaml").write_text(yaml.safe_dump(document))
    where = dataclasses.replace(find_project(root), stack_config_dir=workdir)
    return run_plan(where, f"{example}-changed").to_json()


@dataclass(frozen=True)
class PlannedShards:
    """A Cloud Run service with ``pinning: shards`` as its plan says (:mod:`mcp_affinity.cloud_run_shards`).

    - ``rules``: the URL map's route rules of the service's path matcher, in priority order, each
      (session-header prefix, shard key it routes to); ``header``: the header they match.
    - ``weights``: the default route's ``weightedBackendServices`` weights, by shard key (the
      generator lists them in sorted key order; their backend ids are unknown in a preview).
    - ``proxy_config``: the planned ingress configuration (the plan's ``sessionShards`` output),
      None when the server prefixes its ids itself; ``keys``: each shard's ``MCP_SHARD_KEY``.
    - ``draining``: keys of earlier generations the URL map still routes by header (their tagged
      revisions serve them; a plan holds no template of theirs).
    """

    service: str
    header: str
    rules: tuple[tuple[str, str], ...]
    weights: dict[str, int]
    keys: tuple[str, ...]
    proxy_config: str | None
    draining: tuple[str, ...] = ()


def planned_shards(plan: dict) -> list[PlannedShards]:
    """Every sharded Cloud Run service of ``plan`` (the JSON of ``mcp-affinity plan --json``).

    Raises ``ValueError`` when the URL map's shard routes and the shard services disagree."""
    resources = _resources(plan)
    keys: dict[str, list[str]] = {}
    for resource in resources:
        if resource.get("type") == CLOUD_RUN:
            for container in (resource["inputs"].get("template") or {}).get("containers") or []:
                env = _env(container, "envs")
                key = env.get("MCP_SHARD_KEY") or str(env.get("MCP_SESSION_ID_PREFIX") or "").rstrip(".")
                if key:
                    keys.setdefault(str(resource.get("parent", "")).rsplit("::", 1)[-1], []).append(key)
    matchers = {m.get("name"): m for r in resources if r.get("type") == URL_MAP
                for m in r["inputs"].get("pathMatchers") or []}
    outputs = (plan.get("outputs") or {}).get("sessionShards") or {}
    return [_shards(service, sorted(found), matchers.get(service) or {}, outputs.get(service) or {})
            for service, found in sorted(keys.items())]


def _base(key: str) -> str:
    """A shard key without its generation: ``europe-west1-s0-g7`` -> ``europe-west1-s0``."""
    return re.sub(r"-g\d+$", "", key)


def _shards(service: str, keys: list[str], matcher: dict, output: dict) -> PlannedShards:
    rules, header, bases = [], None, {_base(key) for key in keys}
    for rule in sorted(matcher.get("routeRules") or [], key=lambda r: r.get("priority", 0)):
        for match in rule.get("matchRules") or []:
            for header_match in match.get("headerMatches") or []:
                prefix = header_match.get("prefixMatch")
                if prefix and _base(prefix.rstrip(".")) in bases:
                    header = header_match.get("headerName")
                    rules.append((prefix, prefix.rstrip(".")))
    weighted = ((matcher.get("defaultRouteAction") or {}).get("weightedBackendServices") or [])
    draining = tuple(sorted({key for _, key in rules} - set(keys)))
    if sorted(set(key for _, key in rules) - set(draining)) != keys or len(weighted) != len(keys) or header is None:
        raise ValueError(f"{service}: the URL map's shard routes ({len(rules)}) and default weights "
                         f"({len(weighted)}) do not match its {len(keys)} shard services")
    weights = {key: int(w.get("weight", 0)) for key, w in zip(keys, weighted)}
    return PlannedShards(service, header, tuple(rules), weights, tuple(keys), output.get("proxyConfig"), draining)


def is_shard(inputs: dict) -> bool:
    """Whether a Cloud Run service's inputs are a session shard's (a container sets
    ``MCP_SHARD_KEY`` or ``MCP_SESSION_ID_PREFIX``): measured by :func:`planned_shards` and
    :mod:`.shards`, not as a routing of its own."""
    return any({"MCP_SHARD_KEY", "MCP_SESSION_ID_PREFIX"} & set(_env(container, "envs"))
               for container in (inputs.get("template") or {}).get("containers") or [])
