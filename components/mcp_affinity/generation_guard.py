"""GenerationGuard: a plain ``pulumi preview`` / ``pulumi up`` refuses a template change that keeps a
named Cloud Run revision, before any Cloud Run service is touched.

Why: with a drain, each generation of a sharded service is a named revision (``{service}-gen7``,
:func:`~mcp_affinity.cloud_run_shards.revision_name`). A change under ``template`` (image, env,
resources, the ingress configuration's secret version...) makes Cloud Run create a new revision,
and it refuses a second revision of the same name ("revision: The unique name for the revision",
https://cloud.google.com/run/docs/reference/rest/v2/projects.locations.services#RevisionTemplate),
so ``pulumi up`` would fail midway. The program cannot see the previous state; a provider can: the
engine hands a provider's ``Check`` the resource's old inputs.

What: one dynamic resource (:class:`GenerationGuard`, type :data:`~mcp_affinity.wire.GENERATION_GUARD`)
per sharded :class:`~mcp_affinity.CloudRunMcpService` with a drain. Inputs: ``service`` (the
component's name, the key under ``services``), ``generation`` (the current one), ``project`` (the
services' project, ``""`` for the provider's default) and ``revisions``: each shard's revision as
``{region}/{revision}`` (:func:`revision_key`) -> field of the Cloud Run ``template`` the shard's
service is given (``template.containers``, ``template.timeout``...) -> :func:`digest` of its value.
Each shard's Cloud Run service ``depends_on`` the guard.

When it refuses (:func:`reused_revisions`): a revision present in the old and the new inputs whose
template gained or lost a field or has a field of another known digest, i.e. the same revision name
for another template. A new generation names new revisions; a new region, shard or service name
adds names; removed ones are gone; another project holds other revisions: none of these is
compared. The message is the review's (:func:`reused_revision`), naming the changed fields. A
digest is taken per field so that a value known only after apply (a replaced secret version, in
``template.volumes``) leaves the other fields judged in the preview; an unknown one is judged
during the update, when the engine checks again with every input known, still before the services.

Verified in Pulumi's source (pulumi/pulumi, ``pkg/resource/deploy/step_generator.go``,
``continueStepsFromImport``): for every registration, in a preview and in an update, the engine
calls the provider's ``Check`` with the old inputs (``Olds``) when the resource exists, with
``AllowUnknowns`` only in a preview; check failures are printed as errors and the step generator
bails ("resource ... is invalid"), which cancels the deployment (``deployment_executor.go``). A
registration returns only when its step is done (``source_eval.go``, ``RegisterResource`` waits on
``step.done``), and the Python SDK sends a resource's registration only once its ``depends_on``
URNs resolved (``pulumi/runtime/rpc.py``, ``_add_dependency``), so a refused guard leaves its
services unregistered. The SDK's dynamic provider (``pulumi/dynamic/__main__.py``) deserializes
``Check``'s inputs keeping unknowns (the ``rpc.UNKNOWN`` string) and sends our failures back.

Caveats. The provider is pickled by reference (dill: ``mcp_affinity.generation_guard`` and the
class name), so the provider process, which Pulumi starts with the project's Python (Pulumi.yaml
``runtime.options.virtualenv`` or ``toolchain``), must import ``mcp_affinity``; keep the class's
module and name stable, since ``pulumi destroy`` unpickles the copy in the state. The first
``pulumi up`` that creates the guard has no old inputs to compare. ``pulumi up --target`` of a
service without its guard skips the guard's check (the engine stubs ``Check`` of a resource not
targeted). The digests cover the template the program gives; a revision Cloud Run made from a
template changed outside Pulumi is not seen.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Mapping, Optional

import pulumi
import pulumi.dynamic as dynamic

from .wire import PLANNED_ID, SECRET_SIG, SECRET_VALUE_SIG, UNKNOWNS


_GENERATION = re.compile(r"-gen(\d+)$")


def reused_revision(cloud_run_service: str, revision: str, service: Optional[str], changed: str = "") -> str:
    """Why a template change that keeps the named ``revision`` fails at apply, and the fix: a new
    generation. ``service`` is the key under ``services`` (the component's name), ``changed`` the
    changed template paths when known (``template.containers[0].image``). One wording for the
    review's rule ``change-reuses-revision-name`` and :class:`GenerationGuard`."""
    found = _GENERATION.search(revision)
    entry = f'{{"{int(found.group(1)) + 1}": "<now, UTC>"}}' if found else '{"<N+1>": "<now, UTC>"}'
    return (f"Cloud Run service {cloud_run_service} keeps revision {revision} while its template changes"
            f"{f' ({changed})' if changed else ''}: Cloud Run refuses a second revision of that name, so pulumi up "
            f"fails; add a generation: services.{service or '<service>'}.generations: {entry}")


def revision_key(region: str, revision: str) -> str:
    """A revision in the guard's inputs: ``europe-west1/mcp-t-tools-s0-gen7`` (a revision name is its
    service's name and ``-gen{N}``, :func:`~mcp_affinity.cloud_run_shards.revision_name`)."""
    return f"{region}/{revision}"


def digest(value: Any) -> str:
    """``sha256:`` and the hex SHA-256 of ``value`` as canonical JSON (sorted keys); raises
    ``TypeError`` on a value JSON cannot hold, rather than hashing a ``repr`` that may vary. Only
    the first 16 hex digits are kept.

    Under ``mcp-affinity plan`` an id known only after apply reads as a placeholder
    (:data:`~mcp_affinity.wire.PLANNED_ID`); a digest of one would look known and differ from plan
    to plan, so the result keeps the mark and the plan shows it unknown, as a preview would."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if PLANNED_ID in text:
        return PLANNED_ID + "digest"
    # 64 bits: enough to tell one template from the next, short enough for a reviewer's diff.
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def template_digests(template: Mapping[str, Any]) -> dict[str, pulumi.Output[str]]:
    """``template.{field}`` (camelCase, as plans and the review name it) -> :func:`digest` of the
    field's value once its Outputs resolve (unknown in a preview until then; secret if it holds one)."""
    return {"template." + _camel(field): pulumi.Output.from_input(value).apply(digest)
            for field, value in sorted(template.items())}


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


def _plain(value: Any) -> Any:
    """A value without the secret envelope (the mock runtime keeps it; the engine sends plain values
    to a provider that, like the dynamic one, does not accept secrets)."""
    if isinstance(value, dict) and value.get(SECRET_SIG) == SECRET_VALUE_SIG:
        return value.get("value")
    return value


def _known(value: Any) -> bool:
    return isinstance(value, str) and value not in UNKNOWNS


def reused_revisions(olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[str]:
    """One message per revision that ``news`` keeps from ``olds`` for another template (inputs of
    :class:`GenerationGuard`); empty when there are no old inputs (a create). Unknown values are
    not judged."""
    before, after = _plain(olds.get("revisions")), _plain(news.get("revisions"))
    if not isinstance(before, dict) or not isinstance(after, dict) or _moved(olds, news):
        return []
    service = _plain(news.get("service"))
    messages = []
    for key in sorted(before.keys() & after.keys()):
        changed = _changed_fields(_plain(before[key]), _plain(after[key]))
        if changed:
            revision = key.split("/", 1)[1]
            messages.append(reused_revision(_GENERATION.sub("", revision), revision,
                                            service if _known(service) else None, ", ".join(changed)))
    return messages


def _moved(olds: Mapping[str, Any], news: Mapping[str, Any]) -> bool:
    """The services went to another project (known on both sides): their revisions are new ones."""
    before, after = _plain(olds.get("project", "")), _plain(news.get("project", ""))
    return isinstance(before, str) and isinstance(after, str) and _known(after) and before != after


def _changed_fields(old: Any, new: Any) -> list[str]:
    """The template fields added, removed, or of two known, different digests."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return []
    before = {field: _plain(value) for field, value in old.items()}
    after = {field: _plain(value) for field, value in new.items()}
    return sorted(field for field in before.keys() | after.keys()
                  if field not in before or field not in after
                  or (_known(before[field]) and _known(after[field]) and before[field] != after[field]))


class GenerationGuardProvider(dynamic.ResourceProvider):
    """Checks :class:`GenerationGuard` inputs (:func:`reused_revisions`); creating, updating and
    deleting one only records its inputs in the stack's state (nothing in the cloud)."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.CheckResult:
        # No property named: the engine would print the whole revisions map beside each reason.
        return dynamic.CheckResult(news, [dynamic.CheckFailure("", message) for message in reused_revisions(olds, news)])

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        return dynamic.CreateResult(f"generation-guard-{props['service']}", _outputs(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        return dynamic.UpdateResult(_outputs(news))


def _outputs(props: Mapping[str, Any]) -> dict[str, Any]:
    return {key: props[key] for key in ("service", "generation", "project", "revisions") if key in props}


class GenerationGuard(dynamic.Resource, module="mcp-affinity", name="GenerationGuard"):
    """The guard of one sharded service: ``service`` its name (the key under ``services``),
    ``generation`` the current generation, ``project`` the services' (None: the provider's default),
    ``templates`` each shard's revision (:func:`revision_key`) -> the Cloud Run ``template`` given to
    that shard's service (Outputs allowed, :func:`template_digests`)."""

    service: pulumi.Output[str]
    generation: pulumi.Output[int]
    project: pulumi.Output[str]
    revisions: pulumi.Output[dict]

    def __init__(self, name: str, service: str, generation: int, project: Optional[str],
                 templates: Mapping[str, Mapping[str, Any]], opts: Optional[pulumi.ResourceOptions] = None):
        revisions = {key: template_digests(template) for key, template in sorted(templates.items())}
        super().__init__(GenerationGuardProvider(), name, {"service": service, "generation": generation,
                                                           "project": project or "", "revisions": revisions}, opts)
