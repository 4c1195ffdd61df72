"""What a change does to live sessions and to who may call, per MCP service.

Input: the changes ``pulumi up`` would make (:class:`Change`: a resource's URN, type, op and the
input paths that change, with its inputs before and after) and the resources of the stack before
and after, in the plan shape of :mod:`mcp_affinity.policies`. Output (:func:`review`): per service,
a :class:`SessionImpact` whose :class:`SessionVerdict` says whether live sessions end, drain or
are kept, and every
:class:`AccessChange`, each saying whether it widens who may call.

A service is the nearest ``CloudRunMcpService`` or ``McpMeshService`` component above a resource;
the mesh gateway's backend (``MeshGatewayBackend``) fronts every mesh service. A service's session
mode is its workload's ``MCP_SESSION_MODE``; it uses a store when its workload reads
``MCP_SESSION_STORE_URL`` or ``MCP_NOTIFICATION_BROKER_URL``.

Sessions end when what holds them goes (the platform facts):

- an in-memory service's Cloud Run revision: any change under ``template`` deploys a new revision
  and moves all traffic to it (https://cloud.google.com/run/docs/resource-model#revisions); each
  shard of ``pinning: shards`` is one instance, so a new revision of a shard ends its sessions
  unless it drains (below); a shard removed ends its sessions (a shard added moves no key: ids
  carry their shard's key);
- an in-memory Deployment's pod template (``spec.template``): the rollout replaces every pod
  (https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#updating-a-deployment);
- the learned-pinning proxy's pod template or configuration when it runs one replica: the restarted
  proxy starts with an empty table. With two or more, a restarted replica gets the pins back from
  its peers (measured: ``tests/e2e/test_conformance.py``, the proxy-restart rows), and a StatefulSet
  rolls one pod at a time
  (https://kubernetes.io/docs/concepts/workloads/controllers/statefulset/#rolling-updates), so the
  pins survive;
- the session store replaced or deleted: every session and stream in it is lost.

Sessions drain instead (:class:`Drain`: how long, on what, where new sessions start) when the
plan keeps what holds them serving for a window:

- a sharded Cloud Run service's new named revision whose ``traffics`` keep the previous named
  revision reachable by a tag at 0 % (a new generation, :mod:`mcp_affinity.cloud_run_shards`): its
  sessions drain on that generation for the service's label ``mcp-session-drain-seconds``
  (https://cloud.google.com/run/docs/rollouts-rollbacks-traffic-migration); a template change that
  keeps the revision's name (refused by the change rule ``change-reuses-revision-name``), names no
  revision or keeps no tag on the previous one ends them;
- a learned-pinning Deployment's pod template change when its pods, before and after, ship the
  drain (the ``drain-signal`` container beside a ``preStop`` sleep, :mod:`mcp_affinity.mesh_service`):
  the old pods keep serving the sessions pinned to them while terminating, for their ``preStop``
  sleep, at most their ``terminationGracePeriodSeconds``
  (https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-termination).

A sharded service's generation pruned after its window (its tag, NEG, backend service and route
removed, no template change) keeps the sessions: those it held were past their window.

Stateless services, and shared sessions whose store is kept, keep their sessions. A service whose
change both ends and drains sessions (a shard removed in a deploy) is listed under each.

Who may call changes with a service's access mode (the ``mcp-access`` label), its IAM members
(Cloud Run invoker, IAP ``httpsResourceAccessor``), IAP settings (programmatic clients), IAP on the
backend, Cloud Armor (policy attached, rules, rate limits), Cloud Run ingress and invoker check,
and the mesh's ``AuthorizationPolicy`` / ``RequestAuthentication`` (in a changed one, ``iam``
callers and token issuers added widen, removed narrow: :func:`_mesh_policy`). Each change
``widens``, ``narrows`` or ``changes`` (direction not judged).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Iterable, Iterator, Optional

from .access_map import EMAIL_CLAIM, token_policy
from .cloud_run_shards import DRAIN_LABEL, minutes, tag_generation
from .pinning_proxy import DRAIN_SIGNAL_CONTAINER
from .wire import (
    AUTHORIZATION_POLICY, BACKEND, CLOUD_RUN, CLOUD_RUN_IAM_MEMBER, COMPUTED, CONFIG_MAP, DEPLOYMENT,
    HORIZONTAL_POD_AUTOSCALER, IAP_BACKEND_IAM_MEMBER, IAP_SETTINGS, REDIS, REQUEST_AUTHENTICATION, SECRET_SIG,
    SECURITY_POLICY, STATEFUL_SET, UNKNOWNS,
)

SERVICE_COMPONENTS = ("mcp-affinity:index:CloudRunMcpService", "mcp-affinity:index:McpMeshService")
GATEWAY_COMPONENT = "mcp-affinity:index:MeshGatewayBackend"
GATEWAY = "mesh gateway"
"""The name under which the mesh gateway's backend (in front of every mesh service) is reported."""
MODE_ENV = "MCP_SESSION_MODE"
STORE_ENVS = ("MCP_SESSION_STORE_URL", "MCP_NOTIFICATION_BROKER_URL")
IN_MEMORY = "in-memory-sessions"
ACK_LABEL, ACK_VALUE = "mcp-ack-access", "widened"
"""The label ``acknowledge: [access-widened]`` puts on a service's workload."""
_MODE_STRENGTH = {"public": 0, "oauth": 1, "iam": 2, "iap": 2}
_ARMOR_BLOCKS = ("deny", "throttle", "rate_based_ban", "redirect")


