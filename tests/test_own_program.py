"""Your own program fails as cleanly as a stack file: every exported component takes a dict where
it takes settings, and bad settings raise one :class:`SettingsError` (a ``pulumi.RunError``) naming
the component and each fault under its camelCase path."""

from __future__ import annotations

import inspect
import typing

import pulumi
import pytest

import mcp_affinity
from conftest import GcpMocks
from mcp_affinity import McpGkePlatform, McpMeshService, Network
from mcp_affinity.cli.runner import run_function
from mcp_affinity.errors import SettingsError, unwrap_annotation
from mcp_affinity.settings import Model

COMPONENTS = sorted((getattr(mcp_affinity, n) for n in mcp_affinity.__all__
                     if inspect.isclass(getattr(mcp_affinity, n))
                     and issubclass(getattr(mcp_affinity, n), pulumi.ComponentResource)), key=lambda c: c.__name__)


def settings_parameters(component) -> list[str]:
    """The parameters of ``__init__`` annotated with a settings model or a map of them."""
    hints = typing.get_type_hints(component.__init__)
    found = []
    for name, hint in hints.items():
        inner = unwrap_annotation(hint)
        if typing.get_origin(inner) is not None and len(typing.get_args(inner)) == 2:
            inner = unwrap_annotation(typing.get_args(inner)[1])
        if isinstance(inner, type) and issubclass(inner, Model):
            found.append(name)
    return found


def call(component, **given):
    """``component("x", ...)`` with every other required argument None (never reached: the
    settings are refused first)."""
    required = {n: None for n, p in inspect.signature(component.__init__).parameters.items()
                if n not in ("self", "name") and p.default is inspect.Parameter.empty and n not in given}
    return component("x", **required, **given)


def test_every_component_is_covered():
    assert len(COMPONENTS) == 13
    assert {"args", "iap", "edge_scopes"} <= {p for c in COMPONENTS for p in settings_parameters(c)}


@pytest.mark.parametrize("component", COMPONENTS, ids=lambda c: c.__name__)
def test_a_dict_with_faults_is_refused_under_each_path_naming_the_component(component):
    bad = {"prefix": "Acme", "bogusKey": 1}
    given = {name: ({"one": bad} if name == "edge_scopes" else bad) for name in settings_parameters(component)}
    with pytest.raises(SettingsError) as refused:
        call(component, **given)
    error = refused.value
    assert isinstance(error, pulumi.RunError) and str(error).startswith(f"invalid settings for {component.__name__} 'x':")
    paths = {path for path, _ in error.problems}
    assert "prefix" in paths  # "Acme": a value refused, besides the unknown key
    for name in settings_parameters(component):
        where = {"args": "", "edge_scopes": "edge_scopes.one."}.get(name, f"{name}.")
        assert f"{where}bogusKey" in paths  # every argument's faults, at once


@pytest.mark.parametrize("component", COMPONENTS, ids=lambda c: c.__name__)
def test_something_else_than_settings_is_refused_with_what_is_expected(component):
    with pytest.raises(SettingsError, match=r"expected \w+Args or a dict of its settings, got list"):
        call(component, args=[])


COMMON = {"prefix": "acme", "project": "acme-mcp-prod"}
SUBNETS = {"europe-west1": {"ipCidrRange": "10.0.0.0/20", "secondaryRanges": {"pods": "10.4.0.0/14",
                                                                               "services": "10.8.0.0/20"}}}


def test_dicts_plan_like_models(record):
    """McpGkePlatform(iap={...}) used to end in AttributeError: 'dict' object has no attribute 'mode';
    here every settings argument is a dict, a map of dicts included (``mesh_services``)."""

    def program():
        notes = {**COMMON, "image": "europe-docker.pkg.dev/acme/mcp/notes:1.0.0", "sessionMode": "stateless",
                 "hosts": ["notes.acme.example"], "access": {"mode": "iap", "members": ["group:mcp@acme.example"]}}
        network = Network("net", {**COMMON, "cloudNat": True, "subnets": SUBNETS})
        gke = McpGkePlatform("gke", {**COMMON, "cluster": {"region": "europe-west1", "zones": ["europe-west1-b"]}},
                             network=network.ref(), mesh_services={"notes": notes})
        McpMeshService("notes", notes, cluster=gke.ref().cluster, mesh=gke.ref().mesh)

    plan = record(program)
    backend = plan.get("gcp:compute/backendService:BackendService", "gke-gateway").inputs
    assert backend["iap"]["enabled"] is True
    (member,) = plan.by_type("gcp:iap/webBackendServiceIamMember:WebBackendServiceIamMember")
    assert member.inputs["member"] == "group:mcp@acme.example"


def test_a_missing_context_names_the_component():
    """A ValueError a component raises before it registers (here: no subnet in the cluster's region)."""

    def program():
        network = Network("net", {**COMMON, "cloudNat": True, "subnets": SUBNETS})
        McpGkePlatform("gke", {**COMMON, "cluster": {"region": "europe-west4", "zones": ["europe-west4-a"]}},
                       network=network.ref())

    with pytest.raises(SettingsError, match=r"invalid settings for (McpGkePlatform 'gke'|GkeCluster 'gke'):\n  "
                                            r"the network has no subnet in europe-west4"):
        run_function(program, project="p", stack="s", mock=GcpMocks(), preview=False)
