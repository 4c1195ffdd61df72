"""Session shards on Cloud Run: the load balancer pins every legacy session, for every client.

A serverless NEG addresses a Cloud Run service, never an instance
(https://cloud.google.com/run/docs/configuring/session-affinity), so the load balancer cannot pin
a session to the instance that holds it. It can route on a header prefix
(``routeRules[].matchRules[].headerMatches[].prefixMatch``) and spread requests with
``weightedBackendServices``, both supported with serverless NEG backends
(https://cloud.google.com/load-balancing/docs/https/traffic-management-global). So with
``pinning: shards`` a service runs as ``shards`` Cloud Run services per region, each held at
exactly one instance (min = max = 1), each behind its own serverless NEG and backend service, each
with a **shard key** (``{region}-s{index}``, e.g. ``europe-west1-s0``):

- In each shard an ingress container (a stock HAProxy image, :data:`SHARD_PROXY_IMAGE`) prefixes
  the session id the server mints with ``{key}.`` on responses and strips it from requests, so
  the server never sees it. A request whose id carries another shard's key, or no key, gets
  404 (what MCP answers for an unknown session: the client re-initializes;
  https://modelcontextprotocol.io/specification/2025-11-25/basic/transports) and never reaches
  the server. The configuration comes from one generator, :func:`ingress_config`, and is mounted
  from a Secret Manager secret, Google's own pattern for a sidecar's configuration
  (https://cloud.google.com/run/docs/internet-proxy-nginx-sidecar); the key is the container's
  ``MCP_SHARD_KEY`` variable, so every shard of a service shares one secret.
- With ``shardPrefixBy: server`` (servers that let the operator choose session ids, e.g. the
  TypeScript SDK's ``sessionIdGenerator``) there is no ingress container: the server reads
  ``MCP_SESSION_ID_PREFIX`` (``{key}.``) and starts every id it mints with it.
- The URL map (:class:`~mcp_affinity.load_balancer.GlobalHttpsLoadBalancer`) sends a request whose
  session header starts with ``{key}.`` to that shard, and every other request (``initialize``,
  MCP 2026-07-28 requests without a session) to all shards with equal weights.

Costs and limits:

- ``regions x shards`` instances run at all times (an instance scaled to zero would end its
  sessions), each with the server's CPU and memory plus the proxy's (:data:`PROXY_CPU`, :data:`PROXY_MEMORY`).
- Capacity is ``regions x shards x concurrency`` requests at once, with no autoscaling beyond it.
- Cloud Run may briefly run more instances than the maximum "such as rapid traffic surges or
  system maintenance" (https://cloud.google.com/run/docs/about-instance-autoscaling). While a
  shard runs two instances, both carry its key and Cloud Run spreads the shard's requests over
  them: a request that lands on the instance not holding its session gets 404 and the client
  re-initializes, unless it keeps Cloud Run's session-affinity cookie (set on every shard for this
  window). No session of another shard is touched.
- Deploys (``sessionDrainSeconds`` > 0, the default): the shard key carries a **generation**
  (``europe-west1-s0-g7``). Each generation is a named revision (``{service}-gen7``) with a traffic
  tag (``gen7``); its own serverless NEG addresses the tag (``cloud_run: {service, tag}``, "Cloud Run
  tag represents the 'named-revision'", :data:`~mcp_affinity.sources.SERVERLESS_NEG_API`), behind
  its own backend service and route. A deploy adds a generation (``generations.N: <when>``, see
  :func:`generations_of`; a stack without entries serves generation 0, so its first deploy adds
  ``"1"``): its revision takes 100 % of the traffic and every new session (the weighted default
  route spreads over the current generation only), while the previous generation's revision stays
  tag-only (0 %) and keeps serving the ids carrying its key. It keeps one instance because the
  minimum is set on the revision: "if a revision is active only due to traffic tags ... the
  specified number of instances will start"
  (https://cloud.google.com/run/docs/configuring/services/manual-scaling). Whether Cloud Run keeps
  the *same* instance (and so its sessions' memory) when a revision goes from 100 % to tag-only is
  not documented: if it does not, the old generation's sessions get 404 and re-initialize on the
  new one (today's behaviour), and new sessions are unaffected. Pulumi has no timer: a retired
  generation's route, NEG, backend service and tag go at the first ``pulumi up`` after
  ``generations[next] + sessionDrainSeconds`` (the scheduled prune, ``.github/workflows/prune.yml``,
  which applies a change only when :mod:`mcp_affinity.prune` finds it is pruning alone; or the next
  deploy). Two deploys
  inside one window keep three generations serving; each retained generation costs regions x
  shards more always-on instances, as many NEGs and backend services, and as many URL-map route
  rules (counted against the quota). Each shard's service carries the window in its service-level
  label ``mcp-session-drain-seconds`` (:data:`DRAIN_LABEL`), which reviews read. A template change
  without a new generation would reuse a revision name, which Cloud Run refuses at apply: the
  service's generation guard (:mod:`mcp_affinity.generation_guard`) fails ``pulumi preview``
  first. With ``sessionDrainSeconds: 0`` a deploy replaces each shard's instance and ends its
  sessions, and keys carry no generation.
- Several regions: the region is part of the key, so a session stays in the region that created
  it. When a region fails its shards' sessions are lost (clients re-initialize), and the default
  route keeps sending its share of new sessions (shards there / all shards) to it, because
  weighted backend services split traffic by weight, not by health, until the region is removed
  from ``regions``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Optional

import pulumi
import pulumi_gcp as gcp

from . import sources
from .affinity import SessionMode
from .generation_guard import GenerationGuard, revision_key
from .limits import cloud_run_cpu, memory_mib

SHARD_PROXY_IMAGE = "docker.io/library/haproxy:3.2.6"
"""HAProxy 3.2 LTS from Docker Official Images, pinned to a patch tag (docker-library/official-images,
``library/haproxy``); :func:`ingress_config` is also valid for the Debian HAProxy 2.6 the tests run."""

SHARD_PROXY_PORT = 8888
"""The ingress container's port (Cloud Run sends requests there); the server listens on ``port``."""

