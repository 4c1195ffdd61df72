"""EdgePolicy: the Cloud Armor backend security policy the package puts on every backend service.

Rules, in the order Cloud Armor evaluates them (lowest priority number first; the first rule that
matches decides, https://cloud.google.com/armor/docs/rules-language-reference):

0. Adaptive Protection's auto-deploy placeholder (priority 900, Enterprise, opt-in), then Log4j
   (priority 910, one per policy, every host): Google's preconfigured ``cve-canary`` rule
   (``${jndi:...}`` lookups of CVE-2021-44228 and CVE-2021-45046) enforced with 403, written as
   ``evaluatePreconfiguredExpr('cve-canary')``, the form Checkov's CKV_GCP_73 looks for
   (https://cloud.google.com/armor/docs/waf-rules; bridgecrewio/checkov
   ``CloudArmorWAFACLCVE202144228.py``). ``refuseJndiLookups: false`` turns it off; in a shared policy it
   stays on while any service keeps it.

Then a block of 100 priorities per service (``1000 + 100 x index``, services sorted by key), each
rule scoped to the service's hosts in a shared policy (``request.headers['host'].lower()``: Envoy
and the load balancer match hosts case-insensitively, ``matches()`` does not):

1. ``+0`` Origin allowlist: a request carrying ``Origin`` that is not allowed gets 403 (the MCP
   specification requires servers to refuse invalid origins, DNS rebinding;
   https://modelcontextprotocol.io/specification/2025-11-25/basic/transports). Requests without
   ``Origin`` (non-browser clients) pass. One ``matches`` (RE2) keeps the rule within the rules
   language's limits (no ``in`` lists, at most five subexpressions): a deny-unless-listed rule cannot
   be split into several rules, because rules are alternatives, not conjunctions.
2. ``+1``, ``+2`` with ``requireMethodHeader`` (services that speak MCP 2026-07-28 only): ``POST``
   without ``Mcp-Method`` gets 403, and so does every request (but CORS preflights and the OAuth
   metadata path) whose ``MCP-Protocol-Version`` is absent or older than 2026-07-28.
3. ``+3`` Version gate: a request carrying ``Mcp-Method`` naming a method that a per-tool limit or a
   method route acts on gets 403 unless its ``MCP-Protocol-Version`` is 2026-07-28 or later
   (:data:`~mcp_affinity.affinity.MODERN_VERSIONS`). MCP 2026-07-28 (Streamable HTTP, "Server
   Validation") says an intermediary that routes or rate-limits on these mirrored headers should
   reject such requests rather than trust them: only a 2026-07-28 server checks the headers
   against the body (400, -32020). Cloud Armor has no 400: 403.
4. ``+10`` and on: Google's preconfigured WAF rules (OWASP CRS 4.22, ``evaluatePreconfiguredWaf``),
   optional, in preview (logged, not enforced) by default: prompts in tool arguments are natural
   language and may trip injection signatures (https://cloud.google.com/armor/docs/rule-tuning).
5. ``+50`` to ``+98``: per-tool limits (at most :data:`MAX_METHOD_LIMITS`), ``throttle`` on requests
   whose ``mcp-method`` (and ``mcp-name``) match, keyed on the client IP and those headers
   (``HTTP_HEADER`` enforce-on keys, at most three); a limit on a name before the limits on its
   whole method. Requests without these headers (legacy MCP clients) do not match them.

Last, one per-client limit for the whole policy (priority ``1000 + 100 x services - 1``), on every
request whatever its host (a ``Host`` the scopes do not know cannot dodge it): ``throttle`` keyed
on the client IP; over the threshold, 429. A shared policy (the GKE gateway) takes the strictest
of its services' limits (:func:`looser_limits` names the services whose own limit does not hold).
Then the default allow.

Cloud Armor counts a rate limit per backend service the policy is attached to ("applies the rate
limiting threshold to each associated backend", https://cloud.google.com/armor/docs/rate-limiting-overview),
and no enforce-on key makes one count span backend services. A policy over ``backendServices`` N
(a sharded service's shards) therefore divides every threshold by N (rounded down), so that a
client reaching all shards gets at most the limit as written; a threshold that would round to 0 is
refused.

A request a throttle rule lets through is not counted by later rules: Cloud Armor stops at the first
matching rule (https://cloud.google.com/armor/docs/rate-limiting-overview). Adaptive Protection's
layer-7 DDoS defense needs a global ``CLOUD_ARMOR`` policy
(https://cloud.google.com/armor/docs/adaptive-protection-overview). Rule priorities in a policy
must be unique (the API refuses a duplicate).

Every rule stays within Cloud Armor's limits (:mod:`mcp_affinity.armor_limits`: 2,048 characters per
expression, 1,024 per subexpression, five subexpressions): settings that would make the host check,
the Origin check or the gated methods longer are refused under their key (:func:`limit_faults`).

Header names in expressions are lowercase; every expression uses only attributes and functions the
custom rules language documents (``request.headers``, ``request.method``, ``request.path``,
``has``, ``lower``, ``matches``, ``startsWith``, ``evaluatePreconfiguredWaf``,
``evaluatePreconfiguredExpr``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal, Mapping, Optional

import pulumi
import pulumi_gcp as gcp
from pydantic import AfterValidator, Field, Strict, field_validator, model_validator

from . import sources
from .affinity import METHOD_HEADER, MODERN_VERSIONS, NAME_HEADER, VERSION_HEADER
from .armor_limits import MAX_EXPRESSION_CHARS, MAX_SUBEXPRESSION_CHARS, subexpressions
from .edge_routes import METADATA_PATH
from .load_balancer import Domain, McpMethod
from .naming import RFC1035, PhysicalName, physical_name
from .settings import Bool, Faults, Int, Model, Name, Settings, StrInput, takes_settings
from .wire import SECURITY_POLICY

KNOWN_METHODS = frozenset({
    "initialize", "ping", "tools/list", "tools/call", "prompts/list", "prompts/get", "resources/list",
    "resources/templates/list", "resources/read", "resources/subscribe", "resources/unsubscribe",
    "completion/complete", "logging/setLevel", "subscriptions/listen", "tasks/get", "tasks/list",
    "tasks/result", "tasks/cancel", "server/discover",
})
"""Client-to-server request methods of MCP 2025-11-25 and 2026-07-28 (modelcontextprotocol.io/specification;
2026-07-28 adds ``server/discover``, https://modelcontextprotocol.io/specification/2026-07-28/server/discover)."""

INTERVALS = (10, 30, 60, 120, 180, 240, 300, 600, 900, 1200, 1800, 2700, 3600)
"""``rateLimitThreshold.intervalSec`` values Cloud Armor accepts (https://cloud.google.com/armor/docs/rate-limiting-overview)."""

WAF_RULE_SETS = ("sqli", "xss", "lfi", "rfi", "rce", "methodenforcement", "scannerdetection", "protocolattack",
                 "sessionfixation", "php", "java", "nodejs")
"""Preconfigured WAF rule sets (``NAME-v422-stable``, https://cloud.google.com/armor/docs/waf-rules)."""

DEFAULT_RULE_PRIORITY = 2147483647
LOG4J_PRIORITY = 910
LOG4J_EXPRESSION = "evaluatePreconfiguredExpr('cve-canary')"
"""Google's preconfigured Log4j rule set (no version suffix), exactly as Checkov's CKV_GCP_73 expects it."""
FIRST_SCOPE, SCOPE_SPAN = 1000, 100
"""A service's block of rules starts at ``FIRST_SCOPE + SCOPE_SPAN x index``."""
WAF_OFFSET, METHOD_LIMIT_OFFSET = 10, 50
MAX_METHOD_LIMITS = SCOPE_SPAN - 1 - METHOD_LIMIT_OFFSET
"""Per-tool limits a service may have: one priority each, from ``+50`` up to ``+98`` of its block
(``+99`` of the last block is the per-client limit; priorities in a policy must be unique)."""
AUTO_DEPLOY_PRIORITY = 900
"""Adaptive Protection's auto-deploy placeholder: before every throttle rule (a throttle that lets a
request through ends the evaluation), https://cloud.google.com/armor/docs/adaptive-protection-auto-deploy."""
MAX_ORIGINS = 25
METHOD_KEY, NAME_KEY, VERSION_KEY = METHOD_HEADER.lower(), NAME_HEADER.lower(), VERSION_HEADER.lower()


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
                    "default: `https://HOST` for each of the service's hosts. At most 25, and 1,024 characters for their "
                    "check together, each dot and hyphen counting three (Cloud Armor's limit per subexpression).")
    rate_limit: RateLimitArgs = Field(
        default_factory=lambda: RateLimitArgs(requests=600),
        description="per client IP, whatever the host: requests per interval before 429 (default 600 per 60 s); "
                    "with shards it holds over all of them (each shard's backend gets requests / shards); mesh "
                    "services share the gateway's policy, which takes the strictest of theirs (a plan warns about each "
                    "looser one).")
    method_limits: dict[Name, MethodLimitArgs] = Field(
        default_factory=dict,
        description=f"key -> per-tool limit on `Mcp-Method` / `Mcp-Name` (MCP 2026-07-28), at most {MAX_METHOD_LIMITS}; "
                    "a request naming a limited method must claim `MCP-Protocol-Version` 2026-07-28 or later (403 "
                    "otherwise); legacy clients send neither header and stay under `rateLimit` only.")
    require_method_header: Bool = Field(
        default=False,
        description="for servers that speak MCP 2026-07-28 only: refuse (403) `POST` requests without `Mcp-Method` "
                    "and every request whose `MCP-Protocol-Version` is absent or older than 2026-07-28.")
    refuse_jndi_lookups: Bool = Field(
        default=True,
        description="Google's preconfigured `cve-canary` rule, enforced (403): Log4j `${jndi:...}` lookups "
                    "(CVE-2021-44228, CVE-2021-45046); ordinary prose does not match it.")
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

    @field_validator("method_limits")
    @classmethod
    def _bounded(cls, limits: dict) -> dict:
        if len(limits) > MAX_METHOD_LIMITS:
            raise ValueError(f"{len(limits)} per-tool limits; at most {MAX_METHOD_LIMITS}: each takes a Cloud Armor rule "
                             f"priority of the service's block of {SCOPE_SPAN}, and priorities in a policy must be unique")
        return limits

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
    routed_methods: list[McpMethod] = Field(
        default_factory=list,
        description="MCP methods the load balancer or mesh routes from `hosts` to another backend (method routes): "
                    "requests naming them must claim MCP 2026-07-28 or later, as for per-tool limits.")

    def gated_methods(self) -> list[str]:
        """Methods whose requests must claim 2026-07-28: those of per-tool limits and method routes."""
        return sorted({limit.method for limit in self.edge.method_limits.values()} | set(self.routed_methods))


