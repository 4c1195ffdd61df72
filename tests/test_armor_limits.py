"""A plan that passes must apply: every Cloud Armor rule the package writes is within Cloud Armor's
limits (:mod:`mcp_affinity.armor_limits`), or the settings that would make it longer are refused
under their key, with the limit, the length measured and what to change (issue 19 follow-up).

Lengths here are measured on the expressions as planned, independently of the package's own
splitter: string literals are masked, the text is cut at ``&&`` and ``||``, each operand keeps its
characters as sent (escapes included) without the parentheses that group it.
"""

from __future__ import annotations

import copy
import re

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from conftest import plan_document
from mcp_affinity import SettingsError
from mcp_affinity.armor_limits import (MAX_DESCRIPTION_CHARS, MAX_EXPRESSION_CHARS, MAX_SUBEXPRESSION_CHARS,
                                       MAX_SUBEXPRESSIONS, rule_faults, subexpressions)
from mcp_affinity.policies import UNKNOWN, check_plan, check_resources
from mcp_affinity.security_policy import (FIRST_SCOPE, KNOWN_METHODS, MAX_ORIGINS, EdgePolicyArgs, EdgeScopeArgs,
                                          policy_rules, scope_rules, service_limit_faults)
from mcp_affinity.wire import SECURITY_POLICY_RULE
from test_edge import POLICY, all_plans, synthetic_rules
from test_hostile_config import BASE, NS, problems

LIMITS = "https://cloud.google.com/armor/quotas#limits"
_LITERAL = re.compile(r"'(?:\\.|[^'\\])*'")


def operands(expression: str) -> list[str]:
    """The operands of ``&&`` / ``||`` in ``expression`` as sent (see the module docstring)."""
    masked = _LITERAL.sub(lambda m: "x" * len(m.group()), expression)
    cuts = [0] + [i for m in re.finditer(r"&&|\|\|", masked) for i in (m.start(), m.end())] + [len(masked)]
    found = []
    for start, end in zip(cuts[::2], cuts[1::2]):
        text, mask = expression[start:end].strip(), masked[start:end].strip()
        extra = mask.count("(") - mask.count(")")
        found.append(text[extra:].strip() if extra > 0 else text[:len(text) + extra].strip() if extra < 0 else text)
    return found


def over(rule: dict) -> list[str]:
    """The lengths of ``rule`` over a limit, as ``kind:length`` ([] when within every limit)."""
    expression = rule["match"].get("expr", {}).get("expression")
    found = [f"description:{len(rule['description'])}"] if len(rule["description"]) > MAX_DESCRIPTION_CHARS else []
    if expression is None:
        return found
    parts = operands(expression)
    found += [f"expression:{len(expression)}"] if len(expression) > MAX_EXPRESSION_CHARS else []
    found += [f"subexpressions:{len(parts)}"] if len(parts) > MAX_SUBEXPRESSIONS else []
    return found + [f"subexpression:{len(p)}" for p in parts if len(p) > MAX_SUBEXPRESSION_CHARS]


def origin_check(expression: str) -> str:
    return re.search(r"!request\.headers\['origin'\]\.matches\('(?:\\.|[^'\\])*'\)", expression).group(0)


def rule(rules: list[dict], description: str) -> str:
    return next(r["match"]["expr"]["expression"] for r in rules if r["description"] == description)


ORIGIN = "Origin not allowed (MCP: 403 for invalid origins)"
GATE = "Mcp-Method without MCP-Protocol-Version 2026-07-28+"


def keys(error: SettingsError) -> list[str]:
    return sorted(key for key, _ in error.problems)


def policy(**scopes) -> list[dict]:
    return policy_rules(EdgePolicyArgs(prefix="p", scopes=scopes))


# --- the measure ----------------------------------------------------------------------------------

