"""Compare two plans of one stack (BASE, HEAD) and say what ``pulumi up`` would do.

Input: two plans as :func:`plan_file.validate` returns them (see :mod:`.plan_file` for the shape).
Resources are matched by URN, as the engine matches them: a new type, name or parent is a new URN,
so it shows as one deletion and one addition, unless one of the HEAD resource's ``aliases`` is the
BASE's URN (the engine then moves the resource: :func:`moves`). A matched resource is

- **replaced** when a changed input is create-only for its type (:mod:`.replacements`, each type
  with its source) or listed in its ``replaceOnChanges`` option; replacing a stateful resource
  (the store, the cluster, its node pool, a secret) is flagged at the top, as is deleting one;
- **updated** when other inputs (or recorded options) change;
- unchanged when every changed input falls under its ``ignoreChanges`` option: Pulumi keeps the
  old value, so such changes are listed as ignored and not counted.

Lists are compared by the identity of their items where one is known (:data:`IDENTITY`: URL-map
host rules by host, path matchers by name, backends by group, env vars by name, ...), so removing
one item does not show every later item as changed; an item's path then reads
``hostRules[tools.example.com].pathMatcher``. Lists without a known, unique identity compare by
position (``containers.0.image``). Added resources are shown with their key settings
(:data:`render.HIGHLIGHTS`).

An input naming another planned resource is compared and shown as that resource (``backend
service tools``, :mod:`mcp_affinity.references`), so a route that now ends at another backend shows;
:func:`access_changes` gives the head's access map with its changed routes marked.

Values are shown with :func:`render.show`; a secret envelope is a single leaf whose plaintext is
compared but never shown, so a plan file holding plaintext secrets cannot leak them into a comment.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Optional

from . import replacements
from .render import access_lines, key_settings, show
from .. import impact
from ..references import Index, resolved_inputs
from ..wire import MASKED, SECRET_SIG, UNKNOWNS

UNSET = "(unset)"
# The plain side of a value that became, or stopped being, secret: it may be the secret itself.
HIDDEN = "(not secret, hidden)"
_MISSING = object()

IDENTITY: dict[str, str] = {
    "hostRules": "hosts", "pathMatchers": "name", "pathRules": "paths", "routeRules": "priority",
    "backends": "group", "envs": "name", "env": "name", "containers": "name", "ports": "name",
    "volumes": "name", "volumeMounts": "mountPath", "secondaryIpRanges": "rangeName", "http": "name",
    "weeklyMaintenanceWindows": "day", "networkInterfaces": "subnetwork", "servers": "port",
    "rules": "priority", "jwtRules": "issuer",
}
"""List name -> the field that identifies an item (a list field joins its sorted values).
Lists of objects not named here are matched by ``name`` when every item has a distinct one.
URL-map route rules that match headers are matched by those matches instead (:func:`_rule_match`)."""

SETS = frozenset({"domains", "hosts", "sourceRanges", "nodeLocations", "oauthScopes", "paths", "gateways",
                  "reservedPeeringRanges", "dependsOn", "ignoreChanges", "replaceOnChanges"})
"""Lists of plain values whose order means nothing: items matched by value."""


@dataclass(frozen=True)
class PropertyChange:
    """One leaf that differs: ``path`` as shown (``template.containers.0.image``,
    ``envs[MCP_SESSION_HEADER].value``); ``old`` and ``new`` as shown to people ("[secret]",
    "(known after apply)", "(unset)" when absent); ``replaces``: the create-only path it falls
    under; ``ignored``: the ``ignoreChanges`` entry that hides it."""

    path: str
    old: str
    new: str
    replaces: Optional[str] = None
    ignored: Optional[str] = None

    @property
    def note(self) -> str:
        if self.ignored:
            return f"ignored (ignoreChanges {self.ignored})"
        return f"forces replacement ({self.replaces} is create-only)" if self.replaces else ""

    def __str__(self) -> str:
        return f"{self.path}: {self.old} -> {self.new}" + (f"  [{self.note}]" if self.note else "")


@dataclass(frozen=True)
class ResourceRef:
    """A resource added or removed: its URN, type token, logical name; ``settings`` (added ones):
    ``key=value`` strings a reviewer checks."""

    urn: str
    type: str
    name: str
    settings: tuple[str, ...] = ()


@dataclass(frozen=True)
class ResourceChange(ResourceRef):
    """A resource in both plans that differs. ``action``: ``replace``, ``update`` or ``ignored``
    (every change ignored); ``changes`` in path order; ``source``: where the create-only fact is
    stated; ``delete_first``: the ``deleteBeforeReplace`` option."""

    changes: tuple[PropertyChange, ...] = ()
    action: str = "update"
    source: Optional[str] = None
    delete_first: bool = False

    @property
    def counted(self) -> tuple[PropertyChange, ...]:
        return tuple(c for c in self.changes if not c.ignored)


@dataclass(frozen=True)
class PlanDiff:
    """BASE -> HEAD for one stack; every tuple sorted by URN (resources) or path (outputs).
    ``changed`` holds updates, replacements and resources whose every change is ignored;
    ``warnings``: the HEAD program's warnings as ``"name: message"`` lines."""

    project: str
    stack: str
    added: tuple[ResourceRef, ...] = ()
    removed: tuple[ResourceRef, ...] = ()
    changed: tuple[ResourceChange, ...] = ()
    outputs_changed: tuple[PropertyChange, ...] = ()
    warnings: tuple[str, ...] = ()
    review: impact.Review = impact.Review()
    """What the changes do to live sessions and to who may call (:mod:`mcp_affinity.impact`)."""

    def of(self, action: str) -> tuple[ResourceChange, ...]:
        return tuple(c for c in self.changed if c.action == action)

    @property
    def updated(self) -> tuple[ResourceChange, ...]:
        return self.of("update")

    @property
    def replaced(self) -> tuple[ResourceChange, ...]:
        return self.of("replace")

    @property
    def ignored(self) -> tuple[ResourceChange, ...]:
        return self.of("ignored")

    @property
    def is_empty(self) -> bool:
        """True when ``up`` would change nothing (ignored changes do not count)."""
        return not (self.added or self.removed or self.updated or self.replaced or self.outputs_changed)

    def stateful(self) -> list[str]:
        """One line per stateful resource replaced or deleted, saying what is lost."""
        lines = [f"replaces {r.type} {r.name}: {replacements.STATEFUL[r.type]}"
                 for r in self.replaced if r.type in replacements.STATEFUL]
        return lines + [f"deletes {r.type} {r.name}: {replacements.STATEFUL[r.type]}"
                        for r in self.removed if r.type in replacements.STATEFUL]


