"""Text rendering of a plan: the resource tree with the settings a reviewer checks, the access map
(:func:`access_lines`) and a summary. An input naming another planned resource shows it
(``backend service tools``, :mod:`mcp_affinity.references`) rather than ``(known after apply)``.

Every affinity and routing decision is shown on both platforms: the backend service's affinity and
hashing, Cloud Run's own cookie affinity, ingress and timeout, the URL map's host rules, path
matchers and route rules, the Istio DestinationRule's traffic policy, the VirtualService's routes
and matches, the Gateway, and the GKE cluster and node pool settings the mesh depends on.

Text for a CI log (not a terminal) is rendered at a width nothing reaches, so no line is wrapped,
and without trailing spaces; outputs print as YAML.
"""

from __future__ import annotations

import io
from collections import Counter
from typing import Any

import yaml
from rich.console import Console
from rich.markup import escape
from rich.tree import Tree

from .runner import Plan, PlannedResource
from .. import access_map as _access_map
from ..references import Index, resolved_inputs
from ..wire import (
    AUTHORIZATION_POLICY, BACKEND, CLOUD_RUN, CLOUD_RUN_IAM_MEMBER, COMPUTED, CONTAINER_CLUSTER, DEPLOYMENT,
    DESTINATION_RULE, FIREWALL, FORWARDING_RULE, GENERATION_GUARD, HEALTH_CHECK, HELM_V3_RELEASE, HORIZONTAL_POD_AUTOSCALER,
    IAP_BACKEND_IAM_MEMBER, IAP_SETTINGS, ISTIO_GATEWAY, K8S_SERVICE, MANAGED_SSL_CERTIFICATE, NEG, NODE_POOL, REDIS,
    REQUEST_AUTHENTICATION, SECRET_SIG, SECRET_VERSION, SECURITY_POLICY, SSL_POLICY, SUBNETWORK, UNKNOWNS, URL_MAP,
    VIRTUAL_SERVICE,
)

_CONTAINER = "spec.template.spec.containers.0"

# Per resource type, the input paths a reviewer looks at; affinity and routing first. A path part
# ``key=value`` picks the list item whose ``key`` is ``value`` (an env var by name).
HIGHLIGHTS: dict[str, list[str]] = {
    BACKEND: [
        "sessionAffinity", "localityLbPolicy", "consistentHash.httpHeaderName", "affinityCookieTtlSec",
        "loadBalancingScheme", "protocol", "timeoutSec", "healthChecks", "securityPolicy", "iap.enabled",
        "logConfig.enable",
    ],
    CLOUD_RUN: [
        "template.sessionAffinity", "ingress", "invokerIamDisabled", "customAudiences", "template.timeout",
        "template.containers.0.envs.name=MCP_SESSION_HEADER.value", "template.maxInstanceRequestConcurrency",
        "template.scaling.minInstanceCount", "template.scaling.maxInstanceCount", "template.vpcAccess.egress",
        "template.containers.0.image", "deletionProtection",
        # Session shards: the shard's key (ingress container or server), the ingress image and config volume.
        "template.containers.1.envs.name=MCP_SHARD_KEY.value", "template.containers.0.envs.name=MCP_SESSION_ID_PREFIX.value",
        "template.containers.1.image", "template.volumes",
    ],
    NEG: ["networkEndpointType", "region", "cloudRun.service", "cloudRun.urlMask"],
    # The current generation whose named revisions a preview refuses to change (generation_guard).
    GENERATION_GUARD: ["generation"],
    URL_MAP: ["hostRules", "pathMatchers", "defaultService", "defaultRouteAction", "defaultUrlRedirect"],
    REDIS: [
        "tier", "memorySizeGb", "authEnabled", "transitEncryptionMode", "connectMode", "readReplicasMode",
        "replicaCount", "redisVersion", "persistenceConfig.persistenceMode", "deletionProtection",
    ],
    CONTAINER_CLUSTER: [
        "location", "nodeLocations", "releaseChannel.channel", "privateClusterConfig.enablePrivateNodes",
        "privateClusterConfig.masterIpv4CidrBlock", "workloadIdentityConfig.workloadPool", "datapathProvider",
        "gatewayApiConfig.channel", "networkingMode", "ipAllocationPolicy", "enableIntranodeVisibility",
        "masterAuth.clientCertificateConfig.issueClientCertificate", "authenticatorGroupsConfig.securityGroup",
        "deletionProtection",
    ],
    NODE_POOL: [
        "nodeConfig.machineType", "autoscaling", "nodeConfig.spot", "nodeConfig.workloadMetadataConfig.mode",
    ],
    DESTINATION_RULE: ["spec.host", "spec.trafficPolicy"],
    VIRTUAL_SERVICE: ["spec.hosts", "spec.gateways", "spec.http"],
    ISTIO_GATEWAY: ["spec.selector", "spec.servers"],
    K8S_SERVICE: ["spec.sessionAffinity", "spec.selector", "spec.ports", "metadata.annotations"],
    DEPLOYMENT: [
        f"{_CONTAINER}.env.name=MCP_SESSION_HEADER.value", f"{_CONTAINER}.image",
        "spec.template.spec.terminationGracePeriodSeconds", "spec.template.metadata.annotations",
    ],
    HORIZONTAL_POD_AUTOSCALER: ["spec.minReplicas", "spec.maxReplicas"],
    HELM_V3_RELEASE: ["chart", "version", "namespace"],
    HEALTH_CHECK: ["httpHealthCheck"],
    FIREWALL: ["direction", "priority", "sourceRanges", "allows", "denies"],
    SECURITY_POLICY: ["type", "adaptiveProtectionConfig.layer7DdosDefenseConfig.enable",
                      "advancedOptionsConfig.jsonParsing"],
    CLOUD_RUN_IAM_MEMBER: ["location", "role", "member"],
    IAP_BACKEND_IAM_MEMBER: ["role", "member"],
    IAP_SETTINGS: ["accessSettings.oauthSettings.programmaticClients"],
    REQUEST_AUTHENTICATION: ["spec.selector", "spec.jwtRules"],
    AUTHORIZATION_POLICY: ["spec.action", "spec.rules"],
    SECRET_VERSION: ["secretData"],
    MANAGED_SSL_CERTIFICATE: ["managed.domains"],
    FORWARDING_RULE: ["portRange", "loadBalancingScheme"],
    SSL_POLICY: ["minTlsVersion", "profile"],
    SUBNETWORK: ["region", "ipCidrRange"],
}