@pytest.mark.parametrize("expression, parts", [
    ("a && (b || c)", ["a", "b", "c"]),
    ("has(x) && !x.matches('^(?:a&&b|c\\\\.d)$')", ["has(x)", "!x.matches('^(?:a&&b|c\\\\.d)$')"]),
    ("x == 'it\\'s || not' && y", ["x == 'it\\'s || not'", "y"]),
    ("(!has(v) || !v.matches('^(?:1)$'))", ["!has(v)", "!v.matches('^(?:1)$')"]),
    ("evaluatePreconfiguredExpr('cve-canary')", ["evaluatePreconfiguredExpr('cve-canary')"]),
])
def test_subexpressions_are_the_operands_of_and_and_or_outside_literals(expression, parts):
    assert subexpressions(expression) == parts == operands(expression)


def test_a_rule_over_each_limit_is_named_with_the_limit_and_its_source():
    long = "request.headers['a'].matches('" + "x" * 1100 + "')"
    assert rule_faults({"description": "d", "match": {"expr": {"expression": long}}}) == [
        f"subexpression of {len(long)} characters (request.headers['a'].matches('xxxxxxxxxx...); Cloud Armor allows "
        f"1024 per subexpression ({LIMITS})"]
    six = " && ".join(["request.headers['a'] == '" + "x" * 970 + "'"] * 6)
    found = rule_faults({"description": "d" * 65, "match": {"expr": {"expression": six}}})
    assert [f.split(";")[0] for f in found] == ["description of 65 characters", f"expression of {len(six)} characters",
                                                "6 subexpressions"]
    assert rule_faults({"description": "d" * 64, "match": {"versioned_expr": "SRC_IPS_V1"}}) == []


# --- what ships -----------------------------------------------------------------------------------

def test_every_rule_of_every_stack_and_example_is_within_cloud_armors_limits():
    planned = [r for plan in all_plans() for p in plan.by_type(POLICY) for r in p.inputs["rules"]]
    assert len(planned) > 30
    for found in planned + synthetic_rules():
        assert over(found) == [] and rule_faults(found) == [], found


def test_the_longest_descriptions_fit():
    limits = {f"{'k' * 39}{i}": {"method": "tools/call", "name": "n" * 128, "requests": 1} for i in range(3)}
    edge = {"method_limits": limits, "require_method_header": True, "adaptive_protection_auto_deploy": True,
            "waf": {"enabled": True, "rule_sets": ["protocolattack", "methodenforcement"]}}
    every = EdgeScopeArgs(edge=edge, hosts=["a.example.com"], routed_methods=["tools/call"])
    planned = policy(s=every)
    lengths = {r["description"]: len(r["description"]) for r in planned}
    assert len(planned) == 13 and max(lengths.values()) == 56  # the auto-deploy rule
    assert lengths[f"per-tool limit {'k' * 39}0"] == 55  # 'per-tool limit ' and a key of 40, the longest a Name allows
    assert all(over(r) == [] for r in planned)


def _policy_resource(rules: list[dict], type_: str = POLICY) -> dict:
    return {"urn": f"urn:pulumi:dev::p::{type_}::edge", "type": type_, "name": "edge", "parent": None, "custom": True,
            "inputs": {"rules": rules} if type_ == POLICY else rules[0]}


def test_the_plan_rule_refuses_a_rule_over_a_limit_from_any_program():
    long = {"priority": 5, "description": "mine", "action": "deny(403)",
            "match": {"expr": {"expression": "request.path.matches('" + "p" * 1100 + "')"}}}
    fine = {"priority": 6, "description": "d" * 64, "action": "allow",
            "match": {"expr": {"expression": "request.path.startsWith('/a')"}}}
    unknown = {"priority": 7, "description": UNKNOWN, "action": "allow", "match": {"expr": {"expression": UNKNOWN}}}
    found = check_resources([_policy_resource([long, fine, unknown])], production=False)
    assert [(v.rule, v.message.split(";")[0]) for v in found] == [
        ("cloud-armor-rule-limits", "rule 5: subexpression of 1124 characters (request.path.matches('pppppppppppppppppp...)")]
    standalone = _policy_resource([{**fine, "description": "d" * 65}], SECURITY_POLICY_RULE)
    assert [v.message for v in check_resources([standalone], production=False)] == [
        "rule 6: description of 65 characters; Cloud Armor allows 64 (https://cloud.google.com/armor/docs/best-practices)"]


