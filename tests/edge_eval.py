"""Which Cloud Armor rule decides a request, on the rules as planned.

Cloud Armor evaluates a policy's rules by priority, lowest number first, and the first rule whose
match holds decides; a ``throttle`` rule lets a request through (``conformAction``) or applies its
``exceedAction`` once its key's count passes the threshold, counted per backend service the
policy is attached to (https://cloud.google.com/armor/docs/rules-language-reference,
https://cloud.google.com/armor/docs/rate-limiting-overview). :class:`Edge` does that over the rule
dicts the package plans (snake_case from ``policy_rules`` or camelCase from a plan), with
cel-python evaluating each expression. Functions cel-python lacks:

- ``lower()``: Python's ``str.lower``.
- ``evaluatePreconfiguredExpr('cve-canary')``: a stand-in for Google's Log4j signatures, true when
  a header, the path or the body holds a ``${jndi:`` lookup (Google's signatures catch more
  obfuscations; this is enough to tell which rule decides).
- ``evaluatePreconfiguredWaf(...)``: false (the OWASP signatures are not modelled).

Counts never expire (every request falls in one interval).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Optional

import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel

JNDI = re.compile(r"\$\{\s*jndi\s*:", re.IGNORECASE)


@dataclass(frozen=True)
class Request:
    """An HTTP request as Cloud Armor sees it; header names lowercase."""

    headers: dict
    method: str = "POST"
    path: str = "/mcp"
    body: str = ""
    ip: str = "203.0.113.7"


def _get(mapping: dict, snake: str):
    """A key of a rule dict in either spelling (``rate_limit_options`` / ``rateLimitOptions``)."""
    camel = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), snake)
    return mapping.get(snake, mapping.get(camel))


def matches(rule: dict, request: Request) -> bool:
    """Whether ``rule``'s match holds for ``request``."""
    match = rule["match"]
    expr = _get(match, "expr")
    if expr is None:
        assert _get(match, "versioned_expr") == "SRC_IPS_V1" and _get(match["config"], "src_ip_ranges") == ["*"], match
        return True
    return evaluate(expr["expression"], request)


def evaluate(expression: str, request: Request) -> bool:
    """``expression`` (the Cloud Armor rules language) on ``request``; an evaluation error does not match."""
    environment = celpy.Environment()
    seen = " ".join([*request.headers.values(), request.path, request.body])

    def preconfigured_expr(name, *_):
        return celtypes.BoolType(str(name) == "cve-canary" and bool(JNDI.search(seen)))

    functions = {"lower": lambda s: celtypes.StringType(str(s).lower()),
                 "evaluatePreconfiguredExpr": preconfigured_expr,
                 "evaluatePreconfiguredWaf": lambda *_: celtypes.BoolType(False)}
    program = environment.program(environment.compile(expression), functions=functions)
    try:
        result = program.evaluate({"request": json_to_cel(
            {"headers": request.headers, "method": request.method, "path": request.path})})
    except celpy.CELEvalError:  # e.g. an absent header compared with ==
        return False
    return isinstance(result, celtypes.BoolType) and bool(result)


def ordered(rules: list[dict]) -> list[dict]:
    """``rules`` by priority; asserts that priorities are unique (the API refuses duplicates)."""
    priorities = [int(r["priority"]) for r in rules]
    assert len(set(priorities)) == len(priorities), sorted(p for p, n in Counter(priorities).items() if n > 1)
    return sorted(rules, key=lambda r: int(r["priority"]))


def deciding_rule(rules: list[dict], request: Request) -> dict:
    """The first rule, by priority, whose match holds."""
    return next(rule for rule in ordered(rules) if matches(rule, request))


@dataclass
class Edge:
    """One policy attached to backend services, counting throttles per backend service."""

    rules: list[dict]
    counts: Counter = field(default_factory=Counter)

    def send(self, request: Request, backend: str = "backend") -> tuple[str, str]:
        """(the action taken: ``allow``, ``deny(403)``, ``deny(429)``..., the deciding rule's description)."""
        rule = deciding_rule(self.rules, request)
        if rule["action"] != "throttle":
            return rule["action"], rule["description"]
        options = _get(rule, "rate_limit_options")
        key = (backend, int(rule["priority"]), *(self._key(config, request) for config in _get(options, "enforce_on_key_configs")))
        self.counts[key] += 1
        threshold = _get(options, "rate_limit_threshold")
        over = self.counts[key] > int(threshold["count"])
        return (_get(options, "exceed_action") if over else _get(options, "conform_action")), rule["description"]

    @staticmethod
    def _key(config: dict, request: Request) -> Optional[str]:
        kind = _get(config, "enforce_on_key_type")
        if kind == "IP":
            return request.ip
        assert kind == "HTTP_HEADER", config
        return request.headers.get(_get(config, "enforce_on_key_name"))
