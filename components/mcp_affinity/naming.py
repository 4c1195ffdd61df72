"""Physical names: ``{prefix}-{component}-{part}``, checked against each resource type's rule.

Names are never truncated: a truncated name can end in a hyphen or collide with another one.
A name that breaks its rule raises :class:`ValueError` naming the rule, so the stack program
stops before any resource is registered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LABEL = r"[a-z]([a-z0-9-]*[a-z0-9])?"


@dataclass(frozen=True)
class NameRule:
    """What one resource type accepts as a name: a pattern, a length range and the source."""

    what: str
    max_length: int
    source: str
    min_length: int = 1
    pattern: str = _LABEL


RFC1035 = NameRule("Compute Engine resource name", 63, "https://cloud.google.com/compute/docs/naming-resources")
SERVICE_ACCOUNT = NameRule("service account id", 30, "https://cloud.google.com/iam/docs/service-accounts-create",
                           min_length=6)
CLOUD_RUN_SERVICE = NameRule("Cloud Run service name", 49,
                             "https://cloud.google.com/run/docs/reference/rest/v2/projects.locations.services")
REDIS_INSTANCE = NameRule("Memorystore instance id", 40,
                          "https://cloud.google.com/memorystore/docs/redis/reference/rest/v1/projects.locations.instances")
GKE_CLUSTER = NameRule("GKE cluster or node pool name", 40,
                       "https://cloud.google.com/kubernetes-engine/docs/reference/rest/v1/projects.locations.clusters")
SECRET = NameRule("Secret Manager secret id", 255, "https://cloud.google.com/secret-manager/docs/reference/rest/v1/projects.secrets",
                  pattern=r"[A-Za-z0-9_-]+")
HELM_RELEASE = NameRule("Helm release name", 53, "https://github.com/helm/helm/blob/main/pkg/chartutil/validate_name.go")
KUBERNETES = NameRule("Kubernetes DNS label", 63, "https://kubernetes.io/docs/concepts/overview/working-with-objects/names/")


@dataclass(frozen=True)
class PhysicalName:
    """A name a resource gets in Google Cloud or Kubernetes, with its resource type for collision checks."""

    type: str
    value: str


def physical_name(rule: NameRule, type_: str, *parts: str) -> PhysicalName:
    """Join ``parts`` with hyphens and check the result against ``rule``.

    Raises ``ValueError`` naming the rule and its source when the name is too long or malformed.
    """
    value = "-".join(parts)
    if not rule.min_length <= len(value) <= rule.max_length:
        raise ValueError(f"the {rule.what} {value!r} has {len(value)} characters; allowed {rule.min_length} to "
                         f"{rule.max_length} ({rule.source}): use a shorter prefix or name")
    if not re.fullmatch(rule.pattern, value):
        raise ValueError(f"the {rule.what} {value!r} is not allowed: lowercase letters, digits and hyphens, "
                         f"starting with a letter, not ending with a hyphen ({rule.source})")
    return PhysicalName(type_, value)
