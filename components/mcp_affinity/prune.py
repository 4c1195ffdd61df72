"""Is a change set only the pruning of retired generations? (``mcp-affinity check --prune-only``)

A sharded Cloud Run service with a drain (:mod:`mcp_affinity.cloud_run_shards`) keeps a retired
generation's tag, NEGs, backend services and URL-map routes until the first ``pulumi up`` after its
window. The scheduled workflow (``.github/workflows/prune.yml``) runs that ``up`` only when this
module says the change set does nothing else.

Input: a :class:`~mcp_affinity.impact.Review` of the change (its ``changes`` are the steps, with
inputs as :mod:`mcp_affinity.cli.diff` resolves them) and the stack's resources before and after.
Output (:func:`judge`): a :class:`PruneVerdict`: which generations go (``tools: generation 6``) and
one line per step that is not pruning.

A service's **retired generations** are the generations whose tag-only (0 %) traffic entries an
update of one of its shards' Cloud Run services removes (:func:`mcp_affinity.impact.retired_targets`,
the tag read back by :func:`~mcp_affinity.cloud_run_shards.tag_generation`). A **retired generation
resource** is a resource the service plans under the shard key of a retired generation: named
``{service}-{key}`` or ``{service}-{key}-...`` (its IAP bindings), where ``key`` is
:func:`~mcp_affinity.cloud_run_shards.generation_key` of a shard's key (its Cloud Run service is
named ``{service}-{shard key}``) and the generation: the names :func:`~mcp_affinity.cloud_run_shards.build`
gives each generation's NEG and backend service.

A step is pruning when it is (measured on two real plans, ``tests/test_prune_only.py``):

- the deletion of a retired generation resource;
- an update of a shard's Cloud Run service whose only changed paths are under ``traffics`` and whose
  new ``traffics`` are the old ones without the retired generations' entries (nothing under
  ``template``: no new revision);
- an update of the URL map whose only change is the removal of the route rules matching a retired
  key (``{key}.`` prefix of the session header) from that service's path matcher, the rules after
  them renumbered (``priority``).

Nothing else is: not a created or replaced resource, not the generation guard (its inputs name the
current generation's revisions, which pruning keeps), not a Cloud Armor policy (its thresholds are
divided by regions x shards, not by the generations serving, so pruning leaves them as they are).
On top, no service's sessions may end or drain and no access may widen (the review's verdicts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Optional

from . import impact
from .cloud_run_shards import SEPARATOR, generation_key, tag_generation
from .wire import CLOUD_RUN, URL_MAP


@dataclass(frozen=True)
class PruneVerdict:
    """``pruned``: ``tools: generation 6 (18 resources)`` per service and retired generation;
    ``refused``: one line per step that is not pruning; ``verdicts``: the review's sessions that end
    or drain and access that widens; ``steps``: how many steps the change set has."""

    pruned: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()
    steps: int = 0
    verdicts: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """True when ``up`` would change no resource."""
        return self.steps == 0

    @property
    def only_pruning(self) -> bool:
        return not (self.refused or self.verdicts)

    def lines(self) -> list[str]:
        """What ``check --prune-only`` prints: ``nothing to prune``, ``prune only: ...`` or the refusal."""
        if not self.only_pruning:
            return [f"not only pruning: {len(self.refused)} of {self.steps} step(s) are not the removal of a "
                    "retired generation"] + [f"    {line}" for line in self.refused + self.verdicts]
        if self.empty:
            return ["nothing to prune"]
        return [f"prune only: {self.steps} step(s) remove retired generations: {'; '.join(self.pruned)}"]


def judge(review: impact.Review, before: list[dict], after: list[dict]) -> PruneVerdict:
    """Say whether ``review.changes`` only prune retired generations (see the module docstring)."""
    services = {**impact.service_map(before), **impact.service_map(after)}
    retired = _retired_keys(review.changes, services)
    counts: dict[tuple[str, int], int] = {}
    refused = []
    for change in review.changes:
        found = _pruning(change, services.get(change.urn), retired)
        if found is None:
            refused.append(_describe(change))
        else:
            for key in found:
                counts[key] = counts.get(key, 0) + 1
    verdicts = [s.headline() for s in review.sessions if s.verdict is not impact.SessionVerdict.KEEPS]
    verdicts += [f"{a.service}: {a.text} (widens who may call)" for a in review.access if a.widens]
    pruned = tuple(f"{service}: generation {generation} ({count} resource{'s' if count != 1 else ''})"
                   for (service, generation), count in sorted(counts.items()))
    return PruneVerdict(pruned, tuple(refused), len(review.changes), tuple(verdicts))


_Retired = dict[str, dict[str, int]]
"""Service -> retired generation key (``europe-west1-s0-g6``) -> its generation."""


def _retired_keys(changes: Iterable[impact.Change], services: dict[str, str]) -> _Retired:
    """Per service, the keys of its retired generations: each shard whose Cloud Run service drops a
    generation's traffic entry, in that generation."""
    found: _Retired = {}
    for change in changes:
        service = services.get(change.urn)
        if service is None:
            continue
        base = _name(change.urn).removeprefix(f"{service}-")
        for target in impact.retired_targets(change):
            generation = tag_generation(target.get("tag"))
            if generation is not None:
                found.setdefault(service, {})[generation_key(base, generation)] = generation
    return found


