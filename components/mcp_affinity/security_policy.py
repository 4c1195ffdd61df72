"""EdgePolicy: the Cloud Armor backend security policy the package puts on every backend service.

Rules, in the order Cloud Armor evaluates them (lowest priority number first; the first rule that
matches decides, https://cloud.google.com/armor/docs/rules-language-reference):

1. Origin allowlist: a request carrying ``Origin`` that is not allowed gets 403 (the MCP
   specification requires servers to refuse invalid origins, DNS rebinding;
   https://modelcontextprotocol.io/specification/2025-11-25/basic/transports). Requests without
   ``Origin`` (non-browser clients) pass. One ``matches`` (RE2) keeps the rule within the rules
   language's limits (no ``in`` lists, at most five subexpressions): a deny-unless-listed rule cannot
   be split into several rules, because rules are alternatives, not conjunctions.
2. Optionally, ``POST`` without ``mcp-method`` gets 403 (services that speak MCP 2026-07-28 only).
3. Google's preconfigured WAF rules (OWASP CRS 4.22, ``evaluatePreconfiguredWaf``), optional, in
   preview (logged, not enforced) by default: prompts in tool arguments are natural language and
   may trip injection signatures (https://cloud.google.com/armor/docs/rule-tuning).
4. Per-tool limits: ``throttle`` on requests whose ``mcp-method`` (and ``mcp-name``) match, keyed on
   the client IP and those headers (``HTTP_HEADER`` enforce-on keys, at most three). Requests without
   these headers (legacy MCP clients, before 2026-07-28) do not match and escape them.
5. Per-client limit: ``throttle`` keyed on the client IP; over the threshold, 429.

A request a throttle rule lets through is not counted by later rules: Cloud Armor stops at the first
matching rule (https://cloud.google.com/armor/docs/rate-limiting-overview). Adaptive Protection's
layer-7 DDoS defense needs a global ``CLOUD_ARMOR`` policy
(https://cloud.google.com/armor/docs/adaptive-protection-overview).

Header names in expressions are lowercase; every expression uses only attributes and functions the
custom rules language documents (``request.headers``, ``request.method``, ``request.path``,
``has``, ``matches``, ``startsWith``, ``evaluatePreconfiguredWaf``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal, Optional

import pulumi
import pulumi_gcp as gcp
from pydantic import AfterValidator, Field, Strict, model_validator

from .affinity import METHOD_HEADER, NAME_HEADER
from .edge_routes import METADATA_PATH
from .load_balancer import Domain, McpMethod
from .naming import RFC1035, PhysicalName, physical_name
from .settings import Bool, Faults, Int, Model, Name, Settings, StrInput, takes_settings
from .wire import SECURITY_POLICY

KNOWN_METHODS = frozenset({
    "initialize", "ping", "tools/list", "tools/call", "prompts/list", "prompts/get", "resources/list",
    "resources/templates/list", "resources/read", "resources/subscribe", "resources/unsubscribe",
    "completion/complete", "logging/setLevel", "subscriptions/listen", "tasks/get", "tasks/list",
    "tasks/result", "tasks/cancel",
})
"""Client-to-server request methods of MCP 2025-11-25 and 2026-07-28 (modelcontextprotocol.io/specification)."""

INTERVALS = (10, 30, 60, 120, 180, 240, 300, 600, 900, 1200, 1800, 2700, 3600)
"""``rateLimitThreshold.intervalSec`` values Cloud Armor accepts (https://cloud.google.com/armor/docs/rate-limiting-overview)."""

WAF_RULE_SETS = ("sqli", "xss", "lfi", "rfi", "rce", "methodenforcement", "scannerdetection", "protocolattack",
                 "sessionfixation", "php", "java", "nodejs")
"""Preconfigured WAF rule sets (``NAME-v422-stable``, https://cloud.google.com/armor/docs/waf-rules)."""

DEFAULT_RULE_PRIORITY = 2147483647
AUTO_DEPLOY_PRIORITY = 900
"""Adaptive Protection's auto-deploy placeholder: before every throttle rule (a throttle that lets a
request through ends the evaluation), https://cloud.google.com/armor/docs/adaptive-protection-auto-deploy."""
MAX_ORIGINS = 25
METHOD_KEY, NAME_KEY = METHOD_HEADER.lower(), NAME_HEADER.lower()


def _check_origin(value: str) -> str:
    if not re.fullmatch(r"https?://[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?", value):
        raise ValueError(f"{value!r} is not an origin: scheme://host[:port] in lowercase, no path, "
                         "e.g. https://app.example.com")
    return value


def _check_known_method(value: str) -> str:
    if value not in KNOWN_METHODS:
        raise ValueError(f"{value!r} is not an MCP request method; known: {', '.join(sorted(KNOWN_METHODS))}")
    return value


Origin = Annotated[str, Strict(), AfterValidator(_check_origin)]
KnownMethod = Annotated[McpMethod, AfterValidator(_check_known_method)]


SecurityPolicyId = Annotated[str, Strict(), Field(
    pattern=r"^(projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/global/securityPolicies/)?[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")]
"""A Cloud Armor security policy: ``projects/P/global/securityPolicies/NAME`` or its name (RFC 1035)
(https://cloud.google.com/compute/docs/reference/rest/v1/securityPolicies)."""


class RateLimitArgs(Model):
    """A ``throttle`` threshold; over it, 429."""

    requests: Int = Field(ge=1, le=1_000_000, description="requests allowed per interval and key (1 to 1,000,000).")
    interval_seconds: Literal[INTERVALS] = Field(  # type: ignore[valid-type]
        default=60,
        description="the interval, in seconds: 10, 30, 60, 120, 180, 240, 300, 600, 900, 1200, 1800, 2700 or 3600.")


class MethodLimitArgs(RateLimitArgs):
    """A per-tool limit for MCP 2026-07-28 requests, per client IP, method and name (``requests``
    counts per interval, client IP, method and name)."""

    method: KnownMethod = Field(description="the MCP method (`Mcp-Method`), e.g. `tools/call`.")
    name: Optional[str] = Field(
        default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_./-]+$",
        description="the tool, prompt or resource name (`Mcp-Name`); unset: every name.")