def test_no_stack_breaks_the_plan_rule():
    for stack in ("dev", "staging", "prod"):
        document = plan_document(stack)
        assert any(r["type"] == POLICY for r in document["resources"])
        assert [v for v in check_plan(document) if v.rule == "cloud-armor-rule-limits"] == []


# --- one under, one over --------------------------------------------------------------------------

def _origins(last: int) -> list[str]:
    """25 origins, the last with a first label of ``last`` letters."""
    return [f"https://app{i:02d}.example.com" for i in range(MAX_ORIGINS - 1)] + [f"https://{'o' * last}.example.com"]


def _hosts(last: int) -> list[str]:
    """Three hosts of 251 characters and one with a third label of ``last`` letters."""
    long = ".".join(["x" * 59] * 4) + ".example.com"
    return [f"h{i}{long[2:]}" for i in range(3)] + [f"{'y' * 60}.{'y' * 60}.{'z' * last}.example.com"]


def _boundary(measure, limit: int) -> int:
    """The ``n`` at which ``measure(n) == limit``, where ``measure`` grows by one per step of ``n``."""
    n = 1 + limit - measure(1)
    assert measure(n) == limit and measure(n + 1) == limit + 1
    return n


def _origin_check(origins: list[str]) -> int:
    return len(origin_check(rule(scope_rules(EdgeScopeArgs(edge={"allowed_origins": origins}), FIRST_SCOPE), ORIGIN)))


def _host_check(hosts: list[str]) -> int:
    scope = EdgeScopeArgs(edge={"allowed_origins": []}, hosts=hosts, scoped=True)
    return len(operands(rule(scope_rules(scope, FIRST_SCOPE), ORIGIN))[0])


ORIGINS_AT_LIMIT = _boundary(lambda n: _origin_check(_origins(n)), MAX_SUBEXPRESSION_CHARS)
HOSTS_AT_LIMIT = _boundary(lambda n: _host_check(_hosts(n)), MAX_SUBEXPRESSION_CHARS)


def test_an_origin_check_of_1024_characters_ships_and_one_of_1025_is_refused():
    planned = policy(tools=EdgeScopeArgs(edge={"allowed_origins": _origins(ORIGINS_AT_LIMIT)}))
    assert len(origin_check(rule(planned, ORIGIN))) == 1024 and all(over(r) == [] for r in planned)
    with pytest.raises(SettingsError) as refused:
        policy(tools=EdgeScopeArgs(edge={"allowed_origins": _origins(ORIGINS_AT_LIMIT + 1)}))
    assert refused.value.problems == [("scopes.tools.edge.allowedOrigins", (
        f"its 25 origins need a Cloud Armor subexpression of 1025 characters (escapes included); Cloud Armor allows "
        f"1024 per subexpression ({LIMITS}): list fewer or shorter origins"))]


def test_a_realistic_list_of_25_origins_is_already_over():
    origins = [f"https://customer-{i:02d}.apps.example.com" for i in range(MAX_ORIGINS)]  # 36 characters each
    with pytest.raises(SettingsError) as refused:
        policy(tools=EdgeScopeArgs(edge={"allowed_origins": origins}))
    assert keys(refused.value) == ["scopes.tools.edge.allowedOrigins"]
    assert "subexpression of 1168 characters" in refused.value.problems[0][1]


def test_a_host_check_of_1024_characters_ships_and_one_of_1025_is_refused():
    scope = EdgeScopeArgs(edge={"allowed_origins": []}, hosts=_hosts(HOSTS_AT_LIMIT), scoped=True)
    planned = policy(notes=scope, other=EdgeScopeArgs(hosts=["other.example.com"], scoped=True))
    assert len(operands(rule(planned, ORIGIN))[0]) == 1024 and all(over(r) == [] for r in planned)
    with pytest.raises(SettingsError) as refused:
        policy(notes=scope.model_copy(update={"hosts": _hosts(HOSTS_AT_LIMIT + 1)}),
               other=EdgeScopeArgs(hosts=["other.example.com"], scoped=True))
    assert refused.value.problems == [("scopes.notes.hosts", (
        f"its 4 hosts need a Cloud Armor subexpression of 1025 characters (escapes included); Cloud Armor allows 1024 "
        f"per subexpression ({LIMITS}): give the service fewer or shorter hosts, or split it in two"))]