PROXY_CPU, PROXY_MEMORY = "1", "512Mi"
"""The ingress container's limits, added to the server's in every shard (512 MiB: the second
generation execution environment's minimum, https://cloud.google.com/run/docs/configuring/services/memory-limits)."""

INSTANCE_CPU, INSTANCE_MEMORY_MIB = 8, 32768
"""The most an instance has across its containers (Cloud Run's CPU and memory maximums)."""

PROXY_CONFIG_DIR = "/usr/local/etc/haproxy"
PROXY_CONFIG_FILE = "haproxy.cfg"
"""Where the official image reads its configuration (its default command)."""

SHARD_KEY_ENV = "MCP_SHARD_KEY"
"""The ingress container's variable holding its shard key (HAProxy expands ``"${...}"``)."""

ID_PREFIX_ENV = "MCP_SESSION_ID_PREFIX"
"""The server's variable with ``shardPrefixBy: server``: the prefix every session id it mints starts with."""

SEPARATOR = "."
"""Between the shard key and the server's id; keys never contain it."""

SERVER_CONTAINER, PROXY_CONTAINER = "mcp", "session-shard"
MAX_SHARDS = 500
"""Shards per region a service may have: the URL map's match-predicate quota already stops one region
there (two predicates per shard rule); the stack check counts regions and method routes."""

PREDICATES_PER_SHARD_RULE = 2
"""Match predicates a shard's route rule counts: its path prefix ``/`` and its header match."""

URL_MAP_RULES_PER_MATCHER = 1000
URL_MAP_PREDICATES_PER_MATCHER = 1000
"""Quotas per path matcher (https://cloud.google.com/load-balancing/docs/quotas)."""

ShardPrefixBy = Literal["proxy", "server"]

NOT_FOUND = '{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"Session not found"}}'


LOG_FIELDS = ("mcp_method_name", "gen_ai_tool_name", "mcp_session_verdict", "http_status", "duration_ms", "shard")
"""The JSON fields of each request's log line (Cloud Run parses a JSON line into ``jsonPayload``:
https://cloud.google.com/run/docs/logging#writing_structured_logs); the first two are the
OpenTelemetry MCP attributes ``mcp.method.name`` and ``gen_ai.tool.name`` with ``_`` for ``.``."""