class SessionVerdict(str, Enum):
    """What a change does to a service's live sessions, the most severe first."""

    ENDS = "ends"
    DRAINS = "drains"
    KEEPS = "keeps"


@dataclass(frozen=True)
class Drain:
    """How live sessions drain: ``seconds`` the window (None where the plan does not say), ``on``
    what keeps serving them (``generation 7``, ``the terminating pods``), ``then`` where new sessions
    start (``generation 8``, ``new pods``)."""

    seconds: Optional[int]
    on: str
    then: str

    def __str__(self) -> str:
        window = f"for {minutes(self.seconds)} " if self.seconds else "for its window "
        return f"{window}on {self.on}; new sessions start on {self.then}"


class Direction(str, Enum):
    """What an access change does to who may call."""

    WIDENS = "widens"
    NARROWS = "narrows"
    CHANGES = "changes"


@dataclass(frozen=True)
class Change:
    """One resource ``up`` changes: ``op`` is ``create``, ``update``, ``replace`` or ``delete``;
    ``paths`` the changed input paths as shown (``template.containers.0.image``), ignored ones left
    out; ``old`` / ``new`` its inputs before and after (None where it does not exist)."""

    urn: str
    type: str
    op: str
    paths: tuple[str, ...] = ()
    old: Optional[dict] = None
    new: Optional[dict] = None


@dataclass(frozen=True)
class SessionImpact:
    """A service's verdict; ``holders`` what held the sessions (``6 shard instances``, ``2-10 pods``,
    ``the session store``); ``reasons`` one line per cause; ``urns`` the resources that cause it;
    ``drain`` how they drain (``drains`` only)."""

    service: str
    verdict: SessionVerdict
    holders: str
    reasons: tuple[str, ...] = ()
    urns: tuple[str, ...] = ()
    drain: Optional[Drain] = None

    def __str__(self) -> str:
        return f"{self.service} ({self.holders})" if self.holders else self.service

    def headline(self) -> str:
        """``drains live sessions: tools (6 shard instances) for 30 min on generation 7; new sessions
        start on generation 8``, ``ends live sessions: tools (2-8 pods)``."""
        text = f"{self.verdict.value} live sessions: {self}"
        return f"{text} {self.drain}" if self.drain else text


@dataclass(frozen=True)
class AccessChange:
    """One change of who may call ``service``: ``text`` for people (``IAP member removed:
    group:x``), ``direction``, ``urn`` the resource."""

    service: str
    direction: Direction
    text: str
    urn: str

    @property
    def widens(self) -> bool:
        return self.direction is Direction.WIDENS


@dataclass(frozen=True)
class Review:
    """Sessions (``ends``, ``drains``, then ``keeps``, each by service) and access changes (by service)
    of one change set; ``changes`` the change set itself, in the order given (left out of ``repr``:
    inputs may hold secrets)."""

    sessions: tuple[SessionImpact, ...] = ()
    access: tuple[AccessChange, ...] = ()
    changes: tuple[Change, ...] = field(default=(), repr=False)

    def ending(self) -> tuple[SessionImpact, ...]:
        return self.of(SessionVerdict.ENDS)

    def of(self, verdict: SessionVerdict) -> tuple[SessionImpact, ...]:
        return tuple(s for s in self.sessions if s.verdict is verdict)


def review(changes: Iterable[Change], before: list[dict], after: list[dict]) -> Review:
    """Classify ``changes`` (see the module docstring); ``before`` / ``after`` the stack's resources."""
    changes = list(changes)
    index = _Index(before, after)
    causes: dict[tuple[str, SessionVerdict, Optional[Drain]], list[tuple[str, str]]] = {}
    for change in changes:
        for service, verdict, cause, drain in _session_causes(change, index):
            causes.setdefault((service, verdict, drain), []).append((cause, change.urn))
    sessions = [SessionImpact(service, verdict, index.holders(service, [u for _, u in found]), _reasons(found),
                              tuple(u for _, u in found), drain)
                for (service, verdict, drain), found in sorted(causes.items(), key=lambda c: _order(*c[0]))
                if verdict is not SessionVerdict.KEEPS]
    # A service only added keeps nothing: it has no live sessions yet.
    touched = {index.service(c.urn) for c in changes if c.op != "create"} - {None, GATEWAY} - {s.service for s in sessions}
    sessions += [SessionImpact(str(service), SessionVerdict.KEEPS, index.kept(str(service))) for service in sorted(touched)]
    notes = {service: found for (service, verdict, _), found in causes.items() if verdict is SessionVerdict.KEEPS}
    access = [a for change in changes for a in _access(change, index)] + list(_memberships(changes, index))
    return Review(_noted(sessions, notes), tuple(sorted(access, key=lambda a: (a.service, a.urn, a.text))), tuple(changes))


