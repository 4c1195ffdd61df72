"""Run a Pulumi Python program under the mock runtime and record what it would register.

The recording monitor sees each ``RegisterResource`` request exactly as the engine would: type,
name, parent URN, custom or component, the serialized property bag and the resource options that
change what ``pulumi up`` does (``protect``, ``ignoreChanges``, ``dependsOn``,
``deleteBeforeReplace``, ``replaceOnChanges``, ``provider``; fields of ``RegisterResourceRequest``
in ``pulumi/proto/pulumi/resource.proto``). The recording engine keeps every warning the program
logs (``pulumi.log.warn``) with the URN of the resource it names. The run is a preview
(``dry_run``): outputs that only the provider computes stay unknown, as in ``pulumi preview``.

Python's cyclic garbage collector is paused while the program runs (the SDK allocates many
short-lived cycles; collecting them was 40-60 % of a plan, measured with ``benchmarks/plan_speed.py``) and what the run leaves is
frozen (:func:`gc.freeze`) so later collections skip it.
"""

from __future__ import annotations

import gc
import logging
import os
import runpy
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pulumi
from google.protobuf import json_format
from .. import impact, pulumi_shim as shim
from ..pulumi_shim import run_program, start_mock_run, sync_await as _sync_await

from .project import PulumiProject

from ..wire import COMPUTED, MASKED, SECRET_SIG, SECRET_VALUE_SIG, UNKNOWN  # noqa: F401 (re-exported)
from ..secret_env import mask_flagged_env
from ..wire import GET_PROJECT, PLANNED_ID
from ..references import REFERENCES


@dataclass
class PlannedResource:
    """One registered resource: ``inputs`` is the engine's property bag, secrets masked."""

    urn: str
    type: str
    name: str
    parent: Optional[str]
    custom: bool
    inputs: dict[str, Any]
    protect: bool = False
    ignore_changes: list[str] = field(default_factory=list)
    raw_inputs: dict[str, Any] = field(default_factory=dict, repr=False)
    depends_on: list[str] = field(default_factory=list)
    dependencies: list[str] = field(default_factory=list, repr=False)
    """Every URN this resource waits for, explicit or carried by an input (in memory, for ordering checks)."""
    delete_before_replace: bool = False
    replace_on_changes: list[str] = field(default_factory=list)
    provider: Optional[str] = None
    provider_ref: Optional[str] = None
    """The engine's provider reference, ``"<provider URN>::<provider id>"``."""
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)
    """Input name -> the URNs its value came from (the engine's ``propertyDependencies``)."""
    references: dict[str, str] = field(default_factory=dict)
    """Input path (``pathMatchers.0.defaultService``) -> URN of the planned resource whose id the
    input is; the input itself stays unknown, as in ``pulumi preview`` (:mod:`mcp_affinity.references`)."""
    aliases: list[str] = field(default_factory=list)
    """The URNs this resource was known by (its ``aliases`` option and its parents'), as the engine
    derives them; ``diff`` matches a resource whose URN moved through them."""

    def manifest(self) -> dict[str, Any]:
        """The inputs as the provider would send them on: secrets unwrapped, whole numbers as ints.

        Only in memory (for schema checks); never written by the plan command.
        """
        return _unwrap(self.raw_inputs)

    def options(self) -> dict[str, Any]:
        """``{"protect", "ignoreChanges", "dependsOn", "deleteBeforeReplace", "replaceOnChanges",
        "provider"}``: ``dependsOn`` the explicit ``depends_on`` URNs (dependencies that no input
        carries), ``provider`` the URN of an explicit provider or None for the default one."""
        return {"protect": self.protect, "ignoreChanges": list(self.ignore_changes),
                "dependsOn": list(self.depends_on), "deleteBeforeReplace": self.delete_before_replace,
                "replaceOnChanges": list(self.replace_on_changes), "provider": self.provider}

    def to_json(self) -> dict[str, Any]:
        """The resource as checks and the diff read it (:func:`.plan_file.validate`'s resources)."""
        document = {"urn": self.urn, "type": self.type, "name": self.name, "parent": self.parent,
                    "custom": self.custom, "inputs": self.inputs, "options": self.options(),
                    "dependencies": list(self.dependencies)}
        if self.references:
            document[REFERENCES] = dict(sorted(self.references.items()))
        if self.aliases:
            document["aliases"] = list(self.aliases)
        return document

    def to_step(self) -> dict[str, Any]:
        """A ``create`` step as ``pulumi preview --json`` writes it (see :mod:`.plan_file`)."""
        optional = {"parent": self.parent, "protect": self.protect, "provider": self.provider_ref,
                    "dependencies": list(self.dependencies), "propertyDependencies": self.property_dependencies,
                    "aliases": list(self.aliases),
                    "ignoreChanges": list(self.ignore_changes), "replaceOnChanges": list(self.replace_on_changes)}
        state = {"urn": self.urn, "custom": self.custom, "type": self.type, "inputs": self.inputs,
                 # omitted when empty, as the engine's ``omitempty`` fields are
                 **{k: v for k, v in optional.items() if v not in (None, [], {}, False)}}
        step: dict[str, Any] = {"op": "create", "urn": self.urn, "newState": state, "detailedDiff": None}
        if self.delete_before_replace:
            step["deleteBeforeReplace"] = True  # an addition: the engine's state does not record it
        if self.references:
            step[REFERENCES] = dict(sorted(self.references.items()))  # an addition (mcp_affinity.references)
        return step