def test_default_origins_from_many_hosts_are_refused_under_allowed_origins():
    hosts = [f"tenant-{i:03d}.mcp.example.com" for i in range(40)]
    with pytest.raises(SettingsError) as refused:
        policy(tools=EdgeScopeArgs(hosts=hosts))
    assert keys(refused.value) == ["scopes.tools.edge.allowedOrigins"]
    assert refused.value.problems[0][1].startswith("unset, it is https://HOST for each of the 40 hosts served, which need")
    policy(tools=EdgeScopeArgs(edge={"allowed_origins": ["https://app.example.com"]}, hosts=hosts))


def test_a_method_check_of_1024_characters_ships_and_one_of_1025_is_refused():
    def gate(n):
        scope = EdgeScopeArgs(hosts=["t.example.com"], routed_methods=["tools/call", "x" * n])
        return len(operands(rule(scope_rules(scope, FIRST_SCOPE), GATE))[1])

    n = _boundary(gate, MAX_SUBEXPRESSION_CHARS)
    policy(tools=EdgeScopeArgs(hosts=["t.example.com"], routed_methods=["tools/call", "x" * n]))
    with pytest.raises(SettingsError) as refused:
        policy(tools=EdgeScopeArgs(hosts=["t.example.com"], routed_methods=["tools/call", "x" * (n + 1)]))
    assert keys(refused.value) == ["scopes.tools.routedMethods"]
    assert refused.value.problems[0][1].startswith("the 2 methods gated on MCP-Protocol-Version (method routes and "
                                                   "per-tool limits) need a Cloud Armor subexpression of 1025 characters")


def test_an_expression_of_2048_characters_ships_and_one_of_2049_is_refused():
    hosts = _hosts(HOSTS_AT_LIMIT - 20)  # a host check of 1004 characters

    def length(n):
        scope = EdgeScopeArgs(edge={"allowed_origins": _origins(n)}, hosts=hosts, scoped=True, oauth_metadata=True)
        return len(rule(scope_rules(scope, FIRST_SCOPE), ORIGIN))

    n = _boundary(length, MAX_EXPRESSION_CHARS)
    planned = policy(api=EdgeScopeArgs(edge={"allowed_origins": _origins(n)}, hosts=hosts, scoped=True,
                                       oauth_metadata=True))
    assert len(rule(planned, ORIGIN)) == 2048 and max(len(p) for p in operands(rule(planned, ORIGIN))) < 1024
    with pytest.raises(SettingsError) as refused:
        policy(api=EdgeScopeArgs(edge={"allowed_origins": _origins(n + 1)}, hosts=hosts, scoped=True,
                                 oauth_metadata=True))
    assert keys(refused.value) == ["scopes.api.edge.allowedOrigins"]
    assert refused.value.problems[0][1] == (
        f"its 25 origins make the rule '{ORIGIN}' an expression of 2049 characters with its other conditions (the host "
        f"check: 1004); Cloud Armor allows 2048 per expression ({LIMITS}): list fewer or shorter origins")


# --- the stack file -------------------------------------------------------------------------------

def test_a_stack_refuses_an_origin_list_over_the_limit_under_its_key():
    config = copy.deepcopy(BASE)
    config[NS + "services"]["tools"]["edge"] = {"allowedOrigins": _origins(ORIGINS_AT_LIMIT)}
    assert problems(config) == []
    config[NS + "services"]["tools"]["edge"] = {"allowedOrigins": _origins(ORIGINS_AT_LIMIT + 1)}
    assert problems(config) == [(NS + "services.tools.edge.allowedOrigins", (
        f"its 25 origins need a Cloud Armor subexpression of 1025 characters (escapes included); Cloud Armor allows "
        f"1024 per subexpression ({LIMITS}): list fewer or shorter origins"))]