def _order(service: str, verdict: SessionVerdict, drain: Optional[Drain]) -> tuple:
    """The most severe verdict first, then by service."""
    return list(SessionVerdict).index(verdict), service, str(drain or "")


def _noted(sessions: list[SessionImpact], notes: dict[str, list[tuple[str, str]]]) -> tuple[SessionImpact, ...]:
    """``sessions`` with each service's kept-sessions causes (a generation retired) added to the
    reasons of its last, least severe, entry."""
    last = {s.service: i for i, s in enumerate(sessions)}
    noted = list(sessions)
    for service, found in notes.items():
        if service in last:
            noted[last[service]] = replace(sessions[last[service]], reasons=sessions[last[service]].reasons + _reasons(found))
    return tuple(noted)


_ENDS_WHEN = {CLOUD_RUN: "a new revision (a change under template) or a shard removed",
              DEPLOYMENT: "a pod template change", STATEFUL_SET: "a change of the (one-replica) pinning proxy",
              REDIS: "the session store replaced or deleted"}
_ENDS_WHEN_DRAINED = {CLOUD_RUN: "a shard removed, or a new revision that leaves the previous one untagged "
                                 "(sessionDrainSeconds: 0)",
                      DEPLOYMENT: "a pod template change that turns the drain off (sessionDrainSeconds: 0)"}
_DRAINS_WHEN = {CLOUD_RUN: "a new generation (a new entry in generations with the new image): the previous "
                           "revision keeps its sessions for {window}, tag-only",
                DEPLOYMENT: "a pod template change: the old pods keep serving their sessions for {window} while terminating"}


def session_holders(resources: list[dict]) -> dict[str, dict[str, Any]]:
    """Per service of a plan, what holds its live sessions, what would end them and what would
    drain them: ``{service: {"mode", "holders", "endsWhen": [...], "drainsWhen": [...]}}``
    (``holders`` "" and both lists [] for a stateless service). Written into the plan JSON as
    ``sessionImpact``."""
    index = _Index([], resources)
    found = {}
    for service, members in sorted(index._members.items()):
        mode = index.mode(service)
        if service == GATEWAY or mode is None:
            continue
        if mode == IN_MEMORY:
            kinds = (CLOUD_RUN, DEPLOYMENT, STATEFUL_SET) if index.lone_proxy(service) else (CLOUD_RUN, DEPLOYMENT)
            holding = [r for r in members if r["type"] in kinds]
        else:
            holding = [r for r in resources if r["type"] == REDIS] if index.uses_store(service) else []
        windows = {r["type"]: window for r in holding if (window := _drain_window(r))}
        found[service] = {"mode": mode, "holders": index.holders(service, [r["urn"] for r in holding]),
                          "endsWhen": sorted({(_ENDS_WHEN_DRAINED if r["type"] in windows else _ENDS_WHEN)[r["type"]]
                                              for r in holding}),
                          "drainsWhen": sorted(_DRAINS_WHEN[kind].format(window=minutes(window))
                                               for kind, window in windows.items())}
    return found


def _drain_window(resource: dict) -> int:
    """Seconds a deploy of ``resource`` would drain its sessions (as planned), else 0: a Cloud Run
    service's named revision tagged in its ``traffics`` with :data:`DRAIN_LABEL`, a Deployment's
    pod drain (:func:`_pod_drain_seconds`)."""
    inputs = resource.get("inputs") or {}
    if resource["type"] == DEPLOYMENT:
        return _pod_drain_seconds(inputs)
    revision = _named(_get(inputs, "template", "revision"))
    tagged = revision is not None and any(t.get("revision") == revision and t.get("tag") for t in _traffics(inputs))
    return (_seconds(_get(inputs, "labels", DRAIN_LABEL)) or 0) if resource["type"] == CLOUD_RUN and tagged else 0


def service_map(resources: list[dict]) -> dict[str, str]:
    """URN -> the service it belongs to, for every resource of ``resources`` under one."""
    index = _Index([], resources)
    return {r["urn"]: service for r in resources if (service := index.service(r["urn"]))}


