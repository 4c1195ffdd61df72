"""Design-guarding rules over a stack's resources, written once for tests, the plan and CrossGuard.

A resource is a dict in the plan shape of :mod:`mcp_affinity.plan`: ``{"urn", "type", "name",
"parent", "custom", "inputs"}``, ``inputs`` being the engine's camelCase property bag. A value
unknown until apply means "cannot judge", unless any value at all breaks the rule. Each rule is a
function over all resources (rules relate resources: a NEG names its Cloud Run service) whose
docstring cites the page stating the platform fact. ``policy/__main__.py`` runs the same rules as a policy pack.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional

from .. import sources
from ..affinity import DEFAULT_SESSION_HEADER

from .wire import SECRET_SIG as _SIG, SECRET_VALUE_SIG as _SECRET, UNKNOWN, UNKNOWNS as _UNKNOWNS

REDIS = "gcp:redis/instance:Instance"
CLOUD_RUN = "gcp:cloudrunv2/service:Service"
NEG = "gcp:compute/regionNetworkEndpointGroup:RegionNetworkEndpointGroup"
BACKEND = "gcp:compute/backendService:BackendService"
K8S_SERVICE = "kubernetes:core/v1:Service"
_DESTINATION_RULE = re.compile(r"^kubernetes:networking\.istio\.io/[^:]+:DestinationRule$")
_NEG_PATH = re.compile(r"regions/([^/]+)/networkEndpointGroups/([^/?]+)")
_GROUP_PATH = re.compile(r"/(networkEndpointGroups|instanceGroups)/")
CLUSTER_DOMAIN = "cluster.local"
MAX_TIMEOUT_SECONDS = 3600
API_DEFAULT_TIMEOUT_SEC = 30  # what the API reports for a backend service left at its default

ISTIO_DESTINATION_RULE = "https://istio.io/latest/docs/reference/config/networking/destination-rule/"
REDIS_DELETION_PROTECTION = "https://www.pulumi.com/registry/packages/gcp/api-docs/redis/instance/"


@dataclass(frozen=True, order=True)
class Violation:
    """One broken rule: ``rule`` name, resource ``urn``, ``message``, ``enforcement`` level."""

    rule: str
    urn: str
    message: str
    enforcement: str = "mandatory"


@dataclass(frozen=True)
class Settings:
    """Rule parameters. ``production=None`` infers it (any ``labels.environment == "prod"``).
    ``outputs``: the bags are provider outputs (a CrossGuard stack policy), not inputs."""

    header: str = DEFAULT_SESSION_HEADER
    production: Optional[bool] = None
    min_timeout_seconds: float = 900
    outputs: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.min_timeout_seconds <= MAX_TIMEOUT_SECONDS:
            raise ValueError(f"min_timeout_seconds must be 1 to {MAX_TIMEOUT_SECONDS}")


@dataclass(frozen=True)
class Rule:
    name: str
    url: str
    check: Callable[[list[dict], Settings], Iterable[tuple[str, str]]]

    @property
    def description(self) -> str:
        return (self.check.__doc__ or self.name).strip().splitlines()[0].replace("``", "")

    def run(self, resources: list[dict], settings: Settings) -> list[Violation]:
        return sorted(Violation(self.name, urn, message) for urn, message in self.check(resources, settings))


RULES: list[Rule] = []


def _rule(name: str, url: str):
    def register(check):
        RULES.append(Rule(name, url, check))
        return check
    return register


def is_unknown(value: Any) -> bool:
    return isinstance(value, str) and value in _UNKNOWNS


def _show(value: Any) -> str:
    return "unset" if value is None else "set (known after apply)" if is_unknown(value) else repr(value)


def get(bag: Any, *path: Any) -> Any:
    """The value at ``path`` (keys or list indexes), secrets revealed; None if absent, UNKNOWN if unknown."""
    value = bag
    for key in (*path, None):
        if isinstance(value, Mapping) and value.get(_SIG) == _SECRET:
            value = value.get("value")
        if is_unknown(value):
            return UNKNOWN
        if key is None:
            return value
        if isinstance(key, int):
            value = value[key] if isinstance(value, list) and -len(value) <= key < len(value) else None
        else:
            value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _of(resources: list[dict], type_: str) -> Iterator[dict]:
    return (r for r in resources if r.get("type") == type_)


def _inputs(resource: dict, *path: Any) -> Any:
    return get(resource.get("inputs") or {}, *path)


def _serverless_negs(resources: list[dict]) -> list[dict]:
    return [n for n in _of(resources, NEG) if _inputs(n, "networkEndpointType") == "SERVERLESS"]


@_rule("redis-auth-tls-private", sources.MEMORYSTORE_AUTH)
def redis_auth_tls_private(resources: list[dict], settings: Settings) -> Iterator[tuple[str, str]]:
    """Memorystore for Redis has AUTH on, TLS (SERVER_AUTHENTICATION) and private services access only.

    Sources: https://cloud.google.com/memorystore/docs/redis/about-redis-auth (AUTH is off unless
    enabled), https://cloud.google.com/memorystore/docs/redis/about-in-transit-encryption (TLS is
    chosen at creation only), https://cloud.google.com/memorystore/docs/redis/networking (connect modes).
    """
    wanted = {"authEnabled": True, "transitEncryptionMode": "SERVER_AUTHENTICATION",
              "connectMode": "PRIVATE_SERVICE_ACCESS"}
    for redis in _of(resources, REDIS):
        bad = [f"{key} is {_show(_inputs(redis, key))}, must be {value!r}" for key, value in wanted.items()
               if not is_unknown(_inputs(redis, key)) and _inputs(redis, key) != value]
        if bad:
            yield redis["urn"], "; ".join(bad)


def _parse_duration(value: Any) -> Optional[float]:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)s", value) if isinstance(value, str) else None
    return float(match.group(1)) if match else None


@_rule("cloud-run-ingress-and-timeout", sources.CLOUD_RUN_INGRESS)
def cloud_run_ingress_and_timeout(resources: list[dict], settings: Settings) -> Iterator[tuple[str, str]]:
    """Cloud Run behind a serverless NEG admits only the load balancer and has a stream-long timeout.

    Sources: https://cloud.google.com/run/docs/securing/ingress (default ingress is ``all``),
    https://cloud.google.com/run/docs/configuring/request-timeout (default 300 s, at most 3600 s).
    A NEG names its service by ``cloudRun.service``; when that is unknown, the services that share
    the NEG's parent component are taken.
    """
    services = list(_of(resources, CLOUD_RUN))
    targets: dict[str, dict] = {}
    for neg in _serverless_negs(resources):
        name = _inputs(neg, "cloudRun", "service")
        for service in services:
            by_parent = name == UNKNOWN and service.get("parent") == neg.get("parent")
            if by_parent or (name is not None and name != UNKNOWN and name == _inputs(service, "name")):
                targets[service["urn"]] = service
    low, high = settings.min_timeout_seconds, MAX_TIMEOUT_SECONDS
    for urn, service in targets.items():
        bad = []
        ingress = _inputs(service, "ingress")
        if not is_unknown(ingress) and ingress != "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER":
            bad.append(f"ingress is {ingress or 'unset (INGRESS_TRAFFIC_ALL)'}, "
                       "must be INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER")
        timeout = _inputs(service, "template", "timeout")
        seconds = 300.0 if timeout is None else _parse_duration(timeout)
        if not is_unknown(timeout) and (seconds is None or not low <= seconds <= high):
            bad.append(f"template.timeout is {timeout or 'unset (300s)'}, must be {low:g}s to {high}s for streams")
        if bad:
            yield urn, "; ".join(bad)


def _neg_key(value: Any) -> Optional[tuple[str, str]]:
    match = _NEG_PATH.search(value) if isinstance(value, str) else None
    return (match.group(1), match.group(2)) if match else None


def serverless_backends(resources: list[dict]) -> list[dict]:
    """Backend services with a serverless NEG backend: by group id, else (id unknown or not a
    Compute path) by sharing the parent component of a serverless NEG."""
    negs = _serverless_negs(resources)
    ids = {v for n in negs for v in (_inputs(n, "id"), _inputs(n, "selfLink")) if v and not is_unknown(v)}
    keys = {(_inputs(n, "region"), _inputs(n, "name")) for n in negs}  # region None: the provider's default
    parents = {n.get("parent") for n in negs if n.get("parent")}

    def is_neg(group: Any) -> bool:
        key = _neg_key(group)
        return group in ids or key is not None and (key in keys or (None, key[1]) in keys)

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


def _same_header(value: Any, header: str) -> bool:
    """HTTP field names are case-insensitive (https://www.rfc-editor.org/rfc/rfc9110#section-5.1)."""
    return isinstance(value, str) and value.lower() == header.lower()


def _destination_rules(resources: list[dict]) -> Iterator[tuple[dict, Any]]:
    for rule in resources:
        if _DESTINATION_RULE.match(rule.get("type", "")):
            hashing = _inputs(rule, "spec", "trafficPolicy", "loadBalancer", "consistentHash")
            if hashing is not None:
                yield rule, hashing


@_rule("header-hash-names-configured-header", sources.BACKEND_SERVICE_API)
def header_hash_names_configured_header(resources: list[dict], settings: Settings) -> Iterator[tuple[str, str]]:
    """Header hashing hashes the configured session header, with a hashing locality policy.

    Sources: https://cloud.google.com/compute/docs/reference/rest/v1/backendServices
    (``consistentHash.httpHeaderName`` applies with HEADER_FIELD and RING_HASH or MAGLEV only),
    https://istio.io/latest/docs/reference/config/networking/destination-rule/ (``consistentHash``).
    """
    header = settings.header
    for backend in _of(resources, BACKEND):
        if _inputs(backend, "sessionAffinity") != "HEADER_FIELD":
            continue
        bad = []
        name = _inputs(backend, "consistentHash", "httpHeaderName")
        if not is_unknown(name) and not _same_header(name, header):
            bad.append(f"consistentHash.httpHeaderName is {_show(name)}, must be {header!r}")
        policy = _inputs(backend, "localityLbPolicy")
        if not is_unknown(policy) and policy not in ("RING_HASH", "MAGLEV"):
            bad.append(f"localityLbPolicy is {_show(policy)}, must be RING_HASH or MAGLEV")
        if bad:
            yield backend["urn"], "; ".join(bad)
    for rule, hashing in _destination_rules(resources):
        name = get(hashing, "httpHeaderName")
        if not is_unknown(name) and not _same_header(name, header):
            yield rule["urn"], (f"spec.trafficPolicy.loadBalancer.consistentHash hashes {name or hashing!r}, "
                                f"not header {header!r}")


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


@_rule("destination-rule-targets-service", ISTIO_DESTINATION_RULE)
def destination_rule_targets_service(resources: list[dict], settings: Settings) -> Iterator[tuple[str, str]]:
    """A hashing DestinationRule's ``spec.host`` resolves to a Kubernetes Service of the stack.

    Sources: https://istio.io/latest/docs/reference/config/networking/destination-rule/ (short names
    resolve in the rule's namespace; use FQDNs), https://istio.io/latest/docs/reference/config/analysis/ist0174/
    (a host matching no service). A missing namespace is ``default``.
    """
    services, unsure = set(), False
    for service in _of(resources, K8S_SERVICE):
        name, ns = _inputs(service, "metadata", "name"), _inputs(service, "metadata", "namespace") or "default"
        unsure |= is_unknown(name) or is_unknown(ns)
        services.add((name, ns))
    for rule, _ in _destination_rules(resources):
        host, ns = _inputs(rule, "spec", "host"), _inputs(rule, "metadata", "namespace") or "default"
        if is_unknown(host) or is_unknown(ns) or not isinstance(host, str):
            continue
        target = _host_target(host, ns)
        if target is None:
            yield rule["urn"], (f"spec.host {host!r} is not a short name or <svc>.<ns>.svc.{CLUSTER_DOMAIN}; "
                                f"Istio takes a dotted host literally, so it matches no Kubernetes Service")
        elif target not in services and not unsure:
            yield rule["urn"], (f"spec.host {host!r} resolves to Service {target[1]}/{target[0]}, "
                                "which is not in the stack")


@_rule("production-store-protected", REDIS_DELETION_PROTECTION)
def production_store_protected(resources: list[dict], settings: Settings) -> Iterator[tuple[str, str]]:
    """In production, the session store keeps deletion protection on.

    Source: https://www.pulumi.com/registry/packages/gcp/api-docs/redis/instance/ (``deletionProtection``:
    unset or true refuses deletion, false allows it).
    """
    if not settings.production:
        return
    for redis in _of(resources, REDIS):
        if _inputs(redis, "deletionProtection") is False:
            yield redis["urn"], "deletionProtection is false in a production stack"


def is_production(resources: list[dict]) -> bool:
    """True when any resource is labelled ``environment: prod``."""
    return any(_inputs(r, "labels", "environment") == "prod" for r in resources)


def check_resources(resources: list[dict], *, header: str = DEFAULT_SESSION_HEADER, production: Optional[bool] = None,
                    min_timeout_seconds: float = 900) -> list[Violation]:
    """Every rule over ``resources`` (plan shape); violations sorted by rule, URN and message."""
    return run_rules(resources, Settings(header, production, min_timeout_seconds))


def run_rules(resources: list[dict], settings: Settings, names: Optional[Iterable[str]] = None) -> list[Violation]:
    """The rules named in ``names`` (default all) over ``resources``, production inferred if not set."""
    if settings.production is None:
        settings = replace(settings, production=is_production(resources))
    wanted = set(names) if names is not None else {r.name for r in RULES}
    return sorted(v for rule in RULES if rule.name in wanted for v in rule.run(resources, settings))


def check_plan(plan: Mapping[str, Any], **options: Any) -> list[Violation]:
    """:func:`check_resources` over a plan dict (``Plan.to_json()`` or ``mcp-affinity plan --json``)."""
    return check_resources(list(plan.get("resources", [])), **options)