class WafArgs(Model):
    """Google's preconfigured WAF rules (OWASP CRS 4.22) with JSON parsing ``STANDARD``."""

    enabled: Bool = Field(default=False, description="add the preconfigured WAF rules.")
    preview: Bool = Field(
        default=True,
        description="log matches without enforcing them (prompts may trip injection signatures); set false after "
                    "reading the logs.")
    sensitivity: Int = Field(default=1, ge=1, le=4, description="OWASP paranoia level, 1 (fewest false positives) to 4.")
    rule_sets: list[Literal[WAF_RULE_SETS]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: ["sqli", "xss", "lfi", "rfi", "rce"], min_length=1,
        description="rule sets, each `NAME-v422-stable`.")


class EdgeArgs(Model):
    """A service's Cloud Armor settings (see :mod:`mcp_affinity.security_policy`)."""

    allowed_origins: Optional[list[Origin]] = Field(
        default=None, max_length=MAX_ORIGINS,
        description="origins a browser request may come from (403 otherwise; requests without `Origin` pass); "
                    "default: `https://HOST` for each of the service's hosts. At most 25.")
    rate_limit: RateLimitArgs = Field(
        default_factory=lambda: RateLimitArgs(requests=600),
        description="per client IP: requests per interval before 429 (default 600 per 60 s).")
    method_limits: dict[Name, MethodLimitArgs] = Field(
        default_factory=dict,
        description="key -> per-tool limit on `Mcp-Method` / `Mcp-Name` (MCP 2026-07-28); legacy clients send "
                    "neither and escape them.")
    require_method_header: Bool = Field(
        default=False,
        description="refuse `POST` requests without `Mcp-Method` (403): for servers that speak MCP 2026-07-28 only.")
    adaptive_protection: Bool = Field(
        default=True,
        description="Adaptive Protection's layer-7 DDoS detection. Without Cloud Armor Enterprise it only raises a "
                    "basic alert and blocks nothing; see `adaptiveProtectionAutoDeploy`.")
    adaptive_protection_auto_deploy: Bool = Field(
        default=False,
        description="Cloud Armor Enterprise only: the placeholder rule `evaluateAdaptiveProtectionAutoDeploy()` "
                    f"(deny 403, priority {AUTO_DEPLOY_PRIORITY}) through which Adaptive Protection blocks the traffic "
                    "it identifies as an attack; needs `adaptiveProtection`.")

    @model_validator(mode="after")
    def _auto_deploy(self) -> "EdgeArgs":
        if self.adaptive_protection_auto_deploy and not self.adaptive_protection:
            faults = Faults("EdgeArgs")
            faults.add("adaptiveProtectionAutoDeploy", "needs adaptiveProtection: true (it deploys its suggested rules)")
            faults.raise_if_any()
        return self
    waf: WafArgs = Field(
        default_factory=WafArgs,
        description="Google's preconfigured WAF rules (off by default; in preview when on).")

    def origins(self, hosts: list[str]) -> list[str]:
        """The allowed origins: as set, or ``https://HOST`` for each host."""
        return list(self.allowed_origins) if self.allowed_origins is not None else [f"https://{h}" for h in sorted(hosts)]