def test_a_stack_refuses_mesh_hosts_over_the_limit_of_the_gateways_shared_policy_under_their_key():
    config = copy.deepcopy(BASE)
    notes = config[NS + "meshServices"]["notes"]
    notes["edge"] = {"allowedOrigins": ["https://notes.example.com"]}
    for last, expected in ((HOSTS_AT_LIMIT, []), (HOSTS_AT_LIMIT + 1, [NS + "meshServices.notes.hosts"])):
        notes["hosts"] = _hosts(last)
        config[NS + "loadBalancer"]["certificates"]["notes"] = _hosts(last)
        assert [key for key, _ in problems(config)] == expected
    assert "its 4 hosts need a Cloud Armor subexpression of 1025 characters" in problems(config)[0][1]


def test_a_stack_names_method_routes_for_the_routed_methods():
    scope = EdgeScopeArgs(hosts=["t.example.com"], routed_methods=["tools/call", "x" * 1100])
    assert [key for key, _ in service_limit_faults(scope)] == ["methodRoutes"]


# --- every setting the types allow ----------------------------------------------------------------

_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", fullmatch=True) | st.integers(1, 63).map(lambda n: "l" * n)
_DOMAIN = st.builds(lambda labels, tld: ".".join([*labels, tld]), st.lists(_LABEL, min_size=1, max_size=4),
                    st.from_regex(r"[a-z]{2,6}", fullmatch=True)).filter(lambda d: len(d) <= 253)
_ORIGIN = st.builds(lambda scheme, domain, port: f"{scheme}://{domain}{port}", st.sampled_from(["https", "http"]),
                    _DOMAIN, st.sampled_from(["", ":8443"]))
_METHOD = st.builds(lambda method, n: method + "x" * n, st.sampled_from(sorted(KNOWN_METHODS)), st.integers(0, 700))
_SCOPE = st.fixed_dictionaries({
    "hosts": st.lists(_DOMAIN, max_size=5, unique=True),
    "scoped": st.booleans(),
    "oauth_metadata": st.booleans(),
    "routed_methods": st.lists(_METHOD, max_size=3),
    "edge": st.fixed_dictionaries({
        "allowed_origins": st.none() | st.lists(_ORIGIN, max_size=MAX_ORIGINS),
        "require_method_header": st.booleans(),
        "method_limits": st.dictionaries(st.sampled_from(["a", "b"]), st.builds(
            lambda m, name: {"method": m, "name": name, "requests": 5}, st.sampled_from(sorted(KNOWN_METHODS)),
            st.none() | st.from_regex(r"[A-Za-z0-9_./-]{1,128}", fullmatch=True)), max_size=2),
        "waf": st.fixed_dictionaries({"enabled": st.booleans()})}),
})


def _over_keys(key: str, scope: EdgeScopeArgs) -> set[str]:
    """The settings of ``scope`` that the measure above finds over a limit in its rules."""
    found = set()
    for planned in scope_rules(scope, FIRST_SCOPE):
        expression = planned["match"]["expr"]["expression"]
        for part in operands(expression):
            if len(part) > MAX_SUBEXPRESSION_CHARS:
                found.add("hosts" if "['host']" in part[:30] else "edge.allowedOrigins" if "['origin']" in part[:30]
                          else "routedMethods")
        if len(expression) > MAX_EXPRESSION_CHARS:
            found.add({ORIGIN: "edge.allowedOrigins", GATE: "routedMethods"}.get(planned["description"], "hosts"))
        assert over(planned) == [] or len(expression) > MAX_EXPRESSION_CHARS or found, planned
    return {f"scopes.{key}.{place}" for place in found}


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.sampled_from(["api", "notes", "tools"]), _SCOPE, min_size=1, max_size=3))
def test_every_policy_is_within_every_limit_or_refused_under_the_settings_that_make_it_too_long(scopes):
    made = {key: EdgeScopeArgs(**values) for key, values in scopes.items()}
    expected = set().union(*(_over_keys(key, scope) for key, scope in made.items()))
    try:
        planned = policy_rules(EdgePolicyArgs(prefix="p", scopes=made))
    except SettingsError as refused:
        event("refused")
        assert expected and set(keys(refused)) == expected, refused
        assert all(LIMITS in message and "allows" in message for _, message in refused.problems)
        return
    event("shipped")
    assert not expected
    assert all(over(r) == [] for r in planned)