LOG_FORMAT = ('{"mcp_method_name":"%[var(txn.mcp_method),json(utf8s)]","gen_ai_tool_name":"%[var(txn.mcp_tool),json(utf8s)]",'
              '"mcp_session_verdict":"%[var(txn.verdict)]","http_status":%ST,"duration_ms":%Ta,"shard":"%[env(MCP_SHARD_KEY)]"}')
"""One JSON line per request; method and tool escaped (``json`` converter): they come from the caller."""

LOG_RULES = """  option http-buffer-request
  http-request set-var(txn.mcp_method) req.body,json_query('$.method') if { method POST }
  http-request set-var(txn.mcp_tool) req.body,json_query('$.params.name') if { var(txn.mcp_method) -m str tools/call }
  http-request set-var(txn.verdict) str(own) if has_session own_session
  http-request set-var(txn.verdict) str(foreign) if has_session !own_session
  http-request set-var(txn.verdict) str(none) if !has_session
"""
"""The ingress rules that read the JSON-RPC method and tool from the request body (buffered first,
``option http-buffer-request``; ``json_query``, HAProxy 2.5+) and the session verdict: the id is
this shard's (``own``), another shard's or none of ours (``foreign``), or absent (``none``)."""


DEFAULT_DRAIN_SECONDS = 1800
"""Default ``sessionDrainSeconds``: the idle-session timeout of FastMCP and the MCP SDKs."""

DRAIN_LABEL = "mcp-session-drain-seconds"
"""The service-level label (not ``template.labels``, which would make a new revision) carrying a
drained shard's ``sessionDrainSeconds``, so a review of the plan knows the window
(:mod:`mcp_affinity.impact`). Only changes under ``template`` make a revision ("Any update to
spec.template will create a new Revision. This is how Cloud Run works", Cloud Run's product manager in
https://github.com/hashicorp/terraform-provider-google/issues/13410)."""

MAX_DRAIN_SECONDS = 3600
"""The longest drain the package plans on Cloud Run: the longest a request or stream may live there
(``timeoutSeconds`` at most 3600 s, https://cloud.google.com/run/docs/configuring/request-timeout).
Cloud Run sets no limit on how long a tag-only revision may keep its instance; the bound keeps each
deploy's extra always-on instances to an hour of work the old version may still finish."""


def shard_key(region: str, index: int, generation: Optional[int] = None) -> str:
    """The key of shard ``index`` in ``region``: ``europe-west1-s0``; with a generation ``europe-west1-s0-g7``."""
    return generation_key(f"{region}-s{index}", generation)


def generation_key(base: str, generation: Optional[int]) -> str:
    """A shard's key (``europe-west1-s0``, :func:`shard_key` without a generation) in ``generation``:
    ``europe-west1-s0-g7``; the key itself for None. The component names each generation's NEG and
    backend service ``{service}-{this key}`` and the shard's Cloud Run service ``{service}-{base}``."""
    return base + ("" if generation is None else f"-g{generation}")


def shard_keys(regions: list[str], shards: int, generation: Optional[int] = None) -> dict[str, tuple[str, int]]:
    """Every shard's key -> (region, index), regions sorted, then indexes."""
    return {shard_key(region, index, generation): (region, index) for region in sorted(regions) for index in range(shards)}


def generation_tag(generation: int) -> str:
    """The traffic tag of a generation's revision: ``gen7``."""
    return f"gen{generation}"


def tag_generation(tag: object) -> Optional[int]:
    """The generation a traffic tag names (``gen7`` -> 7, :func:`generation_tag` read back), else None."""
    text = str(tag or "")
    return int(text[3:]) if text.startswith("gen") and text[3:].isdigit() else None


def revision_name(service: str, generation: int) -> str:
    """The named revision of a generation: ``{service}-gen7`` (Cloud Run requires the service name as prefix)."""
    return f"{service}-{generation_tag(generation)}"


@dataclass(frozen=True)
class Generations:
    """The generations a sharded service serves at one moment.

    - ``current``: the newest generation: its revision takes all traffic and every new session.
    - ``draining``: older generation -> when it may go (UTC), for each still inside its window.
    - ``retired``: older generations past their window (their route, NEG, backend service and tag go).
    - ``started``: when the current generation was deployed (None for an implicit generation 0).
    """

    current: int
    draining: dict[int, datetime]
    retired: tuple[int, ...]
    started: Optional[datetime]

    @property
    def serving(self) -> list[int]:
        """Every generation that keeps a route: the draining ones, oldest first, then the current one."""
        return [*sorted(self.draining), self.current]


