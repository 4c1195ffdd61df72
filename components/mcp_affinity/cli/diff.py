"""Compare two plans of one stack (BASE, HEAD): resources added, removed and changed, and outputs.

A plan is the dict ``mcp-affinity plan --json`` writes::

    {"project": str, "stack": str, "outputs": {name: value},
     "resources": [{"urn", "type", "name", "parent", "custom", "inputs": {camelCase: value}}]}

Resources are matched by URN, as the engine matches them: a new type, name or parent is a new URN,
so it shows as one removal and one addition, like the replacement ``pulumi up`` would do.
Values are shown with :func:`render.show`; a secret envelope is a single leaf whose plaintext is
compared but never shown, so a plan file holding plaintext secrets cannot leak them into a comment.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from typing import Any, Optional

from .render import show
from .wire import MASKED, SECRET_SIG

UNSET = "(unset)"
# The plain side of a value that became, or stopped being, secret: it may be the secret itself.
HIDDEN = "(not secret, hidden)"
_MISSING = object()


@dataclass(frozen=True)
class PropertyChange:
    """One leaf that differs: ``path`` dotted (``template.containers.0.image``); ``old`` and
    ``new`` as shown to people ("[secret]", "(known after apply)", "(unset)" when absent)."""

    path: str
    old: str
    new: str

    def __str__(self) -> str:
        return f"{self.path}: {self.old} -> {self.new}"


@dataclass(frozen=True)
class ResourceRef:
    """A resource added or removed: its URN, type token and logical name."""

    urn: str
    type: str
    name: str


@dataclass(frozen=True)
class ResourceChange(ResourceRef):
    """A resource in both plans whose inputs differ; ``changes`` sorted by path."""

    changes: tuple[PropertyChange, ...] = ()


@dataclass(frozen=True)
class PlanDiff:
    """BASE -> HEAD for one stack; every tuple sorted by URN (resources) or path (outputs)."""

    project: str
    stack: str
    added: tuple[ResourceRef, ...] = ()
    removed: tuple[ResourceRef, ...] = ()
    changed: tuple[ResourceChange, ...] = ()
    outputs_changed: tuple[PropertyChange, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.outputs_changed)


def diff_plans(base: dict, head: dict) -> PlanDiff:
    """Diff two plan dicts; ``ValueError`` if they are of different projects or stacks."""
    for key in ("project", "stack"):
        if base.get(key) != head.get(key):
            raise ValueError(f"cannot diff plans of different {key}s: base is {base.get(key)!r}, "
                             f"head is {head.get(key)!r}; compare two plans of the same stack")
    old, new = _by_urn(base, "base"), _by_urn(head, "head")
    changed = []
    for urn in sorted(old.keys() & new.keys()):
        changes = diff_properties(old[urn].get("inputs") or {}, new[urn].get("inputs") or {})
        if changes:
            changed.append(ResourceChange(urn, new[urn]["type"], new[urn]["name"], changes))
    return PlanDiff(
        project=base["project"], stack=base["stack"],
        added=tuple(_ref(new[urn]) for urn in sorted(new.keys() - old.keys())),
        removed=tuple(_ref(old[urn]) for urn in sorted(old.keys() - new.keys())),
        changed=tuple(changed),
        outputs_changed=diff_properties(base.get("outputs") or {}, head.get("outputs") or {}),
    )


def diff_properties(old: dict, new: dict) -> tuple[PropertyChange, ...]:
    """Leaf-by-leaf changes between two property bags, sorted by path (list indexes numerically)."""
    before, after = _leaves(old), _leaves(new)
    changes = []
    for path in sorted(before.keys() | after.keys(), key=_path_key):
        a, b = before.get(path, _MISSING), after.get(path, _MISSING)
        if not _same(a, b):
            changes.append(PropertyChange(".".join(map(str, path)), _shown(a, b), _shown(b, a)))
    return tuple(changes)


def summary(diff: PlanDiff) -> str:
    """``"2 to add, 1 to change, 0 to delete"``, or ``"No changes."``."""
    if diff.is_empty:
        return "No changes."
    return f"{len(diff.added)} to add, {len(diff.changed)} to change, {len(diff.removed)} to delete"


def to_text(diff: PlanDiff) -> str:
    """Plain text, one line per resource (``+``/``~``/``-``) and one per changed property."""
    lines = [f"Plan diff for {diff.project} / stack {diff.stack}", summary(diff)]
    lines += [f"+ {r.type} {r.name}" for r in diff.added]
    for change in diff.changed:
        lines.append(f"~ {change.type} {change.name}")
        lines += [f"    {c}" for c in change.changes]
    lines += [f"- {r.type} {r.name}" for r in diff.removed]
    if diff.outputs_changed:
        lines += ["Outputs:"] + [f"    {c}" for c in diff.outputs_changed]
    return "\n".join(lines) + "\n"


def to_markdown(diff: PlanDiff, title: Optional[str] = None) -> str:
    """GitHub Markdown for a pull-request comment: heading, summary, a table of resources, then a
    collapsed ``<details>`` of property changes per changed resource, then changed outputs."""
    heading = title or f"Plan diff: stack `{diff.stack}` ({diff.project})"
    lines = [f"### {heading}", "", f"**{summary(diff)}**"]
    if diff.added or diff.changed or diff.removed:
        lines += ["", "| Action | Type | Name |", "| --- | --- | --- |"]
        for action, refs in (("add", diff.added), ("change", diff.changed), ("delete", diff.removed)):
            lines += [f"| {action} | {_code(r.type)} | {_code(r.name)} |" for r in refs]
    for change in diff.changed:
        count = f"{len(change.changes)} propert{'y' if len(change.changes) == 1 else 'ies'}"
        lines += ["", "<details>", f"<summary>change <code>{html.escape(change.type)}</code> "
                  f"<code>{html.escape(change.name)}</code>: {count}</summary>", ""]
        lines += _change_table("Property", change.changes) + ["", "</details>"]
    if diff.outputs_changed:
        lines += ["", "**Outputs**", ""] + _change_table("Output", diff.outputs_changed)
    return "\n".join(lines) + "\n"


def _by_urn(plan: dict, which: str) -> dict[str, dict]:
    if not isinstance(plan.get("resources"), list):
        raise ValueError(f"{which} is not a plan: expected keys project, stack, resources, outputs")
    resources = {r["urn"]: r for r in plan["resources"]}
    if len(resources) != len(plan["resources"]):
        raise ValueError(f"{which} plan lists a URN twice")
    return resources


def _ref(resource: dict) -> ResourceRef:
    return ResourceRef(resource["urn"], resource["type"], resource["name"])


def _leaves(bag: dict) -> dict[tuple, Any]:
    """Path (keys and list indexes) -> leaf; empty containers and secret envelopes are leaves."""
    leaves: dict[tuple, Any] = {}

    def walk(value: Any, path: tuple) -> None:
        if isinstance(value, dict) and value and SECRET_SIG not in value:
            for key, item in value.items():
                walk(item, path + (key,))
        elif isinstance(value, list) and value:
            for index, item in enumerate(value):
                walk(item, path + (index,))
        else:
            leaves[path] = value

    for key, value in bag.items():
        walk(value, (key,))
    return leaves


def _path_key(path: tuple) -> tuple:
    # Numbers before names, and 10 after 9: never compare an int with a str.
    return tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in path)


def _is_secret(value: Any) -> bool:
    return isinstance(value, dict) and SECRET_SIG in value


def _same(a: Any, b: Any) -> bool:
    if a is _MISSING or b is _MISSING:
        return a is b
    if _is_secret(a) or _is_secret(b):
        return _is_secret(a) and _is_secret(b) and _canon(a.get("value")) == _canon(b.get("value"))
    return _canon(a) == _canon(b)


def _canon(value: Any) -> str:
    """JSON text in which 2 and 2.0 agree (the engine sends floats) but true and 1 do not."""
    def norm(v: Any) -> Any:
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        return [norm(x) for x in v] if isinstance(v, list) else v
    return json.dumps(norm(value), sort_keys=True)


def _shown(value: Any, other: Any) -> str:
    if value is _MISSING:
        return UNSET
    if _is_secret(value):
        return MASKED
    if _is_secret(other):
        return HIDDEN
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "{}"  # only empty dicts are leaves
    return '""' if value == "" else show(value)


def _code(text: str) -> str:
    """A GFM table cell code span: pipes escaped, fence longer than any backtick run inside."""
    text = text.replace("\n", "\\n").replace("|", "\\|")
    fence = "`" * (1 + max((len(run) for run in re.findall(r"`+", text)), default=0))
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _change_table(header: str, changes: tuple[PropertyChange, ...]) -> list[str]:
    rows = [f"| {_code(c.path)} | {_code(c.old)} | {_code(c.new)} |" for c in changes]
    return [f"| {header} | Before | After |", "| --- | --- | --- |", *rows]