def _reasons(found: list[tuple[str, str]]) -> tuple[str, ...]:
    """One line per cause: ``new revision: tools-europe-west1-s0, tools-europe-west1-s1``."""
    names: dict[str, list[str]] = {}
    for cause, urn in found:
        names.setdefault(cause, []).append(urn.rsplit("::", 1)[-1])
    return tuple(f"{cause}: {', '.join(dict.fromkeys(found))}" for cause, found in names.items())


class _Index:
    """The resources of both sides by URN, and the service each belongs to."""

    def __init__(self, before: list[dict], after: list[dict]):
        self.by_urn = {r["urn"]: r for r in before}
        self.by_urn.update({r["urn"]: r for r in after})
        self.before, self.after = before, after
        self._service = {urn: self._find(urn) for urn in self.by_urn}
        self._members: dict[str, list[dict]] = {}
        for urn, service in self._service.items():
            if service is not None:
                self._members.setdefault(service, []).append(self.by_urn[urn])

    def service(self, urn: str) -> Optional[str]:
        """The service above ``urn`` (:data:`GATEWAY` for the mesh gateway's backend), else None."""
        return self._service.get(urn)

    def _find(self, urn: str) -> Optional[str]:
        seen, current = set(), self.by_urn[urn].get("parent")
        while current and current not in seen:
            seen.add(current)
            kind, name = _urn_type(current), current.rsplit("::", 1)[-1]
            if kind in SERVICE_COMPONENTS:
                return name
            if kind == GATEWAY_COMPONENT:
                return GATEWAY
            parent = self.by_urn.get(current)
            if parent is None:
                # A preview lists only what changes. The URN's type names every ancestor's type: under a
                # service, the components between are named after it (its EdgePolicy ``tools``).
                chain = _urn_chain(urn)[:-1]  # its ancestors' types
                return GATEWAY if GATEWAY_COMPONENT in chain else name if set(chain) & set(SERVICE_COMPONENTS) else None
            current = parent.get("parent")
        return None

    def members(self, service: str) -> list[dict]:
        return self._members.get(service, [])

    def mode(self, service: str) -> Optional[str]:
        for resource in self.members(service):
            value = workload_env(resource, MODE_ENV)
            if value is not None:
                return value
        return None

    def lone_proxy(self, service: str) -> bool:
        """True when the service's pinning proxy runs fewer than two replicas (no peer keeps its pins)."""
        proxies = [r for r in self.members(service) if r["type"] == STATEFUL_SET]
        return any((_get(r.get("inputs") or {}, "spec", "replicas") or 1) < 2 for r in proxies)

    def uses_store(self, service: str) -> bool:
        return any(workload_uses_store(r) for r in self.members(service))

    def holders(self, service: str, urns: list[str]) -> str:
        """What held the ended sessions: ``6 shard instances``, ``2-10 pods``, ``the session store``."""
        parts = []
        runs = {u for u in urns if self.by_urn.get(u, {}).get("type") == CLOUD_RUN}
        if runs:
            sharded = any(shard_key(self.by_urn[u]) for u in runs)
            parts.append(f"{len(runs)} shard instance{'s' if len(runs) != 1 else ''}" if sharded
                         else f"every instance of {len(runs)} revision{'s' if len(runs) != 1 else ''}")
        pods = [self.by_urn[u] for u in dict.fromkeys(urns) if self.by_urn.get(u, {}).get("type") == DEPLOYMENT]
        parts += [f"{self._pod_count(d)} pods" for d in pods]
        proxies = [self.by_urn[u] for u in dict.fromkeys(urns) if self.by_urn.get(u, {}).get("type") in (STATEFUL_SET, CONFIG_MAP)]
        if proxies:
            parts.append("the pinning proxy's pins")
        if any(self.by_urn.get(u, {}).get("type") == REDIS for u in urns):
            parts.append("the session store")
        return ", ".join(parts)

    def _pod_count(self, deployment: dict) -> str:
        """``2-8`` (its autoscaler's range) or ``3`` (``spec.replicas``)."""
        inputs = deployment.get("inputs") or {}
        for scaler in self.members(self.service(deployment["urn"]) or ""):
            spec = _get(scaler.get("inputs") or {}, "spec") or {}
            if scaler["type"] == HORIZONTAL_POD_AUTOSCALER and _get(spec, "scaleTargetRef", "name") == _get(inputs, "metadata", "name"):
                return f"{_count(spec.get('minReplicas') or 1)}-{_count(spec.get('maxReplicas'))}"
        return _count(_get(inputs, "spec", "replicas") or 1)

    def kept(self, service: str) -> str:
        mode = self.mode(service)
        if mode == IN_MEMORY:
            return "in memory, no holder changes"
        if self.uses_store(service):
            return f"{mode or 'sessions'} in the store, store kept"
        return mode or ""


_Cause = tuple[str, SessionVerdict, str, Optional[Drain]]
"""(service, verdict, reason, drain) of one change."""


