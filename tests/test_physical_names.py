"""Physical names on Kubernetes derive from the prefix and are checked: the stack refuses two
components whose namespaces would coincide, and a component refuses a name Kubernetes would."""

from __future__ import annotations

import copy
import sys

import pytest
import yaml
from pulumi.runtime.config import set_all_config

from conftest import ROOT
from mcp_affinity import ConfigError, McpMeshServiceArgs, MeshArgs
from mcp_affinity.cli.project import _encode

sys.path.insert(0, str(ROOT / "infra"))
import stack_config  # noqa: E402

NS = "mcp-affinity:"
STAGING = yaml.safe_load((ROOT / "stacks" / "Pulumi.staging.yaml").read_text())["config"]


def test_a_mesh_service_whose_namespace_is_the_autoneg_controllers_is_refused_under_its_key():
    config = copy.deepcopy(STAGING)
    services = config[NS + "meshServices"]
    services["autoneg"] = {**services["notes"], "hosts": ["other.mcp.staging.example.com"]}
    config[NS + "loadBalancer"]["certificates"]["other"] = ["other.mcp.staging.example.com"]
    set_all_config({k: _encode(v) for k, v in config.items()}, [])
    with pytest.raises(ConfigError) as error:
        stack_config.load("names")
    assert any(key == NS + "meshServices.autoneg" and "kubernetes:core/v1:Namespace" in message
               for key, message in error.value.problems), error.value.problems


def test_kubernetes_names_derive_from_the_prefix():
    service = McpMeshServiceArgs(prefix="acme", image="i:1", session_mode="stateless", hosts=["a.example.com"],
                                 access="oauth")
    assert service.names("notes")["namespace"].value == "acme-notes"
    mesh = MeshArgs(prefix="acme").names("mesh")
    assert (mesh["gateway_namespace"].value, mesh["gateway"].value) == ("acme-mesh-gateway", "acme-mesh-gateway")


def test_a_name_kubernetes_would_refuse_is_refused_before_anything_is_registered():
    service = McpMeshServiceArgs(prefix="acme", image="i:1", session_mode="in-memory-sessions", pinning="learned",
                                 hosts=["a.example.com"], access="oauth")
    with pytest.raises(ValueError, match="Kubernetes DNS label"):
        service.names("n" * 50)  # n...-pinning-peers has 64 characters
    with pytest.raises(ValueError, match="Helm release name"):
        MeshArgs(prefix="acme").names("m" * 41)  # acme-m...-gateway has 54 characters