def generation_numbers(generations) -> list[int]:
    """The generations a service has had, oldest first: its ``generations`` entries (number ->
    when), with generation 0 when there is none or the first is 1: a stack's first deploy is
    generation 0 without an entry, so adding ``"1"`` drains it like any other."""
    numbers = sorted(int(g) for g in generations)
    return numbers if numbers and numbers[0] != 1 else [0, *numbers]


def generations_of(args, now: datetime) -> Optional[Generations]:
    """The generations of a sharded service at ``now`` (timezone-aware), or None without a drain.

    ``args.generations`` maps a generation number to the moment it was deployed (the moment it
    started taking new sessions); generation 0 needs no entry (:func:`generation_numbers`).
    Generation ``g`` may go once ``generations[next after g] + session_drain`` has passed: the stack
    records when, and the first ``pulumi up`` after that moment (CI's scheduled run or the next
    deploy) removes it.
    """
    drain = args.session_drain
    if args.pinning != "shards" or not drain:
        return None
    numbers = generation_numbers(args.generations)
    started = {int(g): when for g, when in args.generations.items()}
    draining, retired = {}, []
    for older, newer in zip(numbers, numbers[1:]):
        ends = started[newer] + timedelta(seconds=drain)
        if ends > now:
            draining[older] = ends
        else:
            retired.append(older)
    return Generations(numbers[-1], draining, tuple(retired), started.get(numbers[-1]))


def serving_keys(args, regions: list[str], now: datetime) -> dict[str, tuple[str, int, Optional[int]]]:
    """Every routed shard key -> (region, index, generation or None): all draining generations and the current one."""
    generations = generations_of(args, now)
    numbers = generations.serving if generations else [None]
    return {key: (region, index, generation) for generation in numbers
            for key, (region, index) in shard_keys(regions, args.shards, generation).items()}


def route_shards(args, regions: list[str], now: datetime) -> dict:
    """The load-balancer route's ``session_shards`` for a service of ``args`` in ``regions`` at ``now``
    (``RouteArgs(session_shards=...)``; its backend is the service's ``shard_backend_service_ids``):
    every serving key gets a header route; ``current`` (the keys taking new sessions) the default."""
    generations = generations_of(args, now)
    route = {"header": args.session_header, "keys": list(serving_keys(args, regions, now))}
    if generations is not None:
        route["current"] = list(shard_keys(regions, args.shards, generations.current))
    return route


def ingress_config(*, header: str, listen_port: int, server_port: int, timeout_seconds: int,
                   max_connections: int, listen_address: str = "", server_address: str = "127.0.0.1") -> str:
    """The ingress container's ``haproxy.cfg`` (the single generator of it).

    - ``header``: the session header (``Mcp-Session-Id``).
    - ``listen_port``: where Cloud Run sends requests; ``server_port``: the server on localhost.
    - ``timeout_seconds``: the longest a request or stream lives (client, server and tunnel timeouts).
    - ``max_connections``: HAProxy's ``maxconn`` (about two file descriptors each).
    - ``listen_address`` / ``server_address``: all addresses / localhost (tests bind loopback).

    The shard key is read from ``MCP_SHARD_KEY`` when HAProxy starts. Responses that carry the
    header get ``{key}.`` before the id; requests with an id of this shard lose the prefix; any
    other id gets 404 with a JSON-RPC error (-32001, as the MCP SDKs answer an unknown session);
    a request carrying the header twice gets 400. HAProxy configuration manual, "http-request
    return", "replace-header", "set-header" and "Environment variables"
    (https://docs.haproxy.org/3.2/configuration.html).
    """
    return f"""global
  maxconn {max_connections}
  log stdout format raw local0 info

defaults
  mode http
  log global
  log-format '{LOG_FORMAT}'
  timeout connect 5s
  timeout client {timeout_seconds}s
  timeout server {timeout_seconds}s
  timeout tunnel {timeout_seconds}s

frontend shard
  bind {listen_address}:{listen_port}
  acl has_session req.hdr_cnt({header}) gt 0
  acl own_session req.hdr({header}) -m beg "${{{SHARD_KEY_ENV}}}{SEPARATOR}"
{LOG_RULES}  http-request deny deny_status 400 if {{ req.hdr_cnt({header}) gt 1 }}
  http-request return status 404 content-type application/json string '{NOT_FOUND}' if has_session !own_session
  http-request replace-header {header} ^[^.]+[.](.*)$ \\1
  http-response set-header {header} "${{{SHARD_KEY_ENV}}}{SEPARATOR}%[res.hdr({header})]" if {{ res.hdr_cnt({header}) gt 0 }}
  default_backend server

backend server
  server mcp {server_address}:{server_port}
"""