def diff_plans(base: dict, head: dict) -> PlanDiff:
    """Diff two validated plans; ``ValueError`` if they are of different projects or stacks."""
    for key in ("project", "stack"):
        if base.get(key) != head.get(key):
            raise ValueError(f"cannot diff plans of different {key}s: base is {base.get(key)!r}, "
                             f"head is {head.get(key)!r}; compare two plans of the same stack")
    old, new = _resolved(_by_urn(base, "base")), _resolved(_by_urn(head, "head"))
    moved = moves(old, new)
    pairs = sorted([(urn, urn) for urn in old.keys() & new.keys()] + list(moved.items()), key=lambda p: p[1])
    changed = [change for before, after in pairs if (change := diff_resource(old[before], new[after])) is not None]
    names = {urn: r["name"] for urn, r in new.items()}
    added = sorted(new.keys() - old.keys() - set(moved.values()))
    removed = sorted(old.keys() - new.keys() - moved.keys())
    return PlanDiff(
        project=base["project"], stack=base["stack"],
        added=tuple(_ref(new[urn], settings=True) for urn in added),
        removed=tuple(_ref(old[urn]) for urn in removed),
        changed=tuple(changed),
        outputs_changed=diff_properties(base.get("outputs") or {}, head.get("outputs") or {}),
        warnings=tuple(f"{names.get(w.get('urn'), 'stack')}: {w['message']}" for w in head.get("warnings") or []),
        review=impact.review(_steps(old, new, added, removed, changed, moved), list(old.values()), list(new.values())),
    )