class EdgePolicyArgs(Settings):
    """Settings of :class:`EdgePolicy`: ``scopes``, service key -> :class:`EdgeScopeArgs` (one
    unscoped scope, or several scoped by host)."""

    scopes: dict[Name, EdgeScopeArgs] = Field(min_length=1, description="service key -> its rules.")
    backend_services: Int = Field(
        default=1, ge=1,
        description="backend services the policy is attached to (a sharded service's shards); Cloud Armor counts "
                    "rate limits per backend service, so every threshold is divided by it.")

    @model_validator(mode="after")
    def _thresholds(self) -> "EdgePolicyArgs":
        faults = Faults("EdgePolicyArgs")
        for key, scope in sorted(self.scopes.items()):
            for location, message in threshold_faults(scope.edge, self.backend_services):
                faults.add(("scopes", key, "edge", *location), message)
            for location, message in limit_faults(scope):
                faults.add(("scopes", key, *location), message)
        faults.raise_if_any()
        return self

    def names(self, name: str) -> dict[str, PhysicalName]:
        return {"policy": physical_name(RFC1035, SECURITY_POLICY, self.prefix, name, "armor")}


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _alternation(values: list[str]) -> str:
    """An RE2 pattern matching exactly one of ``values`` (escaped for a CEL single-quoted string)."""
    return "^(?:" + "|".join(re.escape(v) for v in values) + ")$"