def check_settings(args) -> None:
    """Rules of ``pinning: shards`` on :class:`~mcp_affinity.CloudRunMcpServiceArgs`; raises ``ValueError``."""
    if args.pinning != "shards":
        if args.shards is not None or "shard_prefix_by" in args.model_fields_set:
            raise ValueError("shards and shardPrefixBy go with pinning: shards")
        return
    if args.session_mode is not SessionMode.IN_MEMORY_SESSIONS:
        raise ValueError("pinning: shards is for sessionMode in-memory-sessions; other modes scale with maxInstances")
    if args.shards is None:
        raise ValueError(f"pinning: shards needs shards: the number of one-instance services per region (1 to {MAX_SHARDS})")
    fixed = sorted({"min_instances", "max_instances"} & args.model_fields_set)
    if fixed:
        raise ValueError("pinning: shards holds every shard at exactly one instance; remove "
                         + " and ".join(type(args).model_fields[f].alias for f in fixed))
    if set(args.acknowledge) - {"unauthenticated", "access-widened"}:
        # unauthenticated and access-widened are about access, not pinning: they stay allowed.
        raise ValueError("pinning: shards pins every client by the session header: acknowledge has nothing to "
                         "accept but unauthenticated and access-widened")
    if args.shard_prefix_by == "proxy":
        if args.port == SHARD_PROXY_PORT:
            raise ValueError(f"port {SHARD_PROXY_PORT} is the shard proxy's: the server must listen on another port")
        if cloud_run_cpu(args.cpu) + int(PROXY_CPU) > INSTANCE_CPU or \
                memory_mib(args.memory) + memory_mib(PROXY_MEMORY) > INSTANCE_MEMORY_MIB:
            raise ValueError(f"cpu / memory: the ingress container adds {PROXY_CPU} vCPU and {PROXY_MEMORY}; an "
                             f"instance has at most {INSTANCE_CPU} vCPU and 32Gi ({sources.CLOUD_RUN_CPU}, "
                             f"{sources.CLOUD_RUN_MEMORY}): lower the server's, or use shardPrefixBy: server")


def shard_template(args, key: str, server: dict, config_secret=None, config_version=None) -> dict:
    """Cloud Run ``template`` entries of shard ``key``: one instance, the server container (named,
    with ``MCP_SESSION_ID_PREFIX`` or behind the ingress container) and the config volume."""
    # Cloud Run's session affinity stays on (as for every in-memory service): when Cloud Run
    # briefly runs a second instance, the cookie keeps cookie clients on the one holding their session.
    template = {"scaling": {"min_instance_count": 1, "max_instance_count": 1}}
    server = {**server, "name": SERVER_CONTAINER}
    if args.shard_prefix_by == "server":
        server["envs"] = [*server["envs"], {"name": ID_PREFIX_ENV, "value": f"{key}{SEPARATOR}"}]
        return {**template, "containers": [server]}
    server.pop("ports")
    proxy = {
        "name": PROXY_CONTAINER,
        "image": SHARD_PROXY_IMAGE,
        "ports": {"container_port": SHARD_PROXY_PORT},
        "resources": {"limits": {"cpu": PROXY_CPU, "memory": PROXY_MEMORY}},
        "envs": [{"name": SHARD_KEY_ENV, "value": key}],
        "volume_mounts": [{"name": "shard-proxy", "mount_path": PROXY_CONFIG_DIR}],
        # The proxy starts once the server passed its startup probe.
        "depends_ons": [SERVER_CONTAINER],
        "startup_probe": {"tcp_socket": {"port": SHARD_PROXY_PORT}, "period_seconds": 2, "timeout_seconds": 1,
                          "failure_threshold": 30},
    }
    volume = {"name": "shard-proxy", "secret": {"secret": config_secret, "items": [
        {"version": config_version, "path": PROXY_CONFIG_FILE}]}}
    # The server stays the first container: CI's image path (containers[0].image) still names it.
    return {**template, "containers": [server, proxy], "volumes": [volume]}