def _session_causes(change: Change, index: _Index) -> Iterator[_Cause]:
    """For each service whose live sessions ``change`` ends or drains, or keeps for a reason worth
    saying (a generation retired): (service, verdict, reason, drain)."""
    ends, drains, keeps = SessionVerdict.ENDS, SessionVerdict.DRAINS, SessionVerdict.KEEPS
    if change.type == REDIS and change.op in ("replace", "delete"):
        for service in sorted({s for r in index.by_urn.values()
                               if workload_uses_store(r) and (s := index.service(r["urn"]))}):
            yield service, ends, f"session store {change.op}d", None
        return
    service = index.service(change.urn)
    if service is None or index.mode(service) != IN_MEMORY or change.op == "create":
        return
    if change.type == CLOUD_RUN:
        if change.op == "delete":
            yield service, ends, "service deleted", None
        elif change.op == "replace" or _under(change, "template"):
            drain = _revision_drain(change)
            yield (service, drains, "new revision, the previous one kept by its tag (0 % of traffic)", drain) if drain \
                else (service, ends, "new revision", None)
        for generation in _retired(change):
            yield service, keeps, f"{generation} retired (window over)", None
    elif change.type == DEPLOYMENT and (change.op != "update" or _under(change, "spec.template")):
        drain = _pod_drain(change)
        yield (service, drains, "pod template changed, old pods drain while terminating", drain) if drain \
            else (service, ends, "pod template changed, pods replaced", None)
    elif index.lone_proxy(service):
        if change.type == STATEFUL_SET and (change.op != "update" or _under(change, "spec.template")):
            yield service, ends, "pinning proxy restarts, one replica: no peer keeps the pins", None
        elif change.type == CONFIG_MAP and "haproxy.cfg" in str(_get(change.new or change.old or {}, "data")):
            yield service, ends, "pinning proxy configuration changed, one replica: no peer keeps the pins", None


def _revision_drain(change: Change) -> Optional[Drain]:
    """How a Cloud Run template change drains: the new named revision differs from the old one and
    the new ``traffics`` keep the old one reachable by a tag at 0 % (see the module docstring)."""
    if change.op != "update":
        return None
    old, new = (_named(_get(side or {}, "template", "revision")) for side in (change.old, change.new))
    if old is None or new is None or old == new:
        return None
    tags = {t.get("revision"): t for t in _traffics(change.new) if t.get("tag")}
    kept = tags.get(old)
    if kept is None or kept.get("percent"):
        return None
    seconds = _seconds(_get(change.new or {}, "labels", DRAIN_LABEL))
    if seconds == 0:
        return None
    return Drain(seconds, _generation(kept), _generation(tags.get(new) or {"revision": new}))


def _retired(change: Change) -> list[str]:
    """Generations whose tag-only (0 %) traffic entry ``change`` removes, e.g. ``["generation 6"]``:
    pruned after their window (:func:`mcp_affinity.cloud_run_shards.generations_of`)."""
    return [_generation(t) for t in retired_targets(change)]


def retired_targets(change: Change) -> list[dict]:
    """The tag-only (0 %) traffic entries of a Cloud Run service that an update removes (each a
    ``traffics`` item: ``{"revision", "tag", "percent", "type"}``); [] for any other change."""
    if change.type != CLOUD_RUN or change.op != "update" or not _traffics(change.new):  # no traffics: no drain
        return []
    kept = {t.get("tag") for t in _traffics(change.new)}
    return [t for t in _traffics(change.old) if t.get("tag") and not t.get("percent") and t.get("tag") not in kept]


def _generation(target: dict) -> str:
    """``generation 7`` for the traffic tag ``gen7``, else ``revision <name>``."""
    generation = tag_generation(target.get("tag"))
    return f"revision {target.get('revision')}" if generation is None else f"generation {generation}"


def _traffics(inputs: Optional[dict]) -> list[dict]:
    found = (inputs or {}).get("traffics")
    return [t for t in found if isinstance(t, dict)] if isinstance(found, list) else []


def _named(revision: Any) -> Optional[str]:
    return revision if isinstance(revision, str) and revision and revision not in UNKNOWNS else None


def _pod_drain(change: Change) -> Optional[Drain]:
    """How a Deployment's pod template change drains: both sides ship the drain (the old pods drain
    with their own ``preStop``; the new side still publishes and checks terminating pods)."""
    if change.op != "update":
        return None
    old, new = _pod_drain_seconds(change.old), _pod_drain_seconds(change.new)
    return Drain(old, "the terminating pods", "the new pods") if old and new else None


def _pod_drain_seconds(inputs: Optional[dict]) -> int:
    """A pod template's session drain: its ``preStop`` sleep (at most its grace period) when it
    has the ``drain-signal`` container, else 0."""
    spec = _get(inputs or {}, "spec", "template", "spec") or {}
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    if not any(c.get("name") == DRAIN_SIGNAL_CONTAINER for c in containers):
        return 0
    sleeps = [_seconds(_get(c, "lifecycle", "preStop", "sleep", "seconds")) or 0 for c in containers]
    # Kubernetes' default grace period is 30 s (pod lifecycle, "Termination of Pods").
    grace = _seconds(spec.get("terminationGracePeriodSeconds"))
    return min(max(sleeps, default=0), 30 if grace is None else grace)