def _steps(old: dict, new: dict, added: list[str], removed: list[str], changed: list["ResourceChange"],
           moved: dict[str, str]) -> Iterator[impact.Change]:
    """The changes ``up`` makes, as :mod:`mcp_affinity.impact` reads them (ignored ones left out);
    ``moved``: BASE URN -> HEAD URN of the resources that only moved (:func:`moves`)."""
    before = {after: base for base, after in moved.items()}
    for urn in added:
        yield impact.Change(urn, new[urn]["type"], "create", (), None, _dict(new[urn].get("inputs")))
    for urn in removed:
        yield impact.Change(urn, old[urn]["type"], "delete", (), _dict(old[urn].get("inputs")), None)
    for change in changed:
        if change.action != "ignored":
            yield impact.Change(change.urn, change.type, change.action, tuple(c.path for c in change.counted),
                                _dict(old[before.get(change.urn, change.urn)].get("inputs")),
                                _dict(new[change.urn].get("inputs")))


def moves(old: dict[str, dict], new: dict[str, dict]) -> dict[str, str]:
    """BASE URN -> HEAD URN for each resource that only moved: a HEAD resource absent from BASE
    whose ``aliases`` name a BASE URN that HEAD no longer has (the engine updates such a resource
    in place instead of deleting and creating it;
    https://www.pulumi.com/docs/iac/operations/stack-management/refactoring-with-aliases/)."""
    return {alias: urn for urn, resource in new.items() if urn not in old
            for alias in resource.get("aliases") or [] if alias in old and alias not in new}


def diff_resource(old: dict, new: dict) -> Optional[ResourceChange]:
    """What ``up`` does to a resource in both plans, or None when nothing differs."""
    options = new.get("options") or {}
    paths, source = replacements.create_only(new["type"], new.get("inputs") if isinstance(new.get("inputs"), dict) else None)
    forced = tuple(_keys(p) for p in options.get("replaceOnChanges") or [])
    ignores = [(p, _parse(p)) for p in options.get("ignoreChanges") or []]
    changes = [_judge(c, raw, paths, forced, ignores)
               for c, raw in _diff(_dict(old.get("inputs")), _dict(new.get("inputs")), "", ())]
    if old.get("options") is not None and new.get("options") is not None:
        changes += [PropertyChange("(option) " + c.path, c.old, c.new)
                    for c, _ in _diff(_dict(old["options"]), _dict(new["options"]), "", ())]
    if not changes:
        return None
    counted = [c for c in changes if not c.ignored]
    action = "replace" if any(c.replaces for c in counted) else "update" if counted else "ignored"
    step = new.get("step") or {}
    if step.get("op") == "replace" and counted:  # the engine's word, in a real preview, beats our table
        action, source = "replace", f"pulumi preview (replaceReasons: {', '.join(step.get('replaceReasons') or []) or 'none given'})"
    return ResourceChange(new["urn"], new["type"], new["name"], (), tuple(changes), action,
                          source if action == "replace" else None, bool(options.get("deleteBeforeReplace")))


def diff_properties(old: dict, new: dict) -> tuple[PropertyChange, ...]:
    """Leaf-by-leaf changes between two property bags, lists matched by identity (see module doc)."""
    return tuple(change for change, _ in _diff(_dict(old), _dict(new), "", ()))


def summary(diff: PlanDiff) -> str:
    """``"2 to add, 1 to change, 1 to replace, 0 to delete"`` (plus ignored ones), or ``"No changes."``."""
    ignored = sum(len(c.changes) - len(c.counted) for c in diff.changed)
    note = f" ({ignored} ignored change{'s' if ignored != 1 else ''} not counted)" if ignored else ""
    if diff.is_empty:
        return "No changes." + note
    return (f"{len(diff.added)} to add, {len(diff.updated)} to change, {len(diff.replaced)} to replace, "
            f"{len(diff.removed)} to delete{note}")


