"""CrossGuard policy pack ``mcp-affinity``: the rules of :mod:`mcp_affinity.policies` as stack policies.

Each rule relates several resources (a NEG names its Cloud Run service), so each is a
``StackValidationPolicy``. Stack policies see provider outputs, wrapped by pulumi-policy in
proxies that raise on unknown values; :func:`to_plan_resource` unwraps them into the plan shape
so unknowns stay "cannot judge". Each service's session header and timeout are read from its own
resources, and production from the stack name in the URNs, as ``mcp-affinity check`` does.
Optional policy config (``--policy-pack-config``): ``header`` (header-hash-names-configured-header:
the header of a workload that declares no ``MCP_SESSION_HEADER``), ``minTimeoutSeconds``
(cloud-run-ingress-and-timeout: a floor above the schema's 1 s) and ``production``
(production-store-protected: overrides the stack-name inference).

The change rules (:data:`mcp_affinity.policies.CHANGE_RULES`: a production change that ends live
sessions or widens who may call) are not in the pack: they compare the stack before and after, and
a pack is given the new inputs only (https://github.com/pulumi/pulumi-policy/issues/154).
``mcp-affinity check`` runs them on ``pulumi preview --json`` or on two plans.

The pack's server starts only when the CLI runs this file as ``__main__``
(``pulumi.policy`` runs it with ``runpy.run_path(..., run_name="__main__")``); importing it under
another name only builds :data:`POLICIES`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Callable

from pulumi_policy import (
    EnforcementLevel, PolicyConfigSchema, PolicyPack, ReportViolation, StackValidationArgs, StackValidationPolicy,
)

from mcp_affinity import policies

CONFIG = {
    "header-hash-names-configured-header": {"header": {"type": "string"}},
    "cloud-run-ingress-and-timeout": {"minTimeoutSeconds": {"type": "number", "minimum": 1, "maximum": 3600}},
    "production-store-protected": {"production": {"type": "boolean"}},
}


def plain(value: Any) -> Any:
    """A pulumi-policy property value as plain dicts and lists, unknown sentinels kept.

    Its proxies raise ``UnknownValueError`` when an unknown is read, and hand out their raw target
    for the key ``"__target"`` (as pulumi_policy.deserialize.serialize_properties reads them).
    """
    if isinstance(value, Mapping):
        raw = value if isinstance(value, dict) else value["__target"]
        return {key: plain(raw[key]) for key in raw}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        raw = value if isinstance(value, list) else value["__target"]
        return [plain(item) for item in raw]
    return value


def to_plan_resource(resource: Any) -> dict:
    """A ``PolicyResource`` in the plan shape of :mod:`mcp_affinity.cli`."""
    parent = getattr(resource, "parent", None)
    if parent is not None and not isinstance(parent, str):
        parent = getattr(parent, "urn", None)
    parent = parent or getattr(getattr(resource, "opts", None), "parent", None)
    return {"urn": resource.urn, "type": resource.resource_type, "name": resource.name, "parent": parent,
            "custom": getattr(resource, "provider", None) is not None, "inputs": plain(resource.props)}


def settings(config: Mapping[str, Any]) -> policies.Settings:
    return policies.Settings(
        header=config.get("header", policies.DEFAULT_SESSION_HEADER),
        production=config.get("production"),
        min_timeout_seconds=config.get("minTimeoutSeconds", 1),
        outputs=True,
    )


def validator(rule: policies.Rule) -> Callable[[StackValidationArgs, ReportViolation], None]:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = [to_plan_resource(r) for r in args.resources]
        for violation in policies.run_rules(resources, settings(args.get_config() or {}), [rule.name]):
            report_violation(violation.message, violation.urn)
    validate.__name__ = rule.name.replace("-", "_")
    return validate


POLICIES = [
    StackValidationPolicy(
        name=rule.name,
        description=rule.description,
        validate=validator(rule),
        url=rule.url,
        config_schema=PolicyConfigSchema(CONFIG[rule.name]) if rule.name in CONFIG else None,
    )
    for rule in policies.RULES
]

if __name__ == "__main__":
    PolicyPack("mcp-affinity", enforcement_level=EnforcementLevel.MANDATORY, policies=POLICIES)
