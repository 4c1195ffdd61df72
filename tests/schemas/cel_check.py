"""CRD ``x-kubernetes-validations`` rules, evaluated with cel-python as the API server does on create.

Semantics (Kubernetes docs "Validation rules", k8s.io/apiextensions-apiserver
``pkg/apiserver/schema/cel``): a rule runs at its schema node for each value present there (not
for absent or null values), with ``self`` bound to that value; a rule that mentions ``oldSelf`` is
a transition rule and does not run on create; false gives ``message`` (else
``messageExpression``, else ``failed rule: <rule>``), and an evaluation error (e.g. a missing
key) is an error too.

cel-python (PyPI ``cel-python``, ``celpy``) provides CEL itself, including ``matches`` with RE2 as
Kubernetes. The Kubernetes-specific parts the rules of our kinds use are added here:

- ``duration(string)``: Kubernetes CEL parses with Go's ``time.ParseDuration`` (units ns, us/µs,
  ms, s, m, h; no days; "0" alone allowed), where cel-python's own parser also takes "d". Values
  are truncated to microseconds (``datetime.timedelta``, cel-python's duration type): exact for
  comparisons with whole-microsecond constants such as ``duration('1ms')``.
- ``<string>.split(<string>)``: the Kubernetes strings extension library
  (k8s.io/apiserver ``pkg/cel/library``, cel-go ``ext.Strings``).
- ``url(<string>).getScheme()``: the Kubernetes URL library (``pkg/cel/library/urls.go``).

A rule calling any other function outside ``CEL_BUILTINS`` is reported as unsupported, never
skipped (``unsupported_functions``; the self-check test runs it over every stored rule).
"""

from __future__ import annotations

import functools
import re
import urllib.parse
from fractions import Fraction
from typing import Any, Iterator

import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel

GO_UNITS_NS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
               "h": 3600 * 10**9}
INT64_MAX = 2**63 - 1

# Functions and macros of CEL itself (cel-spec "List of Standard Definitions") that cel-python has.
CEL_BUILTINS = {
    "has", "all", "exists", "exists_one", "map", "filter", "size", "int", "uint", "double", "string",
    "bool", "bytes", "timestamp", "dyn", "type", "matches", "contains", "startsWith", "endsWith",
    "getHours", "getMinutes", "getSeconds", "getMilliseconds",
}


def parse_go_duration(text: str) -> int:
    """Nanoseconds of a Go duration string (``time.ParseDuration``); ValueError when invalid."""
    s, sign = text, 1
    if s[:1] in ("+", "-"):
        sign, s = (-1 if s[0] == "-" else 1), s[1:]
    if s == "0":
        return 0
    if not s:
        raise ValueError(f"time: invalid duration {text!r}")
    total = Fraction(0)
    while s:
        m = re.match(r"(\d*)(?:\.(\d*))?", s)
        whole, frac = m.group(1), m.group(2)
        if not whole and not frac:
            raise ValueError(f"time: invalid duration {text!r}")
        s = s[m.end():]
        u = re.match(r"[^\d.]*", s).group(0)
        if u not in GO_UNITS_NS:
            raise ValueError(f"time: {'missing' if not u else 'unknown'} unit {u!r} in duration {text!r}")
        s = s[len(u):]
        value = Fraction(int(whole or "0")) + (Fraction(int(frac), 10 ** len(frac)) if frac else 0)
        total += value * GO_UNITS_NS[u]
    ns = int(total)  # Go truncates the fraction
    if ns > INT64_MAX:
        raise ValueError(f"time: invalid duration {text!r}")
    return sign * ns


