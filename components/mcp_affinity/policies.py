"""Design-guarding rules over a stack's resources, written once for tests, the plan and CrossGuard.

A resource is a dict in the plan shape of :mod:`.plan_file`: ``{"urn", "type", "name", "parent",
"custom", "inputs"}``, ``inputs`` being the engine's camelCase property bag. Rules read what each
service declares from the plan itself: its session header is the ``MCP_SESSION_HEADER`` env var
of its Cloud Run service or Kubernetes Deployment, its timeout is its own ``template.timeout``.
A value unknown until apply means "cannot judge", except where the rule guards security (AUTH,
TLS, deletion protection): there an unknown value cannot be shown safe and is refused.

Each rule is a function over all resources (rules relate resources: a NEG names its Cloud Run
service) whose docstring cites the page stating the platform fact; every rule runs in time linear
in the number of resources. ``policy/__main__.py`` runs the same rules as a policy pack.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional

from . import access_map, armor_limits, impact, sources
from .affinity import DEFAULT_SESSION_HEADER
from .cloud_run_service import DEFAULT_URI_REASON
from .cloud_run_shards import ID_PREFIX_ENV, SHARD_KEY_ENV
from .generation_guard import reused_revision
from .wire import (BACKEND, CLOUD_RUN, DEPLOYMENT, K8S_SERVICE, NAMESPACE, NEG, REDIS, SECURITY_POLICY,
                   SECURITY_POLICY_RULE)
from .wire import SECRET_SIG as _SIG, SECRET_VALUE_SIG as _SECRET, UNKNOWN, UNKNOWNS as _UNKNOWNS

HEADER_ENV = "MCP_SESSION_HEADER"
MODE_ENV = "MCP_SESSION_MODE"
_DESTINATION_RULE = re.compile(r"^kubernetes:networking\.istio\.io/[^:]+:DestinationRule$")
_NEG_PATH = re.compile(r"regions/([^/]+)/networkEndpointGroups/([^/?]+)")
_GROUP_PATH = re.compile(r"/(networkEndpointGroups|instanceGroups)/")
_PROD_STACK = re.compile(r"(^|[-_.])prod(uction)?($|[-_.])", re.IGNORECASE)
_STAGING_STACK = re.compile(r"(^|[-_.])(staging|stage|stg)($|[-_.])", re.IGNORECASE)
CLUSTER_DOMAIN = "cluster.local"
MAX_TIMEOUT_SECONDS = 3600
API_DEFAULT_TIMEOUT_SEC = 30  # what the API reports for a backend service left at its default
LB_ONLY_INGRESS = ("INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER", "INGRESS_TRAFFIC_INTERNAL_ONLY")
PUBLIC_MEMBERS = ("allUsers", "allAuthenticatedUsers")
INVOKER_ROLES = ("roles/run.invoker", "roles/run.servicesInvoker")

ISTIO_DESTINATION_RULE = "https://istio.io/latest/docs/reference/config/networking/destination-rule/"
ISTIO_PERSISTENT_SESSION = "https://github.com/istio/istio/blob/master/pilot/pkg/features/experimental.go"
REDIS_DELETION_PROTECTION = "https://www.pulumi.com/registry/packages/gcp/api-docs/redis/instance/"
CLOUD_RUN_INVOKER = "https://cloud.google.com/run/docs/securing/managing-access#invoker_check"
MCP_AUTHORIZATION = "https://modelcontextprotocol.io/specification/2025-11-25/basic/authorization"


@dataclass(frozen=True, order=True)
class Violation:
    """One broken rule: ``rule`` name, resource ``urn``, ``message``, ``enforcement`` level."""

    rule: str
    urn: str
    message: str
    enforcement: str = "mandatory"


@dataclass(frozen=True)
class Settings:
    """Rule parameters.

    ``header``: the session header of a workload that declares none (no ``MCP_SESSION_HEADER``).
    ``production``: None infers it (:func:`is_production`: the stack's name, else a label).
    ``min_timeout_seconds``: the shortest Cloud Run request timeout allowed; 1 by default, as the
    config schema allows (``timeoutSeconds`` 1 to 3600).
    ``outputs``: the bags are provider outputs (a CrossGuard stack policy), not inputs.
    ``stack``: the stack name, when known (a plan's ``stack``); else read from the URNs.
    """

    header: str = DEFAULT_SESSION_HEADER
    production: Optional[bool] = None
    min_timeout_seconds: float = 1
    outputs: bool = False
    stack: Optional[str] = None

    def __post_init__(self) -> None:
        if not 1 <= self.min_timeout_seconds <= MAX_TIMEOUT_SECONDS:
            raise ValueError(f"min_timeout_seconds must be 1 to {MAX_TIMEOUT_SECONDS}")


@dataclass(frozen=True)
class Rule:
    name: str
    url: str
    check: Callable[[list[dict], Settings], Iterable[tuple[str, str]]]
    enforcement: str = "mandatory"

    @property
    def description(self) -> str:
        return (self.check.__doc__ or self.name).strip().splitlines()[0].replace("``", "")

    def run(self, resources: list[dict], settings: Settings) -> list[Violation]:
        return sorted(Violation(self.name, urn, message, self.enforcement)
                      for urn, message in self.check(resources, settings))


RULES: list[Rule] = []


def _rule(name: str, url: str):
    def register(check):
        RULES.append(Rule(name, url, check))
        return check
    return register


def is_unknown(value: Any) -> bool:
    return isinstance(value, str) and value in _UNKNOWNS


def _show(value: Any) -> str:
    return "unset" if value is None else "unknown until apply" if is_unknown(value) else repr(value)


def get(bag: Any, *path: Any) -> Any:
    """The value at ``path`` (keys or list indexes), secrets revealed; None if absent, UNKNOWN if unknown."""
    value = bag  # plain dicts and lists (the plan; CrossGuard's proxies are unwrapped first): fast checks
    for key in (*path, None):
        if type(value) is dict and value.get(_SIG) == _SECRET:
            value = value.get("value")
        if type(value) is str and value in _UNKNOWNS:
            return UNKNOWN
        if key is None:
            return value
        if type(key) is int:
            value = value[key] if type(value) is list and -len(value) <= key < len(value) else None
        else:
            value = value.get(key) if type(value) is dict else None
    return value


def _of(resources: list[dict], type_: str) -> Iterator[dict]:
    return (r for r in resources if r.get("type") == type_)


def _inputs(resource: dict, *path: Any) -> Any:
    return get(resource.get("inputs") or {}, *path)


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _env(items: Any, name: str) -> Any:
    """The ``value`` of env var ``name`` in a Cloud Run ``envs`` or Kubernetes ``env`` list, else None."""
    for item in _list(items):
        if get(item, "name") == name:
            return get(item, "value")
    return None


def run_header(service: dict) -> Any:
    """The session header a Cloud Run service declares (``MCP_SESSION_HEADER`` of a container)."""
    for container in _list(_inputs(service, "template", "containers")):
        value = _env(get(container, "envs"), HEADER_ENV)
        if value is not None:
            return value
    return None


def _pod_containers(deployment: dict) -> list:
    return _list(_inputs(deployment, "spec", "template", "spec", "containers"))


def pod_env(deployment: dict, name: str) -> Any:
    """Env var ``name`` of the Deployment's first container that sets it, else None."""
    for container in _pod_containers(deployment):
        value = _env(get(container, "env"), name)
        if value is not None:
            return value
    return None


def _serverless_negs(resources: list[dict]) -> list[dict]:
    return [n for n in _of(resources, NEG) if _inputs(n, "networkEndpointType") == "SERVERLESS"]


def _stores(resources: list[dict]) -> Iterator[dict]:
    return (r for r in resources if r.get("type") == REDIS)


# (field, required value) for AUTH and for TLS.
_STORE_SECURITY = (("authEnabled", True), ("transitEncryptionMode", "SERVER_AUTHENTICATION"))


@_rule("redis-auth-tls-private", sources.MEMORYSTORE_AUTH)
def redis_auth_tls_private(resources: list[dict], settings: Settings) -> Iterator[tuple[str, str]]:
    """The session store (Memorystore for Redis) has AUTH and TLS on, known at plan time.

    Sources: https://cloud.google.com/memorystore/docs/redis/about-redis-auth (AUTH is off unless
    enabled), https://cloud.google.com/memorystore/docs/redis/about-in-transit-encryption (TLS is
    chosen at creation only), https://cloud.google.com/memorystore/docs/redis/networking (Redis
    connect modes: PRIVATE_SERVICE_ACCESS). AUTH and TLS unknown until apply cannot be shown on and are refused; TLS cannot be added later.
    """
    for store in _stores(resources):
        wanted = dict(_STORE_SECURITY)
        bad = [f"{key} is {_show(_inputs(store, key))}, must be {value!r}" for key, value in wanted.items()
               if _inputs(store, key) != value]
        mode = _inputs(store, "connectMode")
        if mode is not None and not is_unknown(mode) and mode != "PRIVATE_SERVICE_ACCESS":
            bad.append(f"connectMode is {_show(mode)}, must be 'PRIVATE_SERVICE_ACCESS'")
        if mode is None:
            bad.append("connectMode is unset (DIRECT_PEERING), must be 'PRIVATE_SERVICE_ACCESS'")
        if bad:
            yield store["urn"], "; ".join(bad)


def _parse_duration(value: Any) -> Optional[float]:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)s", value) if isinstance(value, str) else None
    return float(match.group(1)) if match else None


def _fronted_services(resources: list[dict]) -> dict[str, dict]:
    """URN -> Cloud Run service named by a serverless NEG (``cloudRun.service``), or, when that
    name is unknown, sharing the NEG's parent component. Linear: services indexed once."""
    by_name: dict[Any, list[dict]] = defaultdict(list)
    by_parent: dict[Any, list[dict]] = defaultdict(list)
    for service in _of(resources, CLOUD_RUN):
        by_name[_inputs(service, "name")].append(service)
        by_parent[service.get("parent")].append(service)
    targets: dict[str, dict] = {}
    done: set[tuple] = set()  # each name or parent once, however many NEGs share it
    for neg in _serverless_negs(resources):
        name = _inputs(neg, "cloudRun", "service")
        key = ("parent", neg.get("parent")) if name == UNKNOWN else ("name", name) if isinstance(name, str) else None
        if key is None or key in done:
            continue
        done.add(key)
        targets.update((s["urn"], s) for s in (by_parent if key[0] == "parent" else by_name).get(key[1], []))
    return targets


@_rule("cloud-run-ingress-and-timeout", sources.CLOUD_RUN_INGRESS)
def cloud_run_ingress_and_timeout(resources: list[dict], settings: Settings) -> Iterator[tuple[str, str]]:
    """Cloud Run behind a serverless NEG admits only the load balancer and has a valid request timeout.

    Sources: https://cloud.google.com/run/docs/securing/ingress (default ingress is ``all``; the
    ``run.app`` URL still admits the VPC unless ``defaultUriDisabled``, or the service records why in
    the annotation ``mcp-affinity/default-uri-reason``),
    https://cloud.google.com/run/docs/configuring/request-timeout (default 300 s, at most 3600 s).
    Each service's own ``template.timeout`` is judged against what the config schema allows
    (``timeoutSeconds`` 1 to 3600; ``Settings.min_timeout_seconds`` may raise the floor).
    """
    low, high = settings.min_timeout_seconds, MAX_TIMEOUT_SECONDS
    for urn, service in sorted(_fronted_services(resources).items()):
        bad = []
        ingress = _inputs(service, "ingress")
        if not is_unknown(ingress) and ingress != "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER":
            bad.append(f"ingress is {ingress or 'unset (INGRESS_TRAFFIC_ALL)'}, "
                       "must be INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER")
        disabled = _inputs(service, "defaultUriDisabled")
        if not is_unknown(disabled) and disabled is not True and not _mapping(_inputs(service, "annotations")).get(
                DEFAULT_URI_REASON):
            bad.append("the run.app URL is on (defaultUriDisabled unset): the VPC reaches it past IAP and Cloud Armor; "
                       f"disable it, or record why in the annotation {DEFAULT_URI_REASON}")
        timeout = _inputs(service, "template", "timeout")
        seconds = 300.0 if timeout is None else _parse_duration(timeout)
        if not is_unknown(timeout) and (seconds is None or not low <= seconds <= high):
            bad.append(f"template.timeout is {timeout or 'unset (300s)'}, must be a duration of {low:g}s to {high}s")
        if bad:
            yield urn, "; ".join(bad)


def _iam_public_invoker(resource: dict) -> bool:
    """An IAM member, binding or policy granting a Cloud Run invoker role to everyone."""
    type_ = resource.get("type", "")
    if not re.search(r"(?i)iam(member|binding|policy)", type_):
        return False
    members = [_inputs(resource, "member")] + _list(_inputs(resource, "members"))
    role = _inputs(resource, "role")
    if role in INVOKER_ROLES and any(m in PUBLIC_MEMBERS for m in members):
        return True
    policy = _inputs(resource, "policyData")
    try:
        bindings = json.loads(policy).get("bindings", []) if isinstance(policy, str) and not is_unknown(policy) else []
    except (ValueError, AttributeError):
        return False
    return any(isinstance(b, dict) and b.get("role") in INVOKER_ROLES and
               any(m in PUBLIC_MEMBERS for m in _list(b.get("members"))) for b in _list(bindings))


@_rule("cloud-run-not-public", CLOUD_RUN_INVOKER)
def cloud_run_not_public(resources: list[dict], settings: Settings) -> Iterator[tuple[str, str]]:
    """A Cloud Run service anyone may invoke admits only the load balancer; no invoker role goes to allUsers.

    Sources: https://cloud.google.com/run/docs/securing/managing-access#invoker_check
    (``invokerIamDisabled`` lets every caller in), https://cloud.google.com/run/docs/securing/ingress
    (ingress ``all``, the default, admits the internet). The design opens the invoker check only on
    services whose ingress is internal and load balancer (``access`` oauth or public); an ``allUsers`` or
    ``allAuthenticatedUsers`` invoker binding is refused outright: it may name any service of the
    project (a project-level grant names all), including ones this stack does not show.
    """
    for service in _of(resources, CLOUD_RUN):
        ingress = _inputs(service, "ingress")
        if _inputs(service, "invokerIamDisabled") is True and not is_unknown(ingress) and ingress not in LB_ONLY_INGRESS:
            yield service["urn"], (f"invokerIamDisabled is true and ingress is {ingress or 'unset (INGRESS_TRAFFIC_ALL)'}: "
                                   "anyone on the internet can call it; set ingress INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER")
    for binding in resources:
        if _iam_public_invoker(binding):
            yield binding["urn"], ("grants a Cloud Run invoker role to allUsers or allAuthenticatedUsers; use "
                                   "invokerIamDisabled on a service with ingress INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER")


def _environment_at_least_staging(resources: list[dict], settings: Settings) -> bool:
    """Production (:func:`is_production`), a stack named for staging, or a resource labelled
    ``environment: staging`` / ``prod``."""
    name = stack_name(resources, settings) or ""
    if settings.production or _STAGING_STACK.search(name):
        return True
    return any(_labels(r).get("environment") in ("staging", "prod") for r in resources)


def _labels(resource: dict) -> dict:
    """A Google resource's ``labels``, or a Kubernetes object's ``metadata.labels``."""
    return _mapping(_inputs(resource, "labels")) or _mapping(_inputs(resource, "metadata", "labels"))


@_rule("public-service-acknowledged", MCP_AUTHORIZATION)
def public_service_acknowledged(resources: list[dict], settings: Settings) -> Iterator[tuple[str, str]]:
    """In staging and production, a service anyone may call (``access: public``) carries the acknowledgement.

    Source: https://modelcontextprotocol.io/specification/2025-11-25/basic/authorization (an MCP
    server reachable over HTTP should authorize its callers). A service's access is the label
    ``mcp-access`` of its Cloud Run service or Deployment; ``mcp-ack: unauthenticated`` records
    ``acknowledge: [unauthenticated]``.
    """
    if not _environment_at_least_staging(resources, settings):
        return
    for workload in [*_of(resources, CLOUD_RUN), *_of(resources, DEPLOYMENT)]:
        labels = _labels(workload)
        if labels.get("mcp-access") == "public" and labels.get("mcp-ack") != "unauthenticated":
            yield workload["urn"], ("access public lets anyone on the internet call this service in staging or "
                                    "production: add acknowledge: [unauthenticated], or pick iap, iam or oauth")


@_rule("serverless-neg-names-service", sources.SERVERLESS_NEG)
def serverless_neg_names_service(resources: list[dict], settings: Settings) -> Iterator[tuple[str, str]]:
    """A serverless NEG names its one service and uses no URL mask.

    Source: https://cloud.google.com/load-balancing/docs/negs/serverless-neg-concepts (URL masks:
    one NEG routes to every service whose name a request's URL fills into the mask, so the load
    balancer reaches services, and ingress settings, that this stack does not define).
    """
    for neg in _serverless_negs(resources):
        masks = [f"{kind}.urlMask" for kind in ("cloudRun", "cloudFunction", "appEngine")
                 if _inputs(neg, kind, "urlMask") is not None]
        if masks:
            yield neg["urn"], f"{', '.join(masks)} is set: name the service (cloudRun.service) instead"
        elif _inputs(neg, "cloudRun") is not None and _inputs(neg, "cloudRun", "service") is None:
            yield neg["urn"], "cloudRun.service is unset: the NEG must name its Cloud Run service"


def _neg_key(value: Any) -> Optional[tuple[str, str]]:
    match = _NEG_PATH.search(value) if isinstance(value, str) else None
    return (match.group(1), match.group(2)) if match else None


def serverless_backends(resources: list[dict]) -> list[dict]:
    """Backend services with a serverless NEG backend: by group id, else (id unknown or not a
    Compute path) by sharing the parent component of a serverless NEG."""
    negs = _serverless_negs(resources)
    ids = {v for n in negs for v in (_inputs(n, "id"), _inputs(n, "selfLink")) if isinstance(v, str) and not is_unknown(v)}
    keys = {(_inputs(n, "region"), _inputs(n, "name")) for n in negs}  # region None: the provider's default
    keys = {k for k in keys if all(isinstance(x, (str, type(None))) for x in k)}
    parents = {n.get("parent") for n in negs if n.get("parent")}

    def is_neg(group: Any) -> bool:
        key = _neg_key(group)
        return (isinstance(group, str) and group in ids) or key is not None and (key in keys or (None, key[1]) in keys)

    found = []
    for backend in _of(resources, BACKEND):
        backends = _inputs(backend, "backends")
        groups = [get(b, "group") for b in backends] if isinstance(backends, list) else [backends]
        undecided = any(is_unknown(g) or not _GROUP_PATH.search(str(g)) for g in groups)  # e.g. a mock's id
        if any(is_neg(g) for g in groups) or undecided and backend.get("parent") in parents:
            found.append(backend)
    return found


@_rule("serverless-backend-no-healthcheck-timeout", sources.SERVERLESS_NEG)
def serverless_backend_no_healthcheck_timeout(resources: list[dict], settings: Settings) -> Iterator[tuple[str, str]]:
    """A backend service of serverless NEGs sets neither health checks nor ``timeoutSec``.

    Source: https://cloud.google.com/load-balancing/docs/negs/serverless-neg-concepts (backend
    service limitations; the Cloud Run request timeout applies instead). Any value is refused, so
    an input that is set but unknown (a HealthCheck's id in preview) counts as set. Provider
    outputs (``Settings.outputs``) hold computed unknowns and may report the API's 30 s default:
    neither counts there.
    """
    def is_set(value: Any) -> bool:
        if is_unknown(value):
            return not settings.outputs
        return value not in (None, [], "") and not (settings.outputs and value == API_DEFAULT_TIMEOUT_SEC)

    for backend in serverless_backends(resources):
        checks, timeout = _inputs(backend, "healthChecks"), _inputs(backend, "timeoutSec")
        bad = [f"{key} is {_show(value)}"
               for key, value in (("healthChecks", checks), ("timeoutSec", timeout)) if is_set(value)]
        if bad:
            yield backend["urn"], " and ".join(bad) + ": Google rejects both for serverless NEG backends"


@_rule("serverless-backend-no-lb-affinity", sources.CLOUD_RUN_SESSION_AFFINITY)
def serverless_backend_no_lb_affinity(resources: list[dict], settings: Settings) -> Iterator[tuple[str, str]]:
    """A backend service of serverless NEGs sets no cookie or client-IP session affinity.

    Source: https://cloud.google.com/run/docs/configuring/session-affinity ("you shouldn't enable
    Cloud Load Balancing session affinity on a serverless network endpoint group, since it's not
    supported"); a serverless NEG addresses a service, not an instance. Cloud Run's own affinity
    (``template.sessionAffinity``) is the cookie that works there. ``HEADER_FIELD`` is the
    documented ``lb-header-hash`` mode, which the program warns about at every preview instead.
    """
    for backend in serverless_backends(resources):
        affinity = _inputs(backend, "sessionAffinity")
        if affinity not in (None, "NONE", "HEADER_FIELD") and not is_unknown(affinity):
            yield backend["urn"], (f"sessionAffinity is {affinity!r} on a serverless NEG backend: not supported; "
                                   "use Cloud Run's template.sessionAffinity")


@_rule("session-shard-one-instance", sources.CLOUD_RUN_AUTOSCALING)
def session_shard_one_instance(resources: list[dict], settings: Settings) -> Iterator[tuple[str, str]]:
    """A session shard (a Cloud Run service whose container sets ``MCP_SHARD_KEY`` or
    ``MCP_SESSION_ID_PREFIX``) runs exactly one instance: min and max instance count 1.

    Source: https://cloud.google.com/run/docs/about-instance-autoscaling (min instances stay up, max
    caps the count). The load balancer pins a session to a shard, not to an instance: a second
    instance would get some of the shard's sessions' requests, and scaling to zero ends them.
    """
    for service in _of(resources, CLOUD_RUN):
        containers = _list(_inputs(service, "template", "containers"))
        if all(_env(get(c, "envs"), n) is None for c in containers for n in (SHARD_KEY_ENV, ID_PREFIX_ENV)):
            continue
        bad = [f"{field} is {_show(value)}" for field in ("minInstanceCount", "maxInstanceCount")
               if not is_unknown(value := _inputs(service, "template", "scaling", field)) and value != 1]
        if bad:
            yield service["urn"], "a session shard must run exactly one instance: " + ", ".join(bad)


def _same_header(value: Any, header: str) -> bool:
    """HTTP field names are case-insensitive (https://www.rfc-editor.org/rfc/rfc9110#section-5.1)."""
    return isinstance(value, str) and isinstance(header, str) and value.lower() == header.lower()


def _destination_rules(resources: list[dict]) -> Iterator[dict]:
    return (r for r in resources if _DESTINATION_RULE.match(str(r.get("type", ""))))


def _backend_headers(resources: list[dict], settings: Settings) -> dict[Any, set]:
    """Parent URN -> the headers its Cloud Run services declare (the default if one declares none)."""
    headers: dict[Any, set] = defaultdict(set)
    for service in _of(resources, CLOUD_RUN):
        declared = run_header(service)
        headers[service.get("parent")].add(settings.header if declared is None else declared)
    return headers


class _Mesh:
    """Kubernetes Services, the Deployments they select and the DestinationRules naming them, indexed once."""

    def __init__(self, resources: list[dict]):
        self.services: dict[tuple, dict] = {}
        self.unsure = False
        for service in _of(resources, K8S_SERVICE):
            key = _meta_key(service)
            self.unsure |= any(is_unknown(k) for k in key)
            self.services[key] = service
        # (namespace, pod label, value) -> Deployments: a selector is matched by set intersection.
        self.labelled: dict[tuple, list[dict]] = defaultdict(list)
        for deployment in _of(resources, DEPLOYMENT):
            labels = _inputs(deployment, "spec", "template", "metadata", "labels")
            for item in (labels.items() if isinstance(labels, dict) else ()):
                if isinstance(item[1], (str, int, float, bool)):
                    self.labelled[(_meta_key(deployment)[1], *item)].append(deployment)

        self._selected: dict[tuple, list[dict]] = {}
        self._headers: dict[tuple, set] = {}

    def headers(self, key: tuple, default: str) -> set:
        """The session headers the Deployments behind Service ``key`` declare (``default`` for none)."""
        if key not in self._headers:
            self._headers[key] = {pod_env(d, HEADER_ENV) or default for d in self.selected(key)}
        return self._headers[key]

    def selected(self, key: tuple) -> list[dict]:
        """The Deployments whose pod labels the Service ``key`` selects (computed once per Service)."""
        if key not in self._selected:
            self._selected[key] = self._select(key)
        return self._selected[key]

    def _select(self, key: tuple) -> list[dict]:
        selector = _inputs(self.services.get(key, {}), "spec", "selector")
        if not isinstance(selector, dict) or not selector or \
                not all(isinstance(v, (str, int, float, bool)) for v in selector.values()):
            return []
        groups = sorted((self.labelled.get((key[1], k, v), []) for k, v in selector.items()), key=len)
        matching = {id(d) for d in groups[0]}
        for group in groups[1:]:
            matching &= {id(d) for d in group}
        return [d for d in groups[0] if id(d) in matching]


def _meta_key(resource: dict) -> tuple:
    return (_inputs(resource, "metadata", "name"), _inputs(resource, "metadata", "namespace") or "default")


@_rule("header-hash-names-configured-header", sources.BACKEND_SERVICE_API)
def header_hash_names_configured_header(resources: list[dict], settings: Settings) -> Iterator[tuple[str, str]]:
    """Header hashing hashes the header its service declares, with a hashing locality policy.

    Sources: https://cloud.google.com/compute/docs/reference/rest/v1/backendServices
    (``consistentHash.httpHeaderName`` applies with HEADER_FIELD and RING_HASH or MAGLEV only),
    https://istio.io/latest/docs/reference/config/networking/destination-rule/ (``consistentHash``).
    A backend service's header must be the ``MCP_SESSION_HEADER`` of the Cloud Run services in its
    component; a DestinationRule's, that of the Deployments its host's Service selects. A rule
    hashing anything but a header (source IP, a query parameter) is refused; a cookie
    (``httpCookie``) pins as Istio's persistent sessions do and is accepted.
    """
    declared = _backend_headers(resources, settings)
    for backend in _of(resources, BACKEND):
        if _inputs(backend, "sessionAffinity") != "HEADER_FIELD":
            continue
        bad = []
        name = _inputs(backend, "consistentHash", "httpHeaderName")
        wanted = declared.get(backend.get("parent")) or {settings.header}
        if not is_unknown(name) and not any(_same_header(name, h) for h in wanted if not is_unknown(h)):
            bad.append(f"consistentHash.httpHeaderName is {_show(name)}, must be the declared "
                       f"{' or '.join(sorted(map(repr, wanted)))}")
        policy = _inputs(backend, "localityLbPolicy")
        if not is_unknown(policy) and policy not in ("RING_HASH", "MAGLEV"):
            bad.append(f"localityLbPolicy is {_show(policy)}, must be RING_HASH or MAGLEV")
        if bad:
            yield backend["urn"], "; ".join(bad)
    mesh = _Mesh(resources)
    for rule in _destination_rules(resources):
        hashing = _inputs(rule, "spec", "trafficPolicy", "loadBalancer", "consistentHash")
        if hashing is None or is_unknown(hashing) or get(hashing, "httpCookie") is not None:
            continue
        name = get(hashing, "httpHeaderName")
        if name is None:
            yield rule["urn"], f"spec.trafficPolicy.loadBalancer.consistentHash hashes {hashing!r}, not a session header"
            continue
        target = _rule_target(rule)
        headers = (mesh.headers(target, settings.header) if target else set()) or {settings.header}
        if not is_unknown(name) and not any(is_unknown(h) or _same_header(name, h) for h in headers):
            yield rule["urn"], (f"spec.trafficPolicy.loadBalancer.consistentHash hashes header {name!r}, "
                                f"but its service declares {' or '.join(sorted(map(repr, headers)))} ({HEADER_ENV})")


def _host_target(host: str, namespace: str) -> Optional[tuple[str, str]]:
    """(name, namespace) of the Kubernetes Service ``host`` resolves to, as Istio does.

    Istio expands only a host without a dot (to ``host.<rule namespace>.svc.<domain>``) and takes any
    dotted host literally (``ResolveShortnameToFQDN`` in istio/istio pkg/config/model.go), so
    ``svc.ns`` names no Kubernetes Service.
    """
    if "." not in host:
        return host, namespace
    parts = host.split(".")
    if len(parts) >= 4 and parts[2] == "svc" and ".".join(parts[3:]) == CLUSTER_DOMAIN:
        return parts[0], parts[1]
    return None


def _rule_target(rule: dict) -> Optional[tuple[str, str]]:
    host, ns = _inputs(rule, "spec", "host"), _inputs(rule, "metadata", "namespace") or "default"
    if not isinstance(host, str) or is_unknown(host) or not isinstance(ns, str) or is_unknown(ns):
        return None
    return _host_target(host, ns)


@_rule("destination-rule-targets-service", ISTIO_DESTINATION_RULE)
def destination_rule_targets_service(resources: list[dict], settings: Settings) -> Iterator[tuple[str, str]]:
    """A hashing DestinationRule's ``spec.host`` resolves to a Kubernetes Service of the stack.

    Sources: https://istio.io/latest/docs/reference/config/networking/destination-rule/ (short names
    resolve in the rule's namespace; use FQDNs), https://istio.io/latest/docs/reference/config/analysis/ist0174/
    (a host matching no service). A missing namespace is ``default``.
    """
    mesh = _Mesh(resources)
    for rule in _destination_rules(resources):
        if _inputs(rule, "spec", "trafficPolicy", "loadBalancer", "consistentHash") is None:
            continue
        host = _inputs(rule, "spec", "host")
        target = _rule_target(rule)
        if target is None and isinstance(host, str) and not is_unknown(host) \
                and not is_unknown(_inputs(rule, "metadata", "namespace")):
            yield rule["urn"], (f"spec.host {host!r} is not a short name or <svc>.<ns>.svc.{CLUSTER_DOMAIN}; "
                                f"Istio takes a dotted host literally, so it matches no Kubernetes Service")
        elif target is not None and target not in mesh.services and not mesh.unsure:
            yield rule["urn"], (f"spec.host {host!r} resolves to Service {target[1]}/{target[0]}, "
                                "which is not in the stack")


def _in_mesh(resources: list[dict]) -> bool:
    """The stack runs Istio: an Istio object, an istiod chart, or a namespace with sidecar injection."""
    for r in resources:
        type_ = str(r.get("type", ""))
        labels = _inputs(r, "metadata", "labels")
        if "istio.io" in type_ or (type_.startswith("kubernetes:helm.sh") and _inputs(r, "chart") == "istiod") \
                or (type_ == NAMESPACE and isinstance(labels, dict)
                    and (labels.get("istio-injection") == "enabled" or "istio.io/rev" in labels)):
            return True
    return False


def _mapping(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


@_rule("mesh-service-has-destination-rule", ISTIO_DESTINATION_RULE)
def mesh_service_has_destination_rule(resources: list[dict], settings: Settings) -> Iterator[tuple[str, str]]:
    """In a mesh, every Service of an MCP server with sessions has a DestinationRule that pins them.

    Sources: https://istio.io/latest/docs/reference/config/networking/destination-rule/ (without a
    rule, Envoy balances each request on its own); Istio persistent sessions
    (the ``istio.io/persistent-session`` label on the Service, ``pilot/pkg/features/experimental.go``).
    Headless Services are addressed pod by pod, as the learned-pinning proxy does, and need none.
    An MCP server is a Deployment whose container declares ``MCP_SESSION_HEADER``; one that
    declares ``MCP_SESSION_MODE=stateless`` needs no pinning.
    """
    if not _in_mesh(resources):
        return
    mesh = _Mesh(resources)
    pinned = {t for rule in _destination_rules(resources) if (t := _rule_target(rule)) is not None}
    unsure = mesh.unsure or any(_rule_target(r) is None for r in _destination_rules(resources))
    for key, service in sorted(mesh.services.items(), key=lambda kv: kv[1]["urn"]):
        marks = {**_mapping(_inputs(service, "metadata", "annotations")), **_mapping(_inputs(service, "metadata", "labels"))}
        # A headless Service is addressed pod by pod (the learned-pinning proxy's back side).
        headless = _inputs(service, "spec", "clusterIP") == "None"
        if key in pinned or unsure or headless or "istio.io/persistent-session" in marks:
            continue
        servers = [d for d in mesh.selected(key) if pod_env(d, HEADER_ENV) is not None
                   and pod_env(d, MODE_ENV) != "stateless"]
        if servers:
            yield service["urn"], (f"Service {key[1]}/{key[0]} fronts the MCP server {servers[0]['name']} but no "
                                   "DestinationRule names it: requests of one session spread over all pods")


@_rule("production-store-protected", REDIS_DELETION_PROTECTION)
def production_store_protected(resources: list[dict], settings: Settings) -> Iterator[tuple[str, str]]:
    """In production, the session store keeps deletion protection on.

    Source: https://www.pulumi.com/registry/packages/gcp/api-docs/redis/instance/ (``deletionProtection``:
    unset or true refuses deletion, false allows it). Production
    is decided by the stack's name before any label (:func:`is_production`), so relabelling a
    production store does not lift the rule.
    """
    if not settings.production:
        return
    for store in _stores(resources):
        value = _inputs(store, "deletionProtection")
        if value is False or is_unknown(value):
            yield store["urn"], f"deletionProtection is {_show(value)} in a production stack, must be true"


@_rule("method-route-holds-host-access", sources.CLOUD_ARMOR_POLICIES)
def method_route_holds_host_access(resources: list[dict], settings: Settings) -> Iterator[tuple[str, str]]:
    """Every route of a host ends where that host's access and edge hold (the plan's access map).

    Sources: https://cloud.google.com/armor/docs/security-policy-overview (a policy is attached to a
    backend service: the one the URL map picks applies), https://cloud.google.com/iap/docs/load-balancer-howto
    and https://cloud.google.com/iap/docs/reference/compute-engine-apis (IAP is enabled per backend
    service), https://cloud.google.com/run/docs/securing/managing-access#invoker_check.
    A route (a method route: ``Mcp-Method`` on the URL map or in the mesh) that ends at a backend with
    other IAP members or clients, other invoker members, a weaker mesh token policy, or Cloud Armor
    rules looser than the host's own backend for that host (Origin allowlist, ``POST`` without
    ``Mcp-Method``, per-client and per-tool limits) is refused on the URL map or VirtualService
    (:mod:`mcp_affinity.access_map`). A reference unknown until apply cannot be judged.
    """
    for route, end, differences in access_map.crossings(access_map.access_map(resources)):
        yield route.source, (f"{route.host}: {route.match} ends at {end.label}, where the host's access and edge do "
                             f"not hold: {'; '.join(differences)}")


@_rule("cloud-armor-rule-limits", sources.CLOUD_ARMOR_LIMITS)
def cloud_armor_rule_limits(resources: list[dict], settings: Settings) -> Iterator[tuple[str, str]]:
    """Every Cloud Armor rule is within Cloud Armor's limits, so that a plan that passes applies.

    Sources: https://cloud.google.com/armor/quotas#limits (2,048 characters per expression, 1,024 per
    subexpression), https://cloud.google.com/armor/docs/rules-language-reference (five subexpressions),
    https://cloud.google.com/armor/docs/best-practices (descriptions of 64 characters); measured by
    :func:`mcp_affinity.armor_limits.rule_faults` on the rules of each security policy and on
    standalone security policy rules. The API refuses a rule over a limit at apply, after the plan; an
    expression or description unknown until apply cannot be judged.
    """
    rules = [(p["urn"], rule) for p in _of(resources, SECURITY_POLICY) for rule in _list(_inputs(p, "rules"))]
    rules += [(r["urn"], r.get("inputs") or {}) for r in _of(resources, SECURITY_POLICY_RULE)]
    for urn, rule in rules:
        expression, description = get(rule, "match", "expr", "expression"), get(rule, "description")
        known = {"description": description if isinstance(description, str) and not is_unknown(description) else "",
                 "match": {"expr": {"expression": expression}} if isinstance(expression, str)
                 and not is_unknown(expression) else {}}
        for fault in armor_limits.rule_faults(known):
            yield urn, f"rule {_show(get(rule, 'priority'))}: {fault}"


def stack_name(resources: list[dict], settings: Optional[Settings] = None) -> Optional[str]:
    """The stack: ``settings.stack``, else the one URNs name (``urn:pulumi:<stack>::<project>::...``)."""
    if settings is not None and settings.stack:
        return settings.stack
    for resource in resources:
        match = re.match(r"urn:pulumi:([^:]+)::", str(resource.get("urn", "")))
        if match:
            return match.group(1)
    return None


def is_production(resources: list[dict], stack: Optional[str] = None) -> bool:
    """True when the stack's name says prod (``prod``, ``production``, ``eu-prod``, ...) or any resource
    is labelled ``environment: prod``."""
    name = stack or stack_name(resources)
    if name and _PROD_STACK.search(name):
        return True
    return any(_inputs(r, "labels", "environment") == "prod" or _inputs(r, "resourceLabels", "environment") == "prod"
               for r in resources)


def check_resources(resources: list[dict], *, header: str = DEFAULT_SESSION_HEADER, production: Optional[bool] = None,
                    min_timeout_seconds: float = 1, stack: Optional[str] = None) -> list[Violation]:
    """Every rule over ``resources`` (plan shape); violations sorted by rule, URN and message."""
    return run_rules(resources, Settings(header, production, min_timeout_seconds, stack=stack))


def run_rules(resources: list[dict], settings: Settings, names: Optional[Iterable[str]] = None) -> list[Violation]:
    """The rules named in ``names`` (default all) over ``resources``, production inferred if not set."""
    if settings.production is None:
        settings = replace(settings, production=is_production(resources, stack_name(resources, settings)))
    wanted = set(names) if names is not None else {r.name for r in RULES}
    return sorted(v for rule in RULES if rule.name in wanted for v in rule.run(resources, settings))


def check_plan(plan: Mapping[str, Any], **options: Any) -> list[Violation]:
    """:func:`check_resources` over a validated plan dict (:func:`plan_file.validate`), its stack given."""
    options.setdefault("stack", plan.get("stack"))
    return check_resources(list(plan.get("resources", [])), **options)


# Change rules: they judge what a deploy does, so they need the stack before it (a preview's old
# states, or the base plan). A CrossGuard pack is given the new inputs only (pulumi-policy's
# ResourceValidationArgs / StackValidationArgs carry no old state nor operation:
# https://github.com/pulumi/pulumi-policy/issues/154), so the pack cannot run these: ``mcp-affinity
# check`` and ``diff`` run them on a preview's JSON or on two plans.

@dataclass(frozen=True)
class ChangeRule:
    """A rule over one change set: ``check(review, head resources, settings)`` yields (urn, message)."""

    name: str
    url: str
    enforcement: str
    check: Callable[[impact.Review, list[dict], Settings], Iterable[tuple[str, str]]]

    @property
    def description(self) -> str:
        return (self.check.__doc__ or self.name).strip().splitlines()[0].replace("``", "")


CHANGE_RULES: list[ChangeRule] = []


def _change_rule(name: str, url: str, enforcement: str):
    def register(check):
        CHANGE_RULES.append(ChangeRule(name, url, enforcement, check))
        return check
    return register


@_change_rule("prod-change-ends-sessions", "https://cloud.google.com/run/docs/resource-model#revisions", "advisory")
def prod_change_ends_sessions(review: impact.Review, head: list[dict], settings: Settings) -> Iterator[tuple[str, str]]:
    """In production, a deploy that ends live sessions is flagged (advisory): clients must re-initialize.

    Source: https://cloud.google.com/run/docs/resource-model#revisions (a new revision takes the
    traffic) and https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#updating-a-deployment
    (a pod template change replaces the pods); what holds sessions is in :mod:`mcp_affinity.impact`.
    A deploy that drains them (a new shard generation, learned-pinning pods that drain) is not
    flagged: the sessions it holds keep their version for the window.
    """
    if not settings.production:
        return
    for ended in review.ending():
        yield ended.urns[0], (f"ends live sessions of {ended}: {'; '.join(ended.reasons)}; "
                              "deploy when clients can re-initialize")


@_change_rule("prod-change-widens-access", MCP_AUTHORIZATION, "mandatory")
def prod_change_widens_access(review: impact.Review, head: list[dict], settings: Settings) -> Iterator[tuple[str, str]]:
    """In production, a deploy that widens who may call a service carries ``acknowledge: [access-widened]``.

    Source: https://modelcontextprotocol.io/specification/2025-11-25/basic/authorization (an MCP
    server reachable over HTTP should authorize its callers). The acknowledgement is the label
    ``mcp-ack-access: widened`` on the service's Cloud Run services or Deployment.
    """
    if not settings.production:
        return
    services = impact.service_map(head)
    acknowledged = {services.get(r["urn"]) for r in head if impact.acknowledged(r)}
    for change in review.access:
        if change.widens and change.service not in acknowledged:
            yield change.urn, (f"widens who may call {change.service}: {change.text}; add acknowledge: "
                               "[access-widened] to the service for this deploy, then remove it")


@_change_rule("change-reuses-revision-name", "https://cloud.google.com/run/docs/reference/rest/v2/projects.locations.services#RevisionTemplate", "mandatory")
def change_reuses_revision_name(review: impact.Review, head: list[dict], settings: Settings) -> Iterator[tuple[str, str]]:
    """A Cloud Run service whose ``template`` changes keeps no named ``template.revision`` of before.

    Source: https://cloud.google.com/run/docs/reference/rest/v2/projects.locations.services#RevisionTemplate
    ("revision: The unique name for the revision"): a change under ``template`` makes a new
    revision, and Cloud Run refuses a second one of the same name, so ``pulumi up`` fails though the
    plan passed. Sharded services name a revision per generation (``{service}-gen7``); the fix is
    a new generation. Every environment: an apply that fails is no less broken in dev. A plain
    ``pulumi preview`` refuses the same change through :mod:`mcp_affinity.generation_guard`.
    """
    services = impact.service_map(head)
    for change in review.changes:
        if change.type != CLOUD_RUN or change.op != "update":
            continue
        revision = ((change.new or {}).get("template") or {}).get("revision")
        if (not isinstance(revision, str) or revision in _UNKNOWNS
                or revision != ((change.old or {}).get("template") or {}).get("revision")):
            continue
        paths = [p for p in change.paths if p.startswith(("template.", "template[")) and p != "template.revision"]
        if paths:
            name = (change.new or {}).get("name") or change.urn.rsplit("::", 1)[-1]
            yield change.urn, reused_revision(name, revision, services.get(change.urn), ", ".join(paths))


def check_change(review: impact.Review, head: Mapping[str, Any], production: Optional[bool] = None) -> list[Violation]:
    """Every change rule over ``review`` (:func:`impact.review` of a change set), ``head`` the plan
    after it (:func:`plan_file.validate` shape); production inferred from its stack when None."""
    resources = list(head.get("resources", []))
    stack = head.get("stack")
    if production is None:
        production = is_production(resources, stack)
    settings = Settings(production=production, stack=stack)
    return sorted(Violation(rule.name, urn, message, rule.enforcement)
                  for rule in CHANGE_RULES for urn, message in rule.check(review, resources, settings))