def to_text(diff: PlanDiff, violations: Iterable[Any] = ()) -> str:
    """Plain text: stateful alarms, live sessions and who may call (:func:`review_lines`), the
    change rules' ``violations`` (:func:`policies.check_change`), summary, then
    ``+``/``-/+``/``~``/``=``/``-`` per resource."""
    lines = [f"Plan diff for {diff.project} / stack {diff.stack}"]
    lines += [f"!!! DATA LOSS: {line}" for line in diff.stateful()]
    lines += review_lines(diff.review)
    lines += [f"policy {v.enforcement} [{v.rule}] {v.message}" for v in violations]
    lines.append(summary(diff))
    for r in diff.added:
        lines.append(f"+ {r.type} {r.name}")
        lines += [f"    {s}" for s in r.settings]
    symbols = {"replace": "-/+", "update": "~", "ignored": "="}
    for change in diff.changed:
        extra = _why(change)
        lines.append(f"{symbols[change.action]} {change.type} {change.name}" + (f" ({extra})" if extra else ""))
        lines += [f"    {c}" for c in change.changes]
    lines += [f"- {r.type} {r.name}" for r in diff.removed]
    if diff.outputs_changed:
        lines += ["Outputs:"] + [f"    {c}" for c in diff.outputs_changed]
    if diff.warnings:
        lines += ["Warnings:"] + [f"    {w}" for w in diff.warnings]
    return "\n".join(lines) + "\n"


def review_lines(review: impact.Review) -> list[str]:
    """What ends live sessions, what drains them, what keeps them, then what changes who may call,
    per service: ``ends live sessions: tools (6 shard instances)``, ``drains live sessions: tools (6
    shard instances) for 30 min on generation 7; new sessions start on generation 8``, with its
    causes indented below."""
    lines = []
    for session in review.sessions:
        lines.append(session.headline())
        lines += [f"    {reason}" for reason in session.reasons]
    for service, changes in _access_by_service(review):
        lines.append(f"changes who may call: {service}")
        lines += [f"    {direction}: {text}" for direction, text in changes]
    return lines


def _access_by_service(review: impact.Review) -> list[tuple[str, list[tuple[str, str]]]]:
    """Per service, (direction, text) once each, ``(xN)`` when N resources make the same change
    (the IAP member of each shard's backend)."""
    grouped: dict[str, dict[tuple[str, str], int]] = {}
    for change in review.access:
        key = (change.direction.value, change.text)
        grouped.setdefault(change.service, {}).setdefault(key, 0)
        grouped[change.service][key] += 1
    return [(service, [(d, t + (f" (x{n})" if n > 1 else "")) for (d, t), n in found.items()])
            for service, found in grouped.items()]


def to_markdown(diff: PlanDiff, title: Optional[str] = None, violations: Iterable[Any] = ()) -> str:
    """GitHub Markdown for a pull-request comment: heading, a CAUTION block for stateful
    replacements or deletions, summary, a table of resources, then a collapsed ``<details>`` of
    property changes per changed resource, changed outputs and the program's warnings."""
    heading = title or f"Plan diff: stack `{diff.stack}` ({diff.project})"
    lines = [f"### {heading}", ""]
    if diff.stateful():
        lines += ["> [!CAUTION]", "> **Stateful resources are replaced or deleted:**"]
        lines += [f"> - {html.escape(line)}" for line in diff.stateful()] + [""]
    lines += _review_markdown(diff.review)
    lines += [f"- policy **{v.enforcement}** `{v.rule}`: {html.escape(v.message)}" for v in violations]
    lines += [""] if violations else []
    lines.append(f"**{summary(diff)}**")
    rows = [("add", r, " ".join(_code(s) for s in r.settings)) for r in diff.added]
    rows += [(c.action if c.action != "update" else "change", c, html.escape(_why(c) or _count(c)))
             for c in diff.changed]
    rows += [("delete", r, "") for r in diff.removed]
    if rows:
        lines += ["", "| Action | Type | Name | Details |", "| --- | --- | --- | --- |"]
        lines += [f"| {a} | {_code(r.type)} | {_code(r.name)} | {d} |".replace("|  |", "| |") for a, r, d in rows]
    for change in diff.changed:
        lines += ["", "<details>", f"<summary>{change.action if change.action != 'update' else 'change'} "
                  f"<code>{html.escape(change.type)}</code> <code>{html.escape(change.name)}</code>: "
                  f"{_count(change)}</summary>", ""]
        lines += _change_table("Property", change.changes) + ["", "</details>"]
    if diff.outputs_changed:
        lines += ["", "**Outputs**", ""] + _change_table("Output", diff.outputs_changed)
    if diff.warnings:
        lines += ["", "**Warnings**", ""] + [f"- {html.escape(w)}" for w in diff.warnings]
    return "\n".join(lines) + "\n"