def threshold_faults(edge: EdgeArgs, backend_services: int) -> list[tuple[tuple, str]]:
    """(location, message) for each threshold of ``edge`` that ``backend_services`` backend services
    would round to 0 (:func:`per_backend`); locations as in a stack file (``rateLimit.requests``)."""
    faults = []
    limits = [(("rateLimit",), edge.rate_limit)] + [(("methodLimits", k), v) for k, v in sorted(edge.method_limits.items())]
    for location, limit in limits:
        if limit.requests < backend_services:
            faults.append(((*location, "requests"), (
                f"{limit.requests} per {limit.interval_seconds} s cannot hold over {backend_services} backend services "
                f"(Cloud Armor counts per backend service, so each gets requests / {backend_services}, rounded down, "
                f"here 0): at least {backend_services}, or fewer shards")))
    return faults


def limit_faults(scope: EdgeScopeArgs) -> list[tuple[tuple, str]]:
    """(location, message) for each setting of ``scope`` that makes one of its rules, as
    :func:`scope_rules` writes them, longer than Cloud Armor allows (:mod:`mcp_affinity.armor_limits`):
    ``("hosts",)`` (the host check), ``("edge", "allowedOrigins")`` (the Origin check, also when it
    defaults to the hosts), ``("routedMethods",)`` (the methods gated on the protocol version). Each
    message gives the limit, the length measured and what to change; at most one per location."""
    found: dict[tuple, str] = {}
    for rule in scope_rules(scope, FIRST_SCOPE):
        expression = rule["match"].get("expr", {}).get("expression", "")
        for part in subexpressions(expression):
            if len(part) > MAX_SUBEXPRESSION_CHARS:
                location, what, change = _driver(scope, part)
                found.setdefault(location, (
                    f"{what} need a Cloud Armor subexpression of {len(part)} characters (escapes included); Cloud "
                    f"Armor allows {MAX_SUBEXPRESSION_CHARS} per subexpression ({sources.CLOUD_ARMOR_LIMITS}): {change}"))
        if len(expression) > MAX_EXPRESSION_CHARS:
            # The rule's own list (origins, methods) is named; the host check is counted in the message.
            parts = sorted(subexpressions(expression), key=lambda p: (p.startswith(_header("host")), -len(p)))
            location, what, change = _driver(scope, parts[0])
            found.setdefault(location, (
                f"{what} make the rule '{rule['description']}' an expression of {len(expression)} characters with its "
                f"other conditions (the host check: {len(parts[-1]) if scope.scoped else 0}); Cloud Armor allows "
                f"{MAX_EXPRESSION_CHARS} per expression ({sources.CLOUD_ARMOR_LIMITS}): {change}"))
    return sorted(found.items())