def k8s_duration(value: Any) -> celtypes.DurationType:
    if isinstance(value, celtypes.DurationType):
        return value
    if not isinstance(value, str):
        raise TypeError(f"duration() takes a string, not {type(value).__name__}")
    ns = parse_go_duration(str(value))
    return celtypes.DurationType(ns // 10**9, ns % 10**9)  # floor to microseconds


def k8s_split(value: Any, sep: Any) -> celtypes.ListType:
    return celtypes.ListType([celtypes.StringType(x) for x in str(value).split(str(sep))])


def k8s_url(value: Any) -> celtypes.StringType:
    """``url(string)``: Go's ``url.ParseRequestURI`` accepts an absolute URI or an absolute path;
    anything else is an error (k8s.io/apiserver ``pkg/cel/library/urls.go``)."""
    text = str(value)
    parsed = urllib.parse.urlsplit(text)
    if not (parsed.scheme or text.startswith("/")) or any(c.isspace() for c in text):
        raise ValueError(f"URL parse error during conversion from string: {text!r}")
    return celtypes.StringType(text)


def k8s_is_url(value: Any) -> celtypes.BoolType:
    """``isURL(string)``: whether ``url(string)`` would parse it (k8s.io/apiserver ``pkg/cel/library/urls.go``)."""
    try:
        k8s_url(value)
    except ValueError:
        return celtypes.BoolType(False)
    return celtypes.BoolType(True)


def k8s_get_scheme(value: Any) -> celtypes.StringType:
    """``<URL>.getScheme()``: the scheme, empty for a path."""
    return celtypes.StringType(urllib.parse.urlsplit(str(value)).scheme)


K8S_FUNCTIONS = {"duration": k8s_duration, "split": k8s_split, "url": k8s_url, "isURL": k8s_is_url,
                 "getScheme": k8s_get_scheme}

_STRING = re.compile(r"""[rR]?(\"\"\"[\s\S]*?\"\"\"|'''[\s\S]*?'''|"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')""")


def functions_called(rule: str) -> set[str]:
    return set(re.findall(r"\b([A-Za-z_]\w*)\s*\(", _STRING.sub('""', rule)))


def unsupported_functions(rule: str) -> set[str]:
    return functions_called(rule) - CEL_BUILTINS - set(K8S_FUNCTIONS)


@functools.lru_cache(maxsize=None)
def program(rule: str):
    env = celpy.Environment()
    return env.program(env.compile(rule), functions=K8S_FUNCTIONS)


def evaluate(rule: str, value: Any) -> tuple[bool, str | None]:
    """(passed, evaluation error or None) of ``rule`` with ``self`` = ``value``."""
    missing = unsupported_functions(rule)
    if missing:
        return False, f"rule uses CEL functions the checker does not implement: {sorted(missing)}"
    try:
        result = program(rule).evaluate({"self": json_to_cel(value)})
    except celpy.CELEvalError as exc:
        return False, f"rule evaluation error: {_describe(exc)}"
    if isinstance(result, celpy.CELEvalError):
        return False, f"rule evaluation error: {_describe(result)}"
    return bool(result), None


def _describe(error: celpy.CELEvalError) -> str:
    """cel-python wraps an exception of a function as (summary, class, its args): show its args."""
    args = error.args
    if len(args) >= 3 and args[2]:
        return str(args[2][0]) if isinstance(args[2], tuple) else str(args[2])
    return str(args[0]) if args else repr(error)


def _tokens(path: str) -> list[str]:
    return [] if path == "." else re.findall(r"\[\]|\{\}|[^.\[\]{}]+", path)


def nodes(value: Any, tokens: list[str], at: list | None = None) -> Iterator[tuple[list, Any]]:
    """Each (concrete path, value) that a rule path (``a.b[].c{}``) reaches in ``value``."""
    at = at or []
    if value is None:
        return
    if not tokens:
        yield at, value
        return
    head, rest = tokens[0], tokens[1:]
    if head == "[]" and isinstance(value, list):
        for i, item in enumerate(value):
            yield from nodes(item, rest, at + [i])
    elif head == "{}" and isinstance(value, dict):
        for k, item in value.items():
            yield from nodes(item, rest, at + [k])
    elif isinstance(value, dict) and head in value:
        yield from nodes(value[head], rest, at + [head])


def check(obj: dict, rules: list[dict]) -> list[tuple[list, str]]:
    """(concrete path, message) for each rule that fails on ``obj`` (a create: no ``oldSelf``)."""
    out = []
    for r in rules:
        if re.search(r"\boldSelf\b", r["rule"]):
            continue
        for at, value in nodes(obj, _tokens(r["path"])):
            ok, error = evaluate(r["rule"], value)
            if ok:
                continue
            message = r.get("message")
            if not message and r.get("messageExpression"):
                try:
                    message = str(program(r["messageExpression"]).evaluate({"self": json_to_cel(value)}))
                except celpy.CELEvalError:
                    message = None
            message = message or f"failed rule: {r['rule']}"
            where = at + ([r["fieldPath"].lstrip(".")] if r.get("fieldPath") else [])
            shown = f"Invalid value: {value!r}: " if not isinstance(value, (dict, list)) else ""
            detail = f" ({error})" if error else ""
            out.append((where, f"{shown}{message}{detail} [rule: {r['rule']}]"))
    return out