def _review_markdown(review: impact.Review) -> list[str]:
    """Sessions ended (a warning), drained (a note), then kept, each with its causes; who may call."""
    lines = []
    for verdict, alert in ((impact.SessionVerdict.ENDS, "WARNING"), (impact.SessionVerdict.DRAINS, "NOTE")):
        if review.of(verdict):
            lines += [f"> [!{alert}]"]
            lines += [f"> **{html.escape(s.headline())}**{_causes(s)}  " for s in review.of(verdict)]
            lines[-1] = lines[-1].rstrip()
            lines.append("")
    kept = review.of(impact.SessionVerdict.KEEPS)
    if kept:
        lines += [html.escape(s.headline()) + _causes(s) + ("  " if i < len(kept) - 1 else "") for i, s in enumerate(kept)]
        lines.append("")
    access = _access_by_service(review)
    if access:
        lines += ["**Who may call**", "", "| Service | Effect | Change |", "| --- | --- | --- |"]
        lines += [f"| {_code(service)} | {direction} | {html.escape(text)} |"
                  for service, changes in access for direction, text in changes] + [""]
    return lines


def _causes(session: impact.SessionImpact) -> str:
    return f": {html.escape('; '.join(session.reasons))}" if session.reasons else ""


def _why(change: ResourceChange) -> str:
    if change.action == "replace":
        fields = sorted({c.replaces for c in change.counted if c.replaces})
        order = "delete, then create" if change.delete_first else "create, then delete"
        return f"replace ({order}): {', '.join(fields)} create-only"
    if change.action == "ignored":
        return "every change ignored (ignoreChanges)"
    return ""


def _count(change: ResourceChange) -> str:
    n = len(change.counted)
    text = f"{n} propert{'y' if n == 1 else 'ies'}"
    ignored = len(change.changes) - n
    return text + (f", {ignored} ignored" if ignored else "")


def _judge(change: PropertyChange, raw: tuple, paths: tuple[str, ...], forced: tuple[tuple, ...],
           ignores: list[tuple[str, tuple]]) -> PropertyChange:
    for text, parsed in ignores:
        if _under(raw, parsed):
            return PropertyChange(change.path, change.old, change.new, ignored=text)
    keys = tuple(p for p in raw if not isinstance(p, int))
    by_option = next((".".join(f) for f in forced if keys[:len(f)] == f), None)
    replaces = by_option or replacements.forces_replacement(raw, paths)
    return PropertyChange(change.path, change.old, change.new, replaces=replaces)


def _parse(path: str) -> tuple:
    """A Pulumi property path (``template.containers[0].image``, ``a["b.c"]``, ``x[*]``) as keys."""
    parts: list[Any] = []
    for match in re.finditer(r'\[(\d+|\*)\]|\["((?:[^"\\]|\\.)*)"\]|([^.\[\]]+)', path):
        index, quoted, plain = match.groups()
        parts.append(int(index) if index and index.isdigit() else "*" if index else quoted if quoted is not None
                     else plain)
    return tuple(parts)


def _keys(path: str) -> tuple:
    return tuple(p for p in _parse(path) if not isinstance(p, int) and p != "*")