class LoggedWarning(str):
    """A warning the program logged: the message (a ``str``) and ``urn``, the resource it names or None."""

    urn: Optional[str]

    def __new__(cls, message: str, urn: Optional[str] = None) -> "LoggedWarning":
        warning = super().__new__(cls, message)
        warning.urn = urn or None
        return warning

    def to_json(self) -> dict[str, Any]:
        """A diagnostic as ``pulumi preview --json`` writes it: ``{"urn", "message", "severity"}``."""
        return {"urn": self.urn, "message": str(self), "severity": "warning"}


@dataclass
class Plan:
    """The result of a run: every resource in registration order, stack outputs and warnings."""

    project: str
    stack: str
    resources: list[PlannedResource] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    warnings: list[LoggedWarning] = field(default_factory=list)
    ids: dict[str, str] = field(default_factory=dict, repr=False)
    """Placeholder id (:data:`ID_MARK`) -> URN, while the program runs."""

    def to_json(self) -> dict[str, Any]:
        """The plan in the shape of ``pulumi preview --json`` (:mod:`.plan_file` describes it): every
        resource a ``create`` step, the warnings as ``diagnostics``; our additions ``project``,
        ``stack``, ``outputs`` and ``sessionImpact`` (:func:`mcp_affinity.impact.session_holders`)
        in fields of their own."""
        return {"steps": [r.to_step() for r in self.resources],
                "changeSummary": {"create": len(self.resources)} if self.resources else {},
                "diagnostics": [w.to_json() for w in self.warnings],
                "project": self.project, "stack": self.stack, "outputs": self.outputs,
                "sessionImpact": impact.session_holders([r.to_json() for r in self.resources])}

    def document(self) -> dict[str, Any]:
        """The plan as ``check``, ``diff`` and the picture read it: :func:`.plan_file.validate` of
        :meth:`to_json` (``{"project", "stack", "resources": [...], "outputs", "warnings", ...}``)."""
        from .plan_file import validate
        return validate(self.to_json())

    def by_type(self, type_: str) -> list[PlannedResource]:
        return [r for r in self.resources if r.type == type_]

    def get(self, type_: str, name: str) -> PlannedResource:
        """The one resource of ``type_`` named ``name``; KeyError if there is none."""
        for resource in self.resources:
            if resource.type == type_ and resource.name == name:
                return resource
        raise KeyError(f"no {type_} named {name}")