def proxy_config_for(args) -> str:
    """The ingress configuration of ``args``' shards, as deployed."""
    return ingress_config(header=args.session_header, listen_port=SHARD_PROXY_PORT, server_port=args.port,
                          timeout_seconds=args.timeout_seconds, max_connections=max(256, 2 * args.concurrency))


def capacity(args, regions: int, generations: int = 1) -> str:
    """What the shards of ``args`` hold, for the plan and the docs; ``generations`` serving at once
    (the current one and those still draining) each run their own instances."""
    count = regions * args.shards
    text = (f"{count} always-on Cloud Run instance(s) ({regions} region(s) x {args.shards} shard(s)), "
            f"at most {count * args.concurrency} concurrent requests ({count} x concurrency {args.concurrency}), "
            "no autoscaling beyond them")
    if generations > 1:
        text += (f"; while {generations - 1} older generation(s) drain, {count * (generations - 1)} more always-on "
                 f"instance(s) serve their sessions ({count * generations} in all)")
    elif args.session_drain:
        text += (f"; each deploy keeps the previous generation's {count} instance(s) running "
                 f"{minutes(args.session_drain)} more (sessionDrainSeconds)")
    return text


def check_drain(args) -> list[tuple[str, str]]:
    """Faults of ``sessionDrainSeconds`` and ``generations`` on a Cloud Run service: ``(key, message)``."""
    explicit, drain = "session_drain_seconds" in args.model_fields_set, args.session_drain
    faults = []
    if explicit and args.session_mode.value != "in-memory-sessions":
        faults.append(("sessionDrainSeconds", f"a {args.session_mode.value} server keeps no session in one instance's "
                       "memory, so a deploy ends none (stateless: no session; shared-sessions: they live in the "
                       "store): remove sessionDrainSeconds"))
    elif explicit and args.pinning != "shards":
        faults.append(("sessionDrainSeconds", "sessionDrainSeconds goes with pinning: shards: only session shards "
                       "keep the previous revision serving the sessions it holds (a tagged revision behind its own "
                       "NEG); without shards a deploy replaces the instance and its sessions end"))
    elif drain > MAX_DRAIN_SECONDS:
        faults.append(("sessionDrainSeconds", f"{drain} s is longer than Cloud Run lets a request or stream live "
                       f"(timeoutSeconds, at most {MAX_DRAIN_SECONDS} s, {sources.CLOUD_RUN_REQUEST_TIMEOUT}); every "
                       f"draining generation runs regions x shards more instances: at most {MAX_DRAIN_SECONDS}"))
    elif drain and args.image_managed_by_ci:
        faults.append(("sessionDrainSeconds", "imageManagedByCi lets CI make revisions itself, so the package cannot "
                       "name and tag each generation's revision: set sessionDrainSeconds: 0, or let the stack deploy "
                       "images (a new image with a new entry in generations)"))
    if args.generations and not drain:
        faults.append(("generations", "generations go with sessionDrainSeconds > 0 and pinning: shards (each keeps "
                       "its revision serving its sessions); remove them"))
    return faults


def shard_traffic(service: str, generations: Generations) -> list[dict]:
    """Cloud Run ``traffics``: the current generation's named revision takes 100 %, each draining
    generation's revision stays reachable through its tag only (0 %;
    https://cloud.google.com/run/docs/rollouts-rollbacks-traffic-migration)."""
    return [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": revision_name(service, generation),
             "tag": generation_tag(generation), "percent": 100 if generation == generations.current else 0}
            for generation in generations.serving]