def _under(raw: tuple, pattern: tuple) -> bool:
    return len(raw) >= len(pattern) and all(p == "*" or p == r for p, r in zip(pattern, raw))


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _diff(old: Any, new: Any, shown: str, raw: tuple) -> Iterator[tuple[PropertyChange, tuple]]:
    """(change, raw path) per differing leaf; raw paths index HEAD's lists (BASE's for removals)."""
    if _branch(old, dict) and _branch(new, dict):
        for key in sorted(old.keys() | new.keys(), key=str):
            yield from _diff(old.get(key, _MISSING), new.get(key, _MISSING), _join(shown, key), raw + (key,))
    elif _branch(old, list) and _branch(new, list):
        name = next((p for p in reversed(raw) if isinstance(p, str)), "")
        for label, a, b, index in _pairs(name, old, new):
            if label.startswith("[") and (a is _MISSING or b is _MISSING):  # a whole item added or removed
                yield PropertyChange(_join(shown, label), _whole(a), _whole(b)), raw + (index,)
            else:
                yield from _diff(a, b, _join(shown, label), raw + (index,))
    else:
        before, after = _leaves(old, shown, raw), _leaves(new, shown, raw)
        for path in sorted(before.keys() | after.keys(), key=lambda p: _path_key(before.get(p, after.get(p))[1])):
            a, b = before.get(path, (_MISSING, ()))[0], after.get(path, (_MISSING, ()))[0]
            if not _same(a, b):
                yield PropertyChange(path, _shown(a, b), _shown(b, a)), (after.get(path) or before[path])[1]


def _pairs(name: str, old: list, new: list) -> Iterator[tuple[str, Any, Any, int]]:
    """(label, old item, new item, raw index) matched by identity when both lists have one."""
    keys_old, keys_new = _identities(name, old), _identities(name, new)
    if keys_old is None or keys_new is None:
        for i in range(max(len(old), len(new))):
            yield str(i), old[i] if i < len(old) else _MISSING, new[i] if i < len(new) else _MISSING, i
        return
    where_old = {k: i for i, k in enumerate(keys_old)}
    where_new = {k: i for i, k in enumerate(keys_new)}
    for key in keys_old + [k for k in keys_new if k not in where_old]:
        a = old[where_old[key]] if key in where_old else _MISSING
        b = new[where_new[key]] if key in where_new else _MISSING
        yield f"[{key}]", a, b, where_new.get(key, where_old.get(key, 0))


def _identities(name: str, items: list) -> Optional[list[str]]:
    """Each item's identity, or None when some item has none or two share one."""
    if name in SETS:
        keys = [_identity_text(item) for item in items]
    elif all(isinstance(item, dict) for item in items):
        field = IDENTITY.get(name, "name")
        keys = [(name == "routeRules" and _rule_match(item)) or _identity_text(item.get(field)) for item in items]
    else:
        return None
    if any(k is None for k in keys) or len(set(keys)) != len(keys):
        return None
    return keys  # type: ignore[return-value]


def _rule_match(rule: dict) -> Optional[str]:
    """A route rule by the headers it matches (``Mcp-Session-Id^=europe-west1-s0.``,
    ``Mcp-Method=tools/call``): adding a shard renumbers priorities without showing every later
    rule as changed."""
    parts = [f"{h.get('headerName')}^={h['prefixMatch']}" if "prefixMatch" in h else f"{h.get('headerName')}={h.get('exactMatch')}"
             for match in rule.get("matchRules") or [] if isinstance(match, dict)
             for h in match.get("headerMatches") or [] if isinstance(h, dict)]
    return " & ".join(parts) or None


def _identity_text(value: Any) -> Optional[str]:
    if isinstance(value, list) and value and all(isinstance(v, (str, int, float)) for v in value):
        return ",".join(sorted(_identity_text(v) or "" for v in value))
    if isinstance(value, bool) or not isinstance(value, (str, int, float)) or value in UNKNOWNS:
        return None
    return show(value)


def _whole(value: Any) -> str:
    return UNSET if value is _MISSING else show(value)


