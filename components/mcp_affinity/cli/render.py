"""Text rendering of a plan: the resource tree with the settings a reviewer checks, and a summary."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.markup import escape
from rich.tree import Tree

from .runner import Plan, PlannedResource
from .wire import COMPUTED, SECRET_SIG, UNKNOWN

# Per resource type, the input paths a reviewer looks at; affinity first.
HIGHLIGHTS: dict[str, list[str]] = {
    "gcp:compute/backendService:BackendService": [
        "sessionAffinity", "localityLbPolicy", "consistentHash.httpHeaderName", "loadBalancingScheme",
        "protocol", "timeoutSec", "healthChecks", "logConfig.enable",
    ],
    "gcp:cloudrunv2/service:Service": [
        "template.sessionAffinity", "ingress", "template.timeout", "template.maxInstanceRequestConcurrency",
        "template.scaling.minInstanceCount", "template.scaling.maxInstanceCount", "template.vpcAccess.egress",
        "template.containers.0.image", "deletionProtection",
    ],
    "gcp:compute/regionNetworkEndpointGroup:RegionNetworkEndpointGroup": ["networkEndpointType", "region"],
    "gcp:redis/instance:Instance": [
        "tier", "memorySizeGb", "authEnabled", "transitEncryptionMode", "connectMode", "readReplicasMode",
        "persistenceConfig.persistenceMode", "deletionProtection",
    ],
    "gcp:secretmanager/secretVersion:SecretVersion": ["secretData"],
    "gcp:compute/managedSslCertificate:ManagedSslCertificate": ["managed.domains"],
    "gcp:compute/globalForwardingRule:GlobalForwardingRule": ["portRange", "loadBalancingScheme"],
    "gcp:compute/sSLPolicy:SSLPolicy": ["minTlsVersion", "profile"],
    "gcp:compute/subnetwork:Subnetwork": ["region", "ipCidrRange"],
}


def lookup(inputs: dict[str, Any], path: str) -> Any:
    """The value at a dotted ``path`` (list indexes as numbers), or None."""
    value: Any = inputs
    for part in path.split("."):
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict):
            value = value.get(part)
        else:
            return None
    return value


def show(value: Any) -> str:
    """A property value as a reviewer reads it: unknowns and secrets named, not dumped."""
    if value == UNKNOWN:
        return COMPUTED
    if isinstance(value, dict) and SECRET_SIG in value:
        return "[secret]"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(show(v) for v in value) + "]"
    return str(value)


def settings_line(resource: PlannedResource) -> str:
    parts = []
    for path in HIGHLIGHTS.get(resource.type, []):
        value = lookup(resource.inputs, path)
        if value is not None:
            parts.append(f"{path}={show(value)}")
    name = resource.inputs.get("name")
    if isinstance(name, str):
        parts.insert(0, f"name={name}")
    return "  ".join(parts)


def tree(plan: Plan) -> Tree:
    """A rich Tree of the plan: components hold their children."""
    root = Tree(f"[bold]{plan.project}[/] / stack [bold]{plan.stack}[/]")
    children: dict[str | None, list[PlannedResource]] = {}
    for resource in plan.resources:
        children.setdefault(resource.parent, []).append(resource)
    known = {r.urn for r in plan.resources}

    def add(parent: Tree, resource: PlannedResource) -> None:
        style = "cyan" if resource.custom else "bold magenta"
        label = f"[{style}]{resource.type}[/] {escape(resource.name)}"
        line = escape(settings_line(resource))
        node = parent.add(label + (f"\n[dim]{line}[/]" if line else ""))
        for child in children.get(resource.urn, []):
            add(node, child)

    for resource in plan.resources:
        if resource.parent not in known:
            add(root, resource)
    return root


def summary(plan: Plan) -> list[str]:
    """Lines: resource count by type, warnings, outputs."""
    counts = Counter(r.type for r in plan.resources)
    lines = [f"{len(plan.resources)} resources to create in stack '{plan.stack}':"]
    lines += [f"  {n:3d} {t}" for t, n in sorted(counts.items())]
    for warning in plan.warnings:
        lines.append(f"warning: {warning}")
    lines.append("outputs:")
    lines += [f"  {k}: {show(v)}" for k, v in plan.outputs.items()]
    return lines