def build(component, name: str, regions: list[str], network, account, grants: list,
          now: datetime) -> tuple[dict, dict, dict]:
    """Create the shards of a :class:`~mcp_affinity.CloudRunMcpService` (its ``pinning: shards``
    branch): the ingress configuration secret (``shardPrefixBy: proxy``), then per region and index
    a one-instance Cloud Run service, and per serving shard key (every draining generation's and the
    current one's, :func:`generations_of` at ``now``) a serverless NEG and its own backend service.
    With a drain, a :class:`~mcp_affinity.generation_guard.GenerationGuard` over every shard's
    template comes before the services, each of which depends on it. Returns (services keyed by
    ``{region}-s{index}``, NEGs, backend services keyed by shard key)."""
    args, names = component._args, component._names
    child = pulumi.ResourceOptions(parent=component)
    secret = version = None
    if args.shard_prefix_by == "proxy":
        secret = gcp.secretmanager.Secret(f"{name}-shard-proxy", secret_id=names["proxy-config"].value,
                                          project=args.project, labels=args.labels,
                                          replication={"auto": {}}, opts=child)
        version = gcp.secretmanager.SecretVersion(f"{name}-shard-proxy", secret=secret.id,
                                                  secret_data=proxy_config_for(args), opts=child)
        grants = [*grants, gcp.secretmanager.SecretIamMember(
            f"{name}-shard-proxy", secret_id=secret.id, role="roles/secretmanager.secretAccessor",
            member=account.member, opts=child)]
    generations = generations_of(args, now)
    current = generations.current if generations else None
    services, negs, backends, planned = {}, {}, {}, {}
    for base, (region, index) in shard_keys(regions, args.shards).items():
        physical = names[f"service-s{index}"].value
        template = shard_template(args, shard_key(region, index, current), component._container(),
                                  secret.id if secret else None, version.version if version else None)
        service_args = {}
        if generations is not None:
            template["revision"] = revision_name(physical, current)
            service_args["traffics"] = shard_traffic(physical, generations)
            service_args["labels"] = {DRAIN_LABEL: str(args.session_drain)}
        planned[base] = (region, (base, physical, component._template(region, network, account.email, template),
                                  service_args))
    # Named revisions: the guard refuses, in preview, a template change that keeps one (generation_guard).
    guard = None if generations is None else GenerationGuard(
        f"{name}-generation-guard", name, current, args.project,
        {revision_key(region, shard[2]["revision"]): shard[2] for region, shard in planned.values()}, opts=child)
    for base, (region, shard) in planned.items():
        services[base] = component._service(name, region, network, account.email, grants, shard=shard, guard=guard)
    for key, (region, index, generation) in serving_keys(args, regions, now).items():
        tag = None if generation is None else generation_tag(generation)
        negs[key] = component._neg(name, region, services[shard_key(region, index)], key=key, tag=tag)
        backends[key] = component._backend(name, {region: negs[key]}, key=key)
    return services, negs, backends


MAX_REVISION_TAGS = 2000
"""Revision tags Cloud Run keeps per project and region; beyond it, it deletes the oldest tags that
carry no traffic percentage (:data:`~mcp_affinity.sources.CLOUD_RUN_QUOTAS`): a draining generation's
tag, whose NEG would then address nothing."""


def revision_tags(args, now: datetime) -> int:
    """Revision tags one region of a sharded service of ``args`` needs at ``now`` and through its
    next deploy: a tag per shard for each serving generation, plus the next one's."""
    generations = generations_of(args, now)
    return 0 if generations is None else args.shards * (len(generations.serving) + 1)


def check_revision_tags(services: dict[str, tuple], now: datetime) -> dict[str, str]:
    """``services``: name -> (args, regions). The services whose tags, with the other sharded services'
    in the same project and region, exceed :data:`MAX_REVISION_TAGS`: name -> why."""
    used: dict[tuple, dict[str, int]] = {}
    for name, (args, regions) in services.items():
        for region in regions:
            if (tags := revision_tags(args, now)):
                used.setdefault((args.project, region), {})[name] = tags
    faults = {}
    for (project, region), by_service in sorted(used.items(), key=lambda kv: (kv[0][0] or "", kv[0][1])):
        total = sum(by_service.values())
        if total > MAX_REVISION_TAGS:
            for name in by_service:
                faults.setdefault(name, f"the sharded services {', '.join(sorted(by_service))} need {total} revision "
                                  f"tags in {region} (shards x the generations serving, plus the next deploy's); "
                                  f"Cloud Run keeps {MAX_REVISION_TAGS} per project and region and deletes the "
                                  f"oldest tag-only ones beyond it ({sources.CLOUD_RUN_QUOTAS}), leaving a draining "
                                  "generation's NEG with nothing to address: fewer shards, or a shorter "
                                  "sessionDrainSeconds")
    return faults