class _RecordingMonitor(shim.MockMonitor):
    def __init__(self, mock: shim.Mocks, plan: Plan):
        super().__init__(mock)
        self.plan = plan
        self.stack_urn = ""
        self.aliases_of: dict[str, list[str]] = {}

    def alias_urns(self, request, urn: str) -> list[str]:
        """The URNs a registration's aliases name, as the engine derives them: each alias spec with
        the current name, type and parent where it leaves them out (no parent: the stack's root),
        and the resource under each of its parent's aliases (children inherit a parent's move;
        https://www.pulumi.com/docs/iac/operations/stack-management/refactoring-with-aliases/). An alias to another
        stack or project is not modelled."""
        found = []
        for alias in request.aliases:
            if alias.WhichOneof("alias") == "urn":
                found.append(alias.urn)
                continue
            spec = alias.spec
            parent = self.stack_urn if spec.noParent else (spec.parentUrn or request.parent)
            found.append(self.make_urn(parent, spec.type or request.type, spec.name or request.name))
        found += [self.make_urn(parent, request.type, request.name) for parent in self.aliases_of.get(request.parent, [])]
        return sorted(set(found) - {urn})

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            self.stack_urn = response.urn
        else:
            aliases = self.aliases_of[response.urn] = self.alias_urns(request, response.urn)
            if response.id.startswith(ID_MARK):
                self.plan.ids[response.id] = response.urn
            bag = json_format.MessageToDict(request.object, preserving_proto_field_name=True)
            by_input = {key: sorted(set(deps.urns)) for key, deps in request.propertyDependencies.items() if deps.urns}
            carried = {urn for urns in by_input.values() for urn in urns}
            self.plan.resources.append(PlannedResource(
                urn=response.urn, type=request.type, name=request.name,
                parent=request.parent or None, custom=bool(request.custom), inputs=mask_flagged_env(mask_secrets(bag)),
                protect=bool(request.protect), ignore_changes=list(request.ignoreChanges), raw_inputs=bag,
                depends_on=sorted(set(request.dependencies) - carried),
                dependencies=sorted(set(request.dependencies) | carried),
                delete_before_replace=bool(request.deleteBeforeReplace),
                replace_on_changes=list(request.replaceOnChanges),
                # A provider reference is "<provider URN>::<provider id>".
                provider=request.provider.rsplit("::", 1)[0] if request.provider else None,
                provider_ref=request.provider or None, property_dependencies=dict(sorted(by_input.items())),
                aliases=aliases,
            ))
        return response


class _RecordingEngine(shim.MockEngine):
    """The mock engine, keeping each warning with the URN it names (``LogRequest.urn``)."""

    def __init__(self, plan: Plan):
        super().__init__(logging.getLogger("mcp-affinity.plan"))
        self.plan = plan

    def Log(self, request) -> None:
        if request.severity == shim.WARNING:
            self.plan.warnings.append(LoggedWarning(request.message, request.urn))


ID_MARK = PLANNED_ID
"""How a planned resource's id reads while the program runs (``ID_MARK`` + a serial number): each id
is a distinct placeholder, so an input that names a resource by id can be traced back to it. After the
run every placeholder in the inputs and outputs is turned back into the unknown sentinel (the id is
known only after apply) and the input's path recorded in :attr:`PlannedResource.references`."""


class _PreviewMocks(shim.Mocks):
    """Providers answer a preview of a create: inputs echoed, computed outputs unknown, the id a
    placeholder (:data:`ID_MARK`) that the plan turns back into an unknown naming its resource."""

    def __init__(self) -> None:
        super().__init__()
        self._serial = 0

    def new_resource(self, args: shim.MockResourceArgs):
        self._serial += 1
        return f"{ID_MARK}{self._serial}", dict(args.inputs)

    def call(self, args: shim.MockCallArgs):
        # Invokes run for real at preview; offline, the project number reads as a placeholder.
        if args.token == GET_PROJECT:
            return {"number": "PROJECT_NUMBER", "projectId": args.args.get("projectId")}
        return {}