def service_limit_faults(scope: EdgeScopeArgs) -> list[tuple[str, str]]:
    """:func:`limit_faults` keyed as a service's settings name them: ``hosts``, ``edge.allowedOrigins``,
    ``methodRoutes`` (where the routed methods come from)."""
    keys = {("routedMethods",): ("methodRoutes",)}
    return [(".".join(keys.get(location, location)), message) for location, message in limit_faults(scope)]


def _driver(scope: EdgeScopeArgs, part: str) -> tuple[tuple, str, str]:
    """(location, what of the settings makes ``part``, what to change) for a subexpression of the scope's rules."""
    if part.startswith(f"!{_header('origin')}"):
        if scope.edge.allowed_origins is None:
            return (("edge", "allowedOrigins"),
                    f"unset, it is https://HOST for each of the {len(scope.hosts)} hosts served, which",
                    "set allowedOrigins to the origins browsers really use, fewer or shorter")
        return (("edge", "allowedOrigins"), f"its {len(scope.edge.allowed_origins)} origins",
                "list fewer or shorter origins")
    if part.startswith(f"{_header(METHOD_KEY)}.matches"):
        return (("routedMethods",), f"the {len(scope.gated_methods())} methods gated on MCP-Protocol-Version (method "
                "routes and per-tool limits)", "route fewer methods from these hosts, or give them shorter names")
    return (("hosts",), f"its {len(scope.hosts)} hosts", "give the service fewer or shorter hosts, or split it in two")