def _seconds(value: Any) -> Optional[int]:
    """Whole seconds from a planned number or label (``1800``, ``1800.0``, ``"1800"``), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    return int(value) if isinstance(value, str) and value.isdigit() else None


def _access(change: Change, index: _Index) -> Iterator[AccessChange]:
    service = index.service(change.urn) or "stack"
    for direction, text in _access_changes(change):
        yield AccessChange(service, direction, text, change.urn)


def _access_changes(change: Change) -> Iterator[tuple[Direction, str]]:
    old, new, op = change.old or {}, change.new or {}, change.op
    if change.type == IAP_SETTINGS:
        yield from _members("IAP programmatic client", _clients(old), _clients(new))
    elif change.type == BACKEND:
        yield from _backend(change)
    elif change.type == SECURITY_POLICY:
        yield from _armor(change)
    elif change.type in (CLOUD_RUN, DEPLOYMENT):
        yield from _workload(change)
    elif change.type in (AUTHORIZATION_POLICY, REQUEST_AUTHENTICATION):
        yield from _mesh_policy(change)


def _mesh_policy(change: Change) -> Iterator[tuple[Direction, str]]:
    """An Istio ``AuthorizationPolicy`` or ``RequestAuthentication`` of a service: added narrows,
    deleted widens; a spec change is judged where the token checks of :mod:`mcp_affinity.mesh_access`
    say who may call (:func:`~mcp_affinity.access_map.token_policy`: issuers, the ``DENY`` policy's
    callers' emails, its token requirement); anything else it changes (action, ``selector``,
    ``targetRefs``, other rules) is listed, direction not judged."""
    kind, name = change.type.rsplit(":", 1)[-1], _name(change)
    if change.op == "delete":
        yield Direction.WIDENS, f"{kind} {name} deleted"
    elif change.op == "create":
        yield Direction.NARROWS, f"{kind} {name} added"
    elif _under(change, "spec"):
        old, new = (_get(side or {}, "spec") or {} for side in (change.old, change.new))
        judged = old.get("action") == new.get("action")  # an action changed turns the rules' meaning around
        if judged:
            yield from _token_changes(change.type, old, new)
        for what in _unjudged(old, new, judged):
            yield Direction.CHANGES, f"{kind} {name} {what} changed"


def _token_changes(kind: str, old: dict, new: dict) -> Iterator[tuple[Direction, str]]:
    """Who a token policy's spec change lets in: issuers and callers added widen, removed narrow."""
    (issuers, emails, required), (issuers_after, emails_after, required_after) = (
        token_policy(kind, spec) for spec in (old, new))
    yield from _members("mesh token issuer", set(issuers), set(issuers_after))
    if emails is not None and emails_after is not None:
        yield from _members("mesh caller", set(emails), set(emails_after))
    elif emails is not None:
        yield Direction.WIDENS, "mesh callers: any holder of a valid token (email check removed)"
    elif emails_after is not None:
        yield Direction.NARROWS, f"mesh callers: only {', '.join(sorted(emails_after)) or 'nobody'}"
    if required != required_after:
        yield (Direction.NARROWS, "mesh token required") if required_after else \
            (Direction.WIDENS, "mesh token no longer required")


def _unjudged(old: dict, new: dict, judged: bool) -> list[str]:
    """What of a token policy's spec changes beyond what :func:`_token_changes` judged (with
    ``judged``): ``action``, ``selector``, ``targetRefs``, ``rules``, ``jwtRules`` (of the issuers
    on both sides)."""
    if judged:
        old, new = _residual(old, new), _residual(new, old)
    return [key for key in sorted(old.keys() | new.keys()) if old.get(key) != new.get(key)]


def _residual(spec: dict, other: dict) -> dict:
    """``spec`` without what :func:`_token_changes` judges: the email check's ``notValues``, and the
    ``jwtRules`` of issuers ``other`` lacks (an issuer added or removed)."""
    rules = [{**rule, "when": [{**w, "notValues": None} if w.get("key") == EMAIL_CLAIM else w
                               for w in rule.get("when") or [] if isinstance(w, dict)]}
             if isinstance(rule, dict) and "when" in rule else rule for rule in spec.get("rules") or []]
    kept = {r.get("issuer") for r in other.get("jwtRules") or [] if isinstance(r, dict)}
    jwt = [r for r in spec.get("jwtRules") or [] if isinstance(r, dict) and r.get("issuer") in kept]
    return {**spec, **({"rules": rules} if "rules" in spec else {}), **({"jwtRules": jwt} if "jwtRules" in spec else {})}