def mask_secrets(value: Any) -> Any:
    """Replace the value inside every secret envelope of a property bag with ``[secret]``."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == SECRET_VALUE_SIG:
            return {SECRET_SIG: value[SECRET_SIG], "value": MASKED}
        return {k: mask_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    return value


def _unwrap(value: Any) -> Any:
    if isinstance(value, dict):
        if SECRET_SIG in value:
            return _unwrap(value.get("value"))
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def run_plan(project: PulumiProject, stack: str, program: Optional[Path] = None,
             mock: Optional[shim.Mocks] = None, preview: bool = True) -> Plan:
    """Run ``project``'s program (or ``program``, a directory or file) for ``stack`` under mocks.

    ``mock`` and ``preview`` as in :func:`run_function` (tests give computed outputs values).

    Raises whatever the program raises (a :class:`mcp_affinity.ConfigError` for bad config),
    and :class:`~mcp_affinity.plan.project.ProjectError` for a missing stack file.
    """
    config = project.stack_config(stack)
    target = program or project.main
    with _program_context(target):
        return run_function(
            lambda: runpy.run_path(str(target), run_name="__main__"),
            project=project.name, stack=stack, config=config.values, secret_keys=config.secret_keys,
            root_directory=str(project.root), mock=mock, preview=preview,
        )


def run_function(
    program: Callable[[], Any],
    *,
    project: str = "project",
    stack: str = "stack",
    mock: Optional[shim.Mocks] = None,
    preview: bool = True,
    config: Optional[dict[str, str]] = None,
    secret_keys: Optional[list[str]] = None,
    root_directory: Optional[str] = None,
) -> Plan:
    """Run ``program`` (a function that creates resources) under mocks and record the plan.

    ``mock`` answers each resource registration (default: a preview of a create, with computed
    outputs unknown). Tests pass their own to give computed outputs values.
    """
    plan = Plan(project=project, stack=stack)
    mock = mock or _PreviewMocks()
    with gc_paused():
        start_mock_run(mock, _RecordingMonitor(mock, plan), _RecordingEngine(plan), project=project, stack=stack,
                       preview=preview, config=config or {}, secret_keys=secret_keys or [],
                       root_directory=root_directory)
        plan.outputs = _resolve_outputs(run_program(program))
    _trace_references(plan)
    # Registration order depends on the event loop; URN order is stable from run to run.
    plan.resources.sort(key=lambda r: r.urn)
    return plan


def _trace_references(plan: Plan) -> None:
    """Turn every placeholder id back into the unknown sentinel: in inputs (recording, for an input
    that is exactly a resource's id, the path and that resource's URN) and in the stack outputs."""
    if not plan.ids:
        return
    for resource in plan.resources:
        found: dict[str, str] = {}
        resource.inputs = _unmark(resource.inputs, plan.ids, "", found)
        resource.raw_inputs = _unmark(resource.raw_inputs, plan.ids, "", {})
        resource.references = found
    plan.outputs = _unmark(plan.outputs, plan.ids, "", {}, shown=COMPUTED)
    plan.ids = {}


def _unmark(value: Any, ids: dict[str, str], path: str, found: dict[str, str], shown: str = UNKNOWN) -> Any:
    if isinstance(value, dict):
        return {k: _unmark(v, ids, f"{path}.{k}" if path else str(k), found, shown) for k, v in value.items()}
    if isinstance(value, list):
        return [_unmark(v, ids, f"{path}.{i}" if path else str(i), found, shown) for i, v in enumerate(value)]
    if isinstance(value, str) and ID_MARK in value:
        if value in ids:
            found[path] = ids[value]
        return shown
    return value


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector, then freeze what survived (:func:`gc.freeze`).

    ``benchmarks/plan_speed.py`` measured collections at 40-60 % of a plan; with them paused and the survivors frozen
    the prod plan took 0.43x and a 200-service stack 0.40x, with the same JSON.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


@contextmanager
def _program_context(target: Path) -> Iterator[None]:
    """Run as the language host does: working directory and import path at the program's folder."""
    folder = target if target.is_dir() else target.parent
    saved_cwd, saved_path, saved_modules = os.getcwd(), list(sys.path), set(sys.modules)
    os.chdir(folder)
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        sys.path[:] = saved_path
        for module in set(sys.modules) - saved_modules:
            origin = getattr(sys.modules[module], "__file__", None) or ""
            if origin.startswith(str(folder)):
                del sys.modules[module]


def _resolve_outputs(stack: Any) -> dict[str, Any]:
    outputs = getattr(stack, "outputs", {}) or {}
    return {key: _resolve(value) for key, value in sorted(outputs.items())}


def _resolve(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _resolve(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_resolve(v) for v in value]
    output = pulumi.Output.from_input(value)
    if _sync_await(output.is_secret()):
        return MASKED
    if not _sync_await(output.is_known()):
        return COMPUTED
    return _plain(_sync_await(output.future()))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None:
        return COMPUTED
    return value
