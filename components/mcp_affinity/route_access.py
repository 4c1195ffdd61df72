"""When a method route may cross to another service: the settings-level twin of :mod:`.access_map`.

A method route sends a host's requests for one MCP method to another service's backend. Cloud Run
behind the load balancer: the URL map picks that backend service, so IAP, the invoker check and the
Cloud Armor policy that apply are the target's (https://cloud.google.com/armor/docs/security-policy-overview:
a policy is attached to a backend service). On GKE the gateway's IAP and host-scoped Cloud Armor
rules stay the host's, the mesh's token policy is the target's.

The rule: a method route may cross only to a service whose access is identical (mode, members,
programmatic clients, token issuer) and whose edge is at least as strict for the requests it sends
there: an Origin allowlist within the host service's (``https://HOST`` of the load balancer's own
hosts served with the same access excepted: no foreign origin), ``requireMethodHeader`` where the
host service has it, a per-client limit and each per-tool limit that counts the routed requests no
looser (compared as requests per second), and Google's preconfigured rules the host enforces
(``refuseJndiLookups``; an enforced ``waf`` with its rule sets, at a sensitivity no lower; a WAF in
preview only logs, so it asks nothing of the target). Otherwise the stack is refused under the
route's key.

Why refuse rather than copy the host service's rules into the target's policy: a copy would be a
second, host-scoped block of rules in the target's policy that nobody wrote, whose per-IP counts run
on the target's backend apart from the host's anyway (Cloud Armor counts per backend service), and
that cannot be made at all for a policy of your own (``securityPolicy``). Refusing names the one
setting to change, keeps each service's policy its own ``edge``, and holds on every seam: the stack
check refuses the settings, and the policy rule ``method-route-holds-host-access`` refuses any plan
(your own program included) whose access map crosses.
"""

from __future__ import annotations

from typing import Iterable, Optional

from .access import AccessArgs
from .security_policy import EdgeArgs, RateLimitArgs


def access_key(access: AccessArgs) -> tuple:
    """What decides who gets in: mode, members, programmatic clients and token issuer, order ignored."""
    jwt = access.jwt.model_dump() if access.jwt is not None else None
    return (access.mode.value, frozenset(access.members), frozenset(access.programmatic_clients),
            repr(sorted(jwt.items())) if jwt else None)


def _rate(limit: RateLimitArgs) -> float:
    return limit.requests / limit.interval_seconds


def edge_faults(host: EdgeArgs, host_origins: list[str], target: EdgeArgs, target_origins: list[str],
                method: str, name: Optional[str], siblings: Iterable[str] = ()) -> list[str]:
    """What the target's edge does not hold of the host service's for requests ``method`` / ``name``
    (``host_origins``/``target_origins``: each policy's allowlist; ``siblings``: origins exempt)."""
    out = []
    extra = sorted(set(target_origins) - set(host_origins) - set(siblings))
    if extra:
        out.append(f"its Origin allowlist admits {', '.join(extra)}, which the host's refuses")
    if host.require_method_header and not target.require_method_header:
        out.append("the host's service refuses POST without Mcp-Method (requireMethodHeader), it does not")
    if _rate(target.rate_limit) > _rate(host.rate_limit):
        out.append(f"its per-client limit {target.rate_limit.requests}/{target.rate_limit.interval_seconds}s is looser "
                   f"than the host's {host.rate_limit.requests}/{host.rate_limit.interval_seconds}s")
    for key, limit in sorted(host.method_limits.items()):
        if limit.method != method or (name and limit.name and limit.name != name):
            continue
        held = [l for l in target.method_limits.values() if l.method == limit.method and l.name in (limit.name, None)]
        if not held or min(_rate(l) for l in held) > _rate(limit):
            out.append(f"the host's per-tool limit methodLimits.{key} ({limit.method}"
                       f"{' ' + limit.name if limit.name else ''}, {limit.requests}/{limit.interval_seconds}s) "
                       "has no equal or stricter limit there")
    if host.refuse_jndi_lookups and not target.refuse_jndi_lookups:
        out.append("the host's service refuses Log4j lookups (refuseJndiLookups), it does not")
    if host.waf.enabled and not host.waf.preview:
        missing = sorted(set(host.waf.rule_sets) - (set(target.waf.rule_sets) if target.waf.enabled and not target.waf.preview else set()))
        if missing or target.waf.sensitivity < host.waf.sensitivity:
            out.append(f"the host's service enforces the WAF ({', '.join(host.waf.rule_sets)}, sensitivity "
                       f"{host.waf.sensitivity}); it does not enforce {', '.join(missing) or 'that sensitivity'}")
    return out


def route_faults(host_name: str, host_access: AccessArgs, target_name: str, target_access: AccessArgs,
                 edges: Optional[tuple[EdgeArgs, list[str], EdgeArgs, list[str]]], policies: tuple,
                 method: str, name: Optional[str], siblings: Iterable[str] = ()) -> Optional[str]:
    """The refusal of a method route from ``host_name`` to ``target_name`` (None: it may cross).

    ``edges``: (host edge, host origins, target edge, target origins), or None where the gateway's
    host-scoped policy applies (GKE); ``policies``: (host's, target's) own ``securityPolicy`` or None.
    """
    faults = []
    if access_key(host_access) != access_key(target_access):
        faults.append(f"access differs: {host_name} is {host_access.summary()}, {target_name} is "
                      f"{target_access.summary()}")
    if edges is not None and policies != (None, None) and policies[0] != policies[1]:
        faults.append(f"Cloud Armor policies differ ({host_name}: {policies[0] or 'the package makes one'}, "
                      f"{target_name}: {policies[1] or 'the package makes one'}), and a policy of your own cannot "
                      "be compared: name the same securityPolicy on both")
    elif edges is not None and policies == (None, None):
        faults += edge_faults(*edges, method, name, siblings)
    if not faults:
        return None
    match = f"{method}{' ' + name if name else ''}"
    return (f"sends {match} on {host_name}'s hosts to {target_name!r}, where {host_name}'s access and edge must hold, "
            f"but {'; '.join(faults)}. Give {target_name} the same access and an edge at least as strict "
            f"(allowedOrigins within {host_name}'s, requireMethodHeader, rateLimit and methodLimits no looser, "
            "refuseJndiLookups and an enforced waf as strict), "
            "or remove the route")