def lookup(inputs: Any, path: str) -> Any:
    """The value at a dotted ``path`` (list indexes as numbers, ``key=value`` picks an item), or None."""
    value: Any = inputs
    for part in path.split("."):
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, list) and "=" in part:
            key, wanted = part.split("=", 1)
            value = next((v for v in value if isinstance(v, dict) and v.get(key) == wanted), None)
        elif isinstance(value, dict):
            value = value.get(part)
        else:
            return None
    return value


def show(value: Any) -> str:
    """A property value as a reviewer reads it, on one line: unknowns and secrets named, not dumped;
    objects and lists in YAML flow style (``{host: a, route: [...]}``)."""
    if isinstance(value, str) and value in UNKNOWNS:
        return COMPUTED
    if isinstance(value, dict) and SECRET_SIG in value:
        return "[secret]"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {show(v)}" for k, v in value.items()) + "}"
    return str(value)


def key_settings(type_: str, inputs: dict[str, Any]) -> list[str]:
    """``path=value`` for the type's :data:`HIGHLIGHTS` that are set, the GCP ``name`` first."""
    parts = [f"{_label(path)}={show(value)}" for path in HIGHLIGHTS.get(type_, [])
             if (value := lookup(inputs, path)) is not None]
    if type_ == SECURITY_POLICY and isinstance(inputs.get("rules"), list):
        parts += [armor_rule(rule) for rule in sorted(inputs["rules"], key=lambda r: r.get("priority", 0))]
    name = inputs.get("name") if isinstance(inputs, dict) else None
    return ([f"name={name}"] if isinstance(name, str) else []) + parts


def armor_rule(rule: dict) -> str:
    """One Cloud Armor rule on a line: priority, action (threshold and keys), preview, match."""
    action = show(rule.get("action"))
    limit = rule.get("rateLimitOptions") or {}
    if limit:
        threshold = limit.get("rateLimitThreshold") or {}
        keys = "+".join(show(k.get("enforceOnKeyName") or k.get("enforceOnKeyType"))
                        for k in limit.get("enforceOnKeyConfigs") or [])
        action += f" {show(threshold.get('count'))}/{show(threshold.get('intervalSec'))}s per {keys} else {show(limit.get('exceedAction'))}"
    match = rule.get("match") or {}
    when = show((match.get("expr") or {}).get("expression") or (match.get("config") or {}).get("srcIpRanges"))
    preview = " (preview)" if rule.get("preview") else ""
    return f"rules[{show(rule.get('priority'))}]={action}{preview} when {when}"