def _branch(value: Any, kind: type) -> bool:
    return isinstance(value, kind) and bool(value) and not (kind is dict and SECRET_SIG in value)


def _join(shown: str, part: Any) -> str:
    part = str(part)
    if part.startswith("["):
        return shown + part
    return f"{shown}.{part}" if shown else part


def _leaves(value: Any, shown: str, raw: tuple) -> dict[str, tuple[Any, tuple]]:
    """Shown path -> (leaf, raw path); empty containers and secret envelopes are leaves."""
    if value is _MISSING:
        return {}
    leaves: dict[str, tuple[Any, tuple]] = {}

    def walk(item: Any, path: str, keys: tuple) -> None:
        if _branch(item, dict):
            for key, child in item.items():
                walk(child, _join(path, key), keys + (key,))
        elif _branch(item, list):
            for index, child in enumerate(item):
                walk(child, _join(path, index), keys + (index,))
        else:
            leaves[path] = (item, keys)

    walk(value, shown, raw)
    return leaves


def _path_key(path: tuple) -> tuple:
    # Numbers before names, and 10 after 9: never compare an int with a str.
    return tuple((0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in path)


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
            return {str(k): norm(x) for k, x in v.items()}
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


def _resolved(resources: dict[str, dict]) -> dict[str, dict]:
    """Each resource with its inputs that name another planned resource read as it (``backend
    service tools``, :mod:`mcp_affinity.references`), so a route that now names another backend shows."""
    index = Index(list(resources.values()))
    return {urn: {**r, "inputs": resolved_inputs(r, index)} if isinstance(r.get("inputs"), dict) else r
            for urn, r in resources.items()}


def access_changes(base: dict, head: dict) -> list[str]:
    """The head's access map (:func:`render.access_lines`), each route marked ``+`` when new or
    changed, then ``-`` lines for the base's routes that are gone or changed."""
    old, new = access_lines(base["resources"]), access_lines(head["resources"])
    lines = [new[0]] if len(new) > 1 or len(old) > 1 else []
    lines += [("+" if line not in old else " ") + line for line in new[1:]]
    return lines + ["-" + line for line in old[1:] if line not in new]


def access_markdown(lines: list[str]) -> str:
    """:func:`access_changes` as a collapsed Markdown block (a diff code block: + and - coloured)."""
    if not lines:
        return ""
    changed = sum(1 for line in lines[1:] if line[:1] in "+-")
    body = "\n".join(line.replace("`", "'") for line in lines[1:])
    return (f"\n<details><summary>Access map ({changed} route line{'s' if changed != 1 else ''} changed)</summary>"
            f"\n\n```diff\n{body}\n```\n</details>\n")


def _by_urn(plan: dict, which: str) -> dict[str, dict]:
    if not isinstance(plan.get("resources"), list):
        raise ValueError(f"{which} is not a plan: expected keys project, stack, resources, outputs")
    resources = {r["urn"]: r for r in plan["resources"]}
    if len(resources) != len(plan["resources"]):
        raise ValueError(f"{which} plan lists a URN twice")
    return resources


def _ref(resource: dict, settings: bool = False) -> ResourceRef:
    shown = tuple(key_settings(resource["type"], _dict(resource.get("inputs")))) if settings else ()
    return ResourceRef(resource["urn"], resource["type"], resource["name"], shown)


def _code(text: str) -> str:
    """A GFM table cell code span: pipes escaped, fence longer than any backtick run inside."""
    text = text.replace("\n", "\\n").replace("|", "\\|")
    fence = "`" * (1 + max((len(run) for run in re.findall(r"`+", text)), default=0))
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _change_table(header: str, changes: tuple[PropertyChange, ...]) -> list[str]:
    notes = any(c.note for c in changes)
    rows = [f"| {_code(c.path)} | {_code(c.old)} | {_code(c.new)} |" + (f" {c.note} |" if notes else "")
            for c in changes]
    head = f"| {header} | Before | After |" + (" Note |" if notes else "")
    return [head, "| --- | --- | --- |" + (" --- |" if notes else ""), *rows]