class EdgeScopeArgs(Model):
    """One service's rules in a policy."""

    edge: EdgeArgs = Field(default_factory=EdgeArgs, description="its settings.")
    hosts: list[Domain] = Field(default_factory=list, description="its hosts (the default allowed origins).")
    scoped: Bool = Field(
        default=False,
        description="its rules apply only to requests for `hosts` (a policy shared by several services).")
    oauth_metadata: Bool = Field(
        default=False,
        description="the RFC 9728 metadata path is exempt from the Origin check (public metadata).")


class EdgePolicyArgs(Settings):
    """Settings of :class:`EdgePolicy`: ``scopes``, service key -> :class:`EdgeScopeArgs` (one
    unscoped scope, or several scoped by host)."""

    scopes: dict[Name, EdgeScopeArgs] = Field(min_length=1, description="service key -> its rules.")

    def names(self, name: str) -> dict[str, PhysicalName]:
        return {"policy": physical_name(RFC1035, SECURITY_POLICY, self.prefix, name, "armor")}


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _alternation(values: list[str]) -> str:
    """An RE2 pattern matching exactly one of ``values`` (escaped for a CEL single-quoted string)."""
    return "^(?:" + "|".join(re.escape(v) for v in values) + ")$"


def host_condition(hosts: list[str]) -> str:
    """``request.headers['host']`` is one of ``hosts`` (with or without ``:443``)."""
    pattern = "^(?:" + "|".join(re.escape(h) for h in sorted(hosts)) + ")(?::443)?$"
    return f"request.headers['host'].matches({_quote(pattern)})"


def _header(name: str) -> str:
    return f"request.headers[{_quote(name)}]"


def scope_rules(scope: EdgeScopeArgs, base: int) -> list[dict]:
    """The rules of one scope, priorities from ``base``; each a ``SecurityPolicyRule`` dict."""
    edge, prefix = scope.edge, ([host_condition(scope.hosts)] if scope.scoped else [])
    origins = edge.origins(scope.hosts)
    rules = []
    origin_check = [*prefix, f"has({_header('origin')})"]
    if origins:
        origin_check.append(f"!{_header('origin')}.matches({_quote(_alternation(origins))})")
    if scope.oauth_metadata:
        origin_check.append(f"!request.path.startsWith({_quote(METADATA_PATH)})")
    rules.append(_deny(base, " && ".join(origin_check), "Origin not allowed (MCP: 403 for invalid origins)"))
    if edge.require_method_header:
        rules.append(_deny(base + 1, " && ".join([*prefix, "request.method == 'POST'", f"!has({_header(METHOD_KEY)})"]),
                           "POST without Mcp-Method (2026-07-28-only service)"))
    for offset, rule_set in enumerate(edge.waf.rule_sets if edge.waf.enabled else []):
        waf = f"evaluatePreconfiguredWaf({_quote(rule_set + '-v422-stable')}, {{'sensitivity': {edge.waf.sensitivity}}})"
        rules.append({**_deny(base + 10 + offset, " && ".join([*prefix, waf]), f"WAF {rule_set}"),
                      "preview": edge.waf.preview})
    ordered = sorted(edge.method_limits.items(), key=lambda kv: (kv[1].name is None, kv[0]))
    for offset, (key, limit) in enumerate(ordered):
        match = [*prefix, f"{_header(METHOD_KEY)} == {_quote(limit.method)}"]
        keys = [{"enforce_on_key_type": "IP"}, {"enforce_on_key_type": "HTTP_HEADER", "enforce_on_key_name": METHOD_KEY}]
        if limit.name is not None:
            match.append(f"{_header(NAME_KEY)} == {_quote(limit.name)}")
            keys.append({"enforce_on_key_type": "HTTP_HEADER", "enforce_on_key_name": NAME_KEY})
        rules.append(_throttle(base + 50 + offset, " && ".join(match), limit, keys, f"per-tool limit {key}"))
    rules.append(_throttle(base + 99, " && ".join(prefix) or None, edge.rate_limit, [{"enforce_on_key_type": "IP"}],
                           "per-client limit"))
    return rules