def _pruning(change: impact.Change, service: Optional[str], retired: _Retired) -> Optional[list[tuple[str, int]]]:
    """The (service, generation) pairs a pruning step serves ([] when it serves every one of a
    service's, e.g. the URL map), or None when the step is not pruning."""
    if change.op == "delete" and service in retired:
        generation = _generation_of(_name(change.urn), service, retired[service])
        return None if generation is None else [(service, generation)]
    if change.op != "update":
        return None
    if change.type == CLOUD_RUN and service in retired and _only_traffic_pruned(change, retired[service]):
        return []
    if change.type == URL_MAP and _only_routes_pruned(change, retired):
        return []
    return None


def _generation_of(name: str, service: str, keys: dict[str, int]) -> Optional[int]:
    """The retired generation a resource named ``name`` belongs to: ``{service}-{key}`` or ``{service}-{key}-...``."""
    for key, generation in keys.items():
        planned = f"{service}-{key}"
        if name == planned or name.startswith(planned + "-"):
            return generation
    return None


def _only_traffic_pruned(change: impact.Change, keys: dict[str, int]) -> bool:
    """Only ``traffics`` changes, and only by losing the retired generations' entries."""
    if not change.paths or any(_top(path) != "traffics" for path in change.paths):
        return False
    dropped = {id(t) for t in impact.retired_targets(change) if tag_generation(t.get("tag")) in keys.values()}
    kept = [t for t in (change.old or {}).get("traffics") or [] if id(t) not in dropped]
    return kept == (change.new or {}).get("traffics")


def _only_routes_pruned(change: impact.Change, retired: _Retired) -> bool:
    """The URL map differs only by the retired keys' route rules, removed from their service's path
    matcher, and the later rules' priorities."""
    old, new = change.old or {}, change.new or {}
    if {k: v for k, v in old.items() if k != "pathMatchers"} != {k: v for k, v in new.items() if k != "pathMatchers"}:
        return False
    expected = [_pruned_matcher(m, retired.get(m.get("name"), {})) if isinstance(m, dict) else m
                for m in old.get("pathMatchers") or []]
    return expected == [_unnumbered(m) if isinstance(m, dict) else m for m in new.get("pathMatchers") or []]


def _pruned_matcher(matcher: dict, keys: dict[str, int]) -> dict:
    rules = [r for r in matcher.get("routeRules") or [] if not (_prefixes(r) & {k + SEPARATOR for k in keys})]
    return _unnumbered({**matcher, "routeRules": rules} if "routeRules" in matcher else matcher)


def _unnumbered(matcher: dict) -> dict:
    """A path matcher with its route rules' priorities left out (pruning renumbers them)."""
    if "routeRules" not in matcher:
        return matcher
    return {**matcher, "routeRules": [{k: v for k, v in r.items() if k != "priority"} if isinstance(r, dict) else r
                                      for r in matcher["routeRules"]]}


def _prefixes(rule: Any) -> set[str]:
    """The header prefixes a route rule matches (``europe-west1-s0-g6.``)."""
    if not isinstance(rule, dict):
        return set()
    return {str(h["prefixMatch"]) for match in rule.get("matchRules") or [] if isinstance(match, dict)
            for h in match.get("headerMatches") or [] if isinstance(h, dict) and "prefixMatch" in h}


SHOWN_PATHS = 4
"""Changed paths named per refused step; the rest are counted (``diff`` lists every one)."""


def _describe(change: impact.Change) -> str:
    """``update gcp:cloudrunv2/service:Service tools-europe-west1-s0: template.containers[mcp].image``."""
    shown = list(change.paths[:SHOWN_PATHS]) + ([f"{len(change.paths) - SHOWN_PATHS} more"]
                                                 if len(change.paths) > SHOWN_PATHS else [])
    return f"{change.op} {change.type} {_name(change.urn)}" + (f": {', '.join(shown)}" if shown else "")


def _top(path: str) -> str:
    return path.split(".")[0].split("[")[0]


def _name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]