def _label(path: str) -> str:
    return path.replace(".name=", "[").replace(".value", "].value") if "=" in path else path


def tree(plan: Plan) -> Tree:
    """A rich Tree of the plan: components hold their children; one setting a line."""
    root = Tree(f"[bold]{escape(plan.project)}[/] / stack [bold]{escape(plan.stack)}[/]")
    children: dict[str | None, list[PlannedResource]] = {}
    for resource in plan.resources:
        children.setdefault(resource.parent, []).append(resource)
    known = {r.urn for r in plan.resources}
    documents = {r.urn: r.to_json() for r in plan.resources}
    index = Index(list(documents.values()))

    def add(parent: Tree, resource: PlannedResource) -> None:
        style = "cyan" if resource.custom else "bold magenta"
        lines = [f"[{style}]{escape(resource.type)}[/] {escape(resource.name)}"]
        # Inputs naming another planned resource read as it (backend service tools), not as unknown.
        inputs = resolved_inputs(documents[resource.urn], index)
        lines += [f"[dim]{escape(s)}[/]" for s in key_settings(resource.type, inputs)]
        node = parent.add("\n".join(lines))
        for child in children.get(resource.urn, []):
            add(node, child)

    for resource in plan.resources:
        if resource.parent not in known:
            add(root, resource)
    return root


def access_lines(resources: list[dict]) -> list[str]:
    """The plan's access map (:mod:`mcp_affinity.access_map`) under a heading: one line a route,
    ``host: match -> backend [access | edge]``; a route where the host's access does not hold is
    marked ``!!``."""
    found = _access_map.access_map(resources)
    crossing = {id(route) for route, _, _ in _access_map.crossings(found)}
    lines = ["access map (host: route -> where it ends [who is let in | Cloud Armor for that host]):"]
    return lines + [f"{'!!' if id(route) in crossing else '  '} {route.line()}" for route in found.routes]


def plain_text(renderable: Any, width: int = 100_000) -> str:
    """``renderable`` as plain text at ``width`` (default: wider than any line, so nothing wraps),
    with no colour and no trailing spaces: what a CI log should hold."""
    buffer = io.StringIO()
    Console(file=buffer, width=width, no_color=True, color_system=None, highlight=False,
            emoji=False, legacy_windows=False, force_terminal=False).print(renderable)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"


def summary(plan: Plan, outputs: bool = True) -> list[str]:
    """Lines: resource count by type, warnings, then (with ``outputs``) the outputs as YAML."""
    counts = Counter(r.type for r in plan.resources)
    lines = [f"{len(plan.resources)} resources to create in stack '{plan.stack}':"]
    lines += [f"  {n:3d} {t}" for t, n in sorted(counts.items())]
    names = {r.urn: r.name for r in plan.resources}
    for warning in plan.warnings:
        where = names.get(getattr(warning, "urn", None))
        lines.append(f"warning: {warning}" + (f" (resource {where})" if where else ""))
    if outputs:
        lines.append("outputs:")
        lines += [f"  {line}".rstrip() for line in to_yaml(_shown_tree(plan.outputs)).splitlines()] if plan.outputs else []
    return lines


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (a proxy configuration in an output) as literal blocks, one line a line."""


_Dumper.add_representer(str, lambda dumper, value: dumper.represent_scalar(
    "tag:yaml.org,2002:str", value, style="|" if "\n" in value else None))


def to_yaml(value: Any) -> str:
    """Block-style YAML, keys in order, long lines kept whole, multi-line strings as literal blocks."""
    return yaml.dump(value, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=10**9,
                     allow_unicode=True)


def _shown_tree(value: Any) -> Any:
    """Leaves as :func:`show` reads them (unknowns, secrets), containers kept for YAML."""
    if isinstance(value, dict) and SECRET_SIG not in value:
        return {str(k): _shown_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shown_tree(v) for v in value]
    if isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    return show(value)