def _match(expression: Optional[str]) -> dict:
    if expression is None:
        return {"versioned_expr": "SRC_IPS_V1", "config": {"src_ip_ranges": ["*"]}}
    return {"expr": {"expression": expression}}


def _deny(priority: int, expression: str, description: str) -> dict:
    return {"priority": priority, "action": "deny(403)", "match": _match(expression), "description": description}


def _throttle(priority: int, expression: Optional[str], limit: RateLimitArgs, keys: list[dict], description: str) -> dict:
    return {"priority": priority, "action": "throttle", "match": _match(expression), "description": description,
            "rate_limit_options": {
                "conform_action": "allow", "exceed_action": "deny(429)", "enforce_on_key_configs": keys,
                "rate_limit_threshold": {"count": limit.requests, "interval_sec": limit.interval_seconds}}}


def policy_rules(args: EdgePolicyArgs) -> list[dict]:
    """Every rule of the policy: each scope's block (100 priorities apart, from 1000), then the default allow."""
    rules = []
    if any(scope.edge.adaptive_protection_auto_deploy for scope in args.scopes.values()):
        # Enterprise: the expression must be this call alone, so the rule cannot be scoped to hosts.
        rules.append(_deny(AUTO_DEPLOY_PRIORITY, "evaluateAdaptiveProtectionAutoDeploy()",
                           "Adaptive Protection auto-deploy (Cloud Armor Enterprise)"))
    for index, (_, scope) in enumerate(sorted(args.scopes.items())):
        rules += scope_rules(scope, 1000 + 100 * index)
    rules.append({"priority": DEFAULT_RULE_PRIORITY, "action": "allow", "match": _match(None),
                  "description": "default: allow"})
    return rules


@dataclass(frozen=True)
class EdgePolicyRef:
    """What a backend service takes from its edge policy: ``policy_id`` (``BackendService.security_policy``)."""

    policy_id: StrInput


class EdgePolicy(pulumi.ComponentResource):
    """A global ``CLOUD_ARMOR`` security policy for one backend service.

    Outputs: ``policy_id`` (for ``BackendService.security_policy``) and ``rules`` (the rule dicts, as planned).
    """

    policy_id: pulumi.Output[str]

    @takes_settings
    def __init__(self, name: str, args: EdgePolicyArgs, opts: Optional[pulumi.ResourceOptions] = None):
        names = args.names(name)
        super().__init__("mcp-affinity:index:EdgePolicy", name, None, opts)
        edges = [s.edge for s in args.scopes.values()]
        self.rules = policy_rules(args)
        advanced = {"json_parsing": "STANDARD"} if any(e.waf.enabled for e in edges) else None
        policy = gcp.compute.SecurityPolicy(
            name, name=names["policy"].value, project=args.project, type="CLOUD_ARMOR", labels=args.labels,
            description="mcp-affinity: Origin allowlist, rate limits, WAF",
            adaptive_protection_config={"layer7_ddos_defense_config": {
                "enable": any(e.adaptive_protection for e in edges)}},
            advanced_options_config=advanced, rules=self.rules, opts=pulumi.ResourceOptions(parent=self))
        self.policy_id = policy.id
        self.register_outputs({"policy_id": self.policy_id})

    def ref(self) -> EdgePolicyRef:
        """This policy as a backend service takes it."""
        return EdgePolicyRef(self.policy_id)