def check_url_map_quota(shard_keys_: list[str], method_rules: int, method_predicates: int) -> None:
    """Raise ``ValueError`` when one host's path matcher would exceed the URL map's quotas
    (:data:`URL_MAP_RULES_PER_MATCHER` route rules, :data:`URL_MAP_PREDICATES_PER_MATCHER` match
    predicates; https://cloud.google.com/load-balancing/docs/quotas): a route rule per shard key
    (:data:`PREDICATES_PER_SHARD_RULE` predicates each) beside ``method_rules`` method routes."""
    regions = len({key.rsplit("-s", 1)[0] for key in shard_keys_})  # keys are {region}-s{index}[-g{generation}]
    rules = len(shard_keys_) + method_rules
    predicates = PREDICATES_PER_SHARD_RULE * len(shard_keys_) + method_predicates
    fit = min((URL_MAP_RULES_PER_MATCHER - method_rules) // regions,
              (URL_MAP_PREDICATES_PER_MATCHER - method_predicates) // (PREDICATES_PER_SHARD_RULE * regions))
    if rules > URL_MAP_RULES_PER_MATCHER or predicates > URL_MAP_PREDICATES_PER_MATCHER:
        raise ValueError(
            f"shards: {len(shard_keys_)} shard routes ({regions} region(s) x shards) and {method_rules} method "
            f"route(s) need {rules} route rules and {predicates} match predicates in this service's path matcher; "
            f"the URL map takes {URL_MAP_RULES_PER_MATCHER} and {URL_MAP_PREDICATES_PER_MATCHER} per path matcher "
            f"({sources.URL_MAP_QUOTAS}): at most {max(fit, 0)} shards per region here")


def plan_summary(args, regions: int, now: datetime) -> dict[str, str]:
    """A sharded service in a plan's outputs: ``capacity`` (:func:`capacity`, counting draining
    generations), ``deploy`` (what a deploy does to live sessions, :func:`deploy_impact`) and, with
    ``shardPrefixBy: proxy``, ``proxyConfig`` (the mounted configuration, shown in plain text)."""
    generations = generations_of(args, now)
    summary = {"capacity": capacity(args, regions, len(generations.serving) if generations else 1),
               "deploy": deploy_impact(args, now)}
    if args.shard_prefix_by == "proxy":
        summary["proxyConfig"] = proxy_config_for(args)
    return summary


def minutes(seconds: float) -> str:
    """A window for people: ``30 min`` (rounded), ``45 s`` under a minute."""
    return f"{round(seconds / 60)} min" if seconds >= 60 else f"{round(seconds)} s"


def deploy_impact(args, now: datetime) -> str:
    """One line: what deploys do to the live sessions of a Cloud Run service of ``args`` at ``now``
    (the plan's ``serviceDeploys`` and ``sessionShards.deploy``)."""
    if args.session_mode.value != "in-memory-sessions":
        return f"a deploy ends no session ({args.session_mode.value}: none lives in one instance's memory)"
    generations = generations_of(args, now)
    if generations is None:
        return "a deploy ends every live session: clients re-initialize on the new revision"
    window = minutes(args.session_drain)
    parts = [f"new sessions start on generation {generations.current}"]
    for generation, ends in sorted(generations.draining.items()):
        parts.append(f"generation {generation} drains for {minutes((ends - now).total_seconds())} more "
                     f"(until {ends:%Y-%m-%dT%H:%MZ}), then its sessions re-initialize")
    if generations.retired:
        parts.append("generation(s) " + ", ".join(map(str, generations.retired)) + " retired: their routes, NEGs, "
                     "backend services and tags go")
    parts.append(f"the next deploy (a new entry in generations) drains generation {generations.current} for {window}")
    return "; ".join(parts)