_MEMBERS = {CLOUD_RUN_IAM_MEMBER: "Cloud Run invoker", IAP_BACKEND_IAM_MEMBER: "IAP member"}


def _memberships(changes: list[Change], index: _Index) -> Iterator[AccessChange]:
    """Members a service lets in, before and after: one binding per shard or region is one member,
    so a region added with the same members lets nobody new in. Members known only after apply
    (a service agent's) are left out."""
    touched: dict[tuple[str, str], str] = {}
    for change in changes:
        if change.type in _MEMBERS and (service := index.service(change.urn)):
            touched.setdefault((service, change.type), change.urn)
    for (service, type_), urn in sorted(touched.items()):
        before, after = (_known_members(side, type_, service, index) for side in (index.before, index.after))
        for direction, text in _members(_MEMBERS[type_], before, after):
            yield AccessChange(service, direction, text, urn)


def _known_members(resources: list[dict], type_: str, service: str, index: _Index) -> set[str]:
    return {str(member) for r in resources if r["type"] == type_ and index.service(r["urn"]) == service
            for member in [(r.get("inputs") or {}).get("member")] if isinstance(member, str) and member not in UNKNOWNS}


def _workload(change: Change) -> Iterator[tuple[Direction, str]]:
    old, new = change.old or {}, change.new or {}
    if change.op in ("create", "delete"):
        return
    before, after = _mode_of(old), _mode_of(new)
    if before != after and before is not None and after is not None:
        strength = _MODE_STRENGTH.get(after, 0) - _MODE_STRENGTH.get(before, 0)
        direction = Direction.WIDENS if strength < 0 else Direction.NARROWS if strength > 0 else Direction.CHANGES
        yield direction, f"access mode {before} -> {after}"
    if change.type == CLOUD_RUN:
        if old.get("ingress") != new.get("ingress") and "ingress" in _tops(change):
            widens = new.get("ingress") in (None, "INGRESS_TRAFFIC_ALL")
            yield (Direction.WIDENS if widens else Direction.NARROWS), \
                f"ingress {_show(old.get('ingress'))} -> {_show(new.get('ingress'))}"
        if bool(old.get("invokerIamDisabled")) != bool(new.get("invokerIamDisabled")):
            off = bool(new.get("invokerIamDisabled"))
            yield (Direction.WIDENS if off else Direction.NARROWS), \
                f"Cloud Run invoker check {'off' if off else 'on'}"


def _backend(change: Change) -> Iterator[tuple[Direction, str]]:
    old, new = change.old or {}, change.new or {}
    if change.op in ("create", "delete"):
        return
    iap_before, iap_after = _get(old, "iap", "enabled") is True, _get(new, "iap", "enabled") is True
    if iap_before != iap_after:
        yield (Direction.NARROWS if iap_after else Direction.WIDENS), f"IAP {'on' if iap_after else 'off'} at the load balancer"
    if (old.get("securityPolicy") is None) != (new.get("securityPolicy") is None):
        attached = new.get("securityPolicy") is not None
        yield (Direction.NARROWS if attached else Direction.WIDENS), \
            f"Cloud Armor policy {'attached' if attached else 'detached'}"


def _armor(change: Change) -> Iterator[tuple[Direction, str]]:
    if change.op == "create":
        return
    if change.op == "delete":
        yield Direction.WIDENS, f"Cloud Armor policy {_name(change)} deleted"
        return
    old_rules, new_rules = _rules(change.old), _rules(change.new)
    for priority in sorted(old_rules.keys() | new_rules.keys(), key=_priority_key):
        before, after = old_rules.get(priority), new_rules.get(priority)
        if before == after:
            continue
        label = f"Cloud Armor rule {priority}"
        if after is None:
            blocks = str(before.get("action")).startswith(_ARMOR_BLOCKS) and not before.get("preview")
            yield (Direction.WIDENS if blocks else Direction.CHANGES), f"{label} removed ({_show(before.get('action'))})"
        elif before is None:
            yield Direction.NARROWS if not after.get("preview") else Direction.CHANGES, \
                f"{label} added ({_show(after.get('action'))})"
        else:
            yield from _rule_change(label, before, after)


def _rule_change(label: str, before: dict, after: dict) -> Iterator[tuple[Direction, str]]:
    old_limit, new_limit = _limit(before), _limit(after)
    if old_limit != new_limit and old_limit and new_limit:
        looser = new_limit[0] / new_limit[1] > old_limit[0] / old_limit[1]
        yield (Direction.WIDENS if looser else Direction.NARROWS), \
            f"{label} limit {_count(old_limit[0])}/{_count(old_limit[1])}s -> {_count(new_limit[0])}/{_count(new_limit[1])}s"
    if bool(before.get("preview")) != bool(after.get("preview")):
        yield (Direction.WIDENS if after.get("preview") else Direction.NARROWS), \
            f"{label} {'in preview only' if after.get('preview') else 'enforced'}"
    if before.get("action") != after.get("action"):
        opens = str(after.get("action")) == "allow" and str(before.get("action")).startswith(_ARMOR_BLOCKS)
        yield (Direction.WIDENS if opens else Direction.CHANGES), \
            f"{label} action {_show(before.get('action'))} -> {_show(after.get('action'))}"
    if before.get("match") != after.get("match"):
        yield Direction.CHANGES, f"{label} match changed"


