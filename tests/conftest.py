"""Shared test fixtures: mocks that give computed outputs values, and plan helpers."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
from pathlib import Path
from typing import Callable

import pulumi
import pytest
from pulumi.runtime import mocks, settings

from mcp_affinity.cli import find_project, run_plan
from mcp_affinity.cli.plan_file import validate
from mcp_affinity.cli.runner import Plan, run_function

ROOT = Path(__file__).resolve().parents[1]
SECRET_SIG = "4dabf18193072939515e22adb298388d"

AUTH = "mock-auth-string-3f9a"
CA = "-----BEGIN CERTIFICATE-----\nMOCK\n-----END CERTIFICATE-----"

# Computed outputs the providers would return, by resource type.
COMPUTED = {
    "gcp:redis/instance:Instance": {"host": "10.20.0.3", "port": 6378, "authString": AUTH,
                                    "serverCaCerts": [{"cert": CA}]},
    "gcp:cloudrunv2/service:Service": {"uri": "https://svc-abc-ew.a.run.app"},
    "gcp:serviceaccount/account:Account": {"email": "sa@p.iam.gserviceaccount.com",
                                           "member": "serviceAccount:sa@p.iam.gserviceaccount.com"},
    "gcp:secretmanager/secretVersion:SecretVersion": {"version": "1"},
    "gcp:compute/globalAddress:GlobalAddress": {"address": "203.0.113.10"},
    "gcp:compute/backendService:BackendService": {"generatedId": 4711000042},
    "gcp:projects/serviceIdentity:ServiceIdentity": {
        "email": "service-123@gcp-sa-iap.iam.gserviceaccount.com",
        "member": "serviceAccount:service-123@gcp-sa-iap.iam.gserviceaccount.com"},
}



@pytest.fixture(autouse=True)
def _current_event_loop():
    """Give every test a current event loop: ``anyio.run``/``asyncio.run`` in an end-to-end test
    leaves the main thread without one, and Pulumi's mock runtime needs one (Python 3.11 raises
    "There is no current event loop" otherwise, failing every later test in the process)."""
    policy = asyncio.get_event_loop_policy()
    try:
        policy.get_event_loop()
    except RuntimeError:
        policy.set_event_loop(policy.new_event_loop())
    yield

class GcpMocks(mocks.Mocks):
    """Echo inputs, give each resource an id, and fill the computed outputs above."""

    def new_resource(self, args: mocks.MockResourceArgs):
        state = {**args.inputs, **COMPUTED.get(args.typ, {})}
        if args.typ == "gcp:secretmanager/secret:Secret":
            state["id"] = f"projects/p/secrets/{args.inputs.get('secretId')}"
        return f"{args.name}-id", state

    def call(self, args: mocks.MockCallArgs):
        if args.token == "gcp:organizations/getProject:getProject":
            return {"number": "123456789012", "projectId": args.args.get("projectId")}
        return {}


@pytest.fixture
def record() -> Callable[[Callable[[], object]], Plan]:
    """Run a function that creates resources under GcpMocks; return the recorded plan."""

    def _record(program: Callable[[], object]) -> Plan:
        return run_function(program, project="test", stack="test", mock=GcpMocks(), preview=False)

    return _record


@pytest.fixture
def gcp_mocks() -> None:
    """Install GcpMocks for a test decorated with @pulumi.runtime.test."""
    settings.ROOT.set(None)
    pulumi.runtime.set_mocks(GcpMocks(), project="test", stack="test", preview=False)


@functools.cache
def plan_stack(stack: str, known: bool = False) -> Plan:
    """The plan of this repository's program for ``stack``, as ``mcp-affinity plan`` makes it.

    Planned once per test process (each pytest-xdist worker has its own): the result is shared,
    so never modify it; :func:`plan_document` gives a copy to edit.

    With ``known``, an update instead of a preview: GcpMocks give every computed output a value,
    so whole manifests can be schema-checked.
    """
    if known:
        return run_plan(find_project(ROOT), stack, mock=GcpMocks(), preview=False)
    return run_plan(find_project(ROOT), stack)


@functools.cache
def plan_example(name: str) -> Plan:
    """The plan of ``examples/Pulumi.<name>.yaml``, planned once per test process (shared: do not edit)."""
    project = dataclasses.replace(find_project(ROOT), stack_config_dir=ROOT / "examples")
    return run_plan(project, name)


@functools.cache
def _plan_text(stack: str) -> str:
    return json.dumps(plan_stack(stack).to_json())


def plan_document(stack: str) -> dict:
    """A fresh copy of the stack's plan as the commands read it (:func:`plan_file.validate` of what
    ``plan --json`` writes: ``resources`` each with ``inputs`` and ``options``), free to edit."""
    return validate(json.loads(_plan_text(stack)))


def write_plan(stack: str, path: Path) -> Path:
    """Write the stack's plan JSON to ``path`` as ``mcp-affinity plan --json`` does; return ``path``."""
    path.write_text(json.dumps(json.loads(_plan_text(stack)), indent=2, sort_keys=True) + "\n")
    return path


def is_secret(value: object) -> bool:
    return isinstance(value, dict) and SECRET_SIG in value