def per_backend(limit: RateLimitArgs, backend_services: int) -> RateLimitArgs:
    """``limit`` as each of ``backend_services`` backend services counts it (rounded down;
    :func:`threshold_faults` refuses a 0 first, else ``ValidationError``)."""
    return RateLimitArgs(requests=limit.requests // backend_services, interval_seconds=limit.interval_seconds)


def strictest(limits: list[RateLimitArgs]) -> RateLimitArgs:
    """The lowest rate of ``limits`` (requests per second; the smaller burst on a tie)."""
    return min(limits, key=lambda limit: (limit.requests / limit.interval_seconds, limit.requests))


def looser_limits(scopes: Mapping[str, EdgeScopeArgs]) -> list[tuple[str, str, RateLimitArgs]]:
    """``(scope, strictest scope, strictest limit)`` for each scope of a shared policy whose
    ``rateLimit`` differs from the one per-client limit the policy enforces (:func:`strictest`, the
    first scope by name holding it): that scope's clients get the stricter limit, not their own.
    Empty when every scope sets the same limit."""
    if not scopes:
        return []
    limit = strictest([scope.edge.rate_limit for scope in scopes.values()])
    holder = min(name for name, scope in scopes.items() if scope.edge.rate_limit == limit)
    return [(name, holder, limit) for name, scope in sorted(scopes.items()) if scope.edge.rate_limit != limit]


def show_limit(limit: RateLimitArgs) -> str:
    """``600/60s``."""
    return f"{limit.requests}/{limit.interval_seconds}s"


def host_condition(hosts: list[str]) -> str:
    """The request's host, lowercased, is one of ``hosts`` (with or without a trailing dot or ``:443``).
    Envoy and the load balancer match hosts case-insensitively; ``matches()`` does not, so without
    ``lower()`` ``Host: NOTES.example.com`` would pass every scoped rule."""
    pattern = "^(?:" + "|".join(re.escape(h) for h in sorted(hosts)) + ")\\.?(?::443)?$"
    return f"request.headers['host'].lower().matches({_quote(pattern)})"


def _header(name: str) -> str:
    return f"request.headers[{_quote(name)}]"


def version_not_modern() -> str:
    """``MCP-Protocol-Version`` is absent or not 2026-07-28 or later (one parenthesized subexpression pair)."""
    version = _header(VERSION_KEY)
    return f"(!has({version}) || !{version}.matches({_quote(MODERN_VERSIONS)}))"


def scope_rules(scope: EdgeScopeArgs, base: int, backend_services: int = 1) -> list[dict]:
    """The rules of one scope, priorities from ``base`` to ``base + 98``; each a ``SecurityPolicyRule``
    dict. Thresholds are divided by ``backend_services`` (:func:`per_backend`)."""
    edge, prefix = scope.edge, ([host_condition(scope.hosts)] if scope.scoped else [])
    origins = edge.origins(scope.hosts)
    rules = []
    origin_check = [*prefix, f"has({_header('origin')})"]
    if origins:
        origin_check.append(f"!{_header('origin')}.matches({_quote(_alternation(origins))})")
    metadata = [f"!request.path.startsWith({_quote(METADATA_PATH)})"] if scope.oauth_metadata else []
    rules.append(_deny(base, " && ".join([*origin_check, *metadata]), "Origin not allowed (MCP: 403 for invalid origins)"))
    if edge.require_method_header:
        rules.append(_deny(base + 1, " && ".join([*prefix, "request.method == 'POST'", f"!has({_header(METHOD_KEY)})"]),
                           "POST without Mcp-Method (2026-07-28-only service)"))
        # CORS preflights carry no custom header (Fetch standard); the metadata is public.
        rules.append(_deny(base + 2, " && ".join([*prefix, "request.method != 'OPTIONS'", *metadata, version_not_modern()]),
                           "MCP-Protocol-Version older than 2026-07-28"))
    gated = scope.gated_methods()
    if gated:
        method = _header(METHOD_KEY)
        rules.append(_deny(base + 3, " && ".join([*prefix, f"has({method})", f"{method}.matches({_quote(_alternation(gated))})",
                                                   version_not_modern()]),
                           "Mcp-Method without MCP-Protocol-Version 2026-07-28+"))
    for offset, rule_set in enumerate(edge.waf.rule_sets if edge.waf.enabled else []):
        waf = f"evaluatePreconfiguredWaf({_quote(rule_set + '-v422-stable')}, {{'sensitivity': {edge.waf.sensitivity}}})"
        rules.append({**_deny(base + WAF_OFFSET + offset, " && ".join([*prefix, waf]), f"WAF {rule_set}"),
                      "preview": edge.waf.preview})
    # Cloud Armor stops at the first match: a limit on a name must come before its method's.
    ordered = sorted(edge.method_limits.items(), key=lambda kv: (kv[1].name is None, kv[0]))
    for offset, (key, limit) in enumerate(ordered):
        match = [*prefix, f"{_header(METHOD_KEY)} == {_quote(limit.method)}"]
        keys = [{"enforce_on_key_type": "IP"}, {"enforce_on_key_type": "HTTP_HEADER", "enforce_on_key_name": METHOD_KEY}]
        if limit.name is not None:
            match.append(f"{_header(NAME_KEY)} == {_quote(limit.name)}")
            keys.append({"enforce_on_key_type": "HTTP_HEADER", "enforce_on_key_name": NAME_KEY})
        rules.append(_throttle(base + METHOD_LIMIT_OFFSET + offset, " && ".join(match),
                               per_backend(limit, backend_services), keys, f"per-tool limit {key}"))
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
    """Every rule of the policy: auto-deploy (opt-in) and Log4j, each scope's block (100 priorities apart, from 1000),
    the per-client limit (unscoped, the strictest of the scopes'), then the default allow."""
    scopes = [scope for _, scope in sorted(args.scopes.items())]
    rules = []
    if any(scope.edge.adaptive_protection_auto_deploy for scope in args.scopes.values()):
        # Enterprise: the expression must be this call alone, so the rule cannot be scoped to hosts.
        rules.append(_deny(AUTO_DEPLOY_PRIORITY, "evaluateAdaptiveProtectionAutoDeploy()",
                           "Adaptive Protection auto-deploy (Cloud Armor Enterprise)"))
    if any(scope.edge.refuse_jndi_lookups for scope in scopes):
        rules.append(_deny(LOG4J_PRIORITY, LOG4J_EXPRESSION, "Log4j lookups (cve-canary, CVE-2021-44228)"))
    for index, scope in enumerate(scopes):
        rules += scope_rules(scope, FIRST_SCOPE + SCOPE_SPAN * index, args.backend_services)
    limit = per_backend(strictest([scope.edge.rate_limit for scope in scopes]), args.backend_services)
    rules.append(_throttle(FIRST_SCOPE + SCOPE_SPAN * len(scopes) - 1, None, limit, [{"enforce_on_key_type": "IP"}],
                           "per-client limit"))
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