def _members(what: str, before: set[str], after: set[str]) -> Iterator[tuple[Direction, str]]:
    for member in sorted(before - after):
        yield Direction.NARROWS, f"{what} removed: {member}"
    for member in sorted(after - before):
        yield Direction.WIDENS, f"{what} added: {member}"


def _clients(inputs: dict) -> set[str]:
    clients = _get(inputs, "accessSettings", "oauthSettings", "programmaticClients")
    return {str(c) for c in clients} if isinstance(clients, list) else set()


def _rules(inputs: Optional[dict]) -> dict[str, dict]:
    rules = (inputs or {}).get("rules")
    return {_show(r.get("priority")): r for r in rules if isinstance(r, dict)} if isinstance(rules, list) else {}


def _limit(rule: dict) -> Optional[tuple[float, float]]:
    count = _get(rule, "rateLimitOptions", "rateLimitThreshold", "count")
    interval = _get(rule, "rateLimitOptions", "rateLimitThreshold", "intervalSec")
    if isinstance(count, (int, float)) and isinstance(interval, (int, float)) and interval > 0:
        return float(count), float(interval)
    return None


def _priority_key(priority: str) -> tuple:
    return (0, int(priority), "") if priority.isdigit() else (1, 0, priority)


def _mode_of(inputs: dict) -> Optional[str]:
    labels = inputs.get("labels") or _get(inputs, "metadata", "labels")
    return labels.get("mcp-access") if isinstance(labels, dict) else None


def acknowledged(resource: dict) -> bool:
    """True when a workload carries ``acknowledge: [access-widened]`` (:data:`ACK_LABEL`)."""
    inputs = resource.get("inputs") or {}
    labels = inputs.get("labels") or _get(inputs, "metadata", "labels")
    return isinstance(labels, dict) and labels.get(ACK_LABEL) == ACK_VALUE


def workload_env(resource: dict, name: str) -> Any:
    """Env var ``name`` of a Cloud Run service's or a Deployment's containers, else None."""
    for env in _container_envs(resource):
        if isinstance(env, dict) and env.get("name") == name:
            value = env.get("value")
            return value.get("value") if isinstance(value, dict) and SECRET_SIG in value else value
    return None


def workload_uses_store(resource: dict) -> bool:
    """True when a Cloud Run service or Deployment reads a store's address (:data:`STORE_ENVS`)."""
    return any(isinstance(e, dict) and e.get("name") in STORE_ENVS for e in _container_envs(resource))


def shard_key(resource: dict) -> Optional[str]:
    """A session shard's key (``MCP_SHARD_KEY`` or ``MCP_SESSION_ID_PREFIX`` of its containers), else None."""
    key = workload_env(resource, "MCP_SHARD_KEY") or workload_env(resource, "MCP_SESSION_ID_PREFIX")
    return str(key).rstrip(".") if key else None


def _container_envs(resource: dict) -> Iterator[Any]:
    inputs = resource.get("inputs") or {}
    if resource.get("type") == CLOUD_RUN:
        containers, key = _get(inputs, "template", "containers"), "envs"
    elif resource.get("type") == DEPLOYMENT:
        containers, key = _get(inputs, "spec", "template", "spec", "containers"), "env"
    else:
        return
    for container in containers if isinstance(containers, list) else []:
        envs = container.get(key) if isinstance(container, dict) else None
        yield from envs if isinstance(envs, list) else []


def _under(change: Change, prefix: str) -> bool:
    return any(p == prefix or p.startswith(prefix + ".") or p.startswith(prefix + "[") for p in change.paths)


def _tops(change: Change) -> set[str]:
    return {p.split(".")[0].split("[")[0] for p in change.paths}


def _get(bag: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(bag, dict):
            return None
        bag = bag.get(key)
    return bag


def _urn_chain(urn: str) -> list[str]:
    """The types in ``urn`` (``urn:pulumi:S::P::ancestor$parent$type::name``), outermost first."""
    parts = urn.split("::")
    return parts[2].split("$") if len(parts) >= 4 else []


def _urn_type(urn: str) -> str:
    return (_urn_chain(urn) or [""])[-1]


def _name(change: Change) -> str:
    return change.urn.rsplit("::", 1)[-1]


def _count(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _show(value: Any) -> str:
    if isinstance(value, str) and value in UNKNOWNS:
        return COMPUTED
    return "unset" if value is None else str(value)
