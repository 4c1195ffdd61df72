"""The type tokens of ``mcp_affinity.wire``: each one is a type the pinned SDKs define, and no other
module of the package, the stack program or the conformance run spells one out.

The tokens here are checked against the installed pulumi-gcp and pulumi-kubernetes, not against
another copy of the strings: a typo in ``wire.py`` names a type no SDK registers.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
from pathlib import Path

import pulumi_gcp
import pulumi_kubernetes
import pytest
from pulumi_kubernetes.apiextensions import CustomResource

from mcp_affinity import wire
from schemas.istio_reference import load as istio_reference

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("components", "infra", "tools/conformance")
WIRE = ROOT / "components" / "mcp_affinity" / "wire.py"

# A whole token (``"gcp:compute/uRLMap:URLMap"``) or a piece of one joined into a token
# (``"gcp:compute/"``, ``"kubernetes:networking.istio.io/v1"``). A package prefix alone
# (``"gcp:compute"``, ``"kubernetes:"``) is no type and stays allowed.
TOKEN_LITERAL = re.compile(r"""["'](?:gcp|kubernetes):[A-Za-z0-9./-]*(?:/[A-Za-z0-9./-]*|:[A-Za-z]+)["']""")

TOKENS = {name: value for name, value in vars(wire).items()
          if name.isupper() and isinstance(value, str) and re.fullmatch(r"(gcp|kubernetes):[^:\s]+:\w+", value)}


def _registration(package, what: str) -> list[dict]:
    """What the SDK registers with the engine: ``_utilities.register(resource_modules=...,
    resource_packages=...)`` in the package's ``__init__.py``."""
    source = Path(package.__file__).read_text()
    return json.loads(re.search(what + r'="""(.*?)"""', source, re.S).group(1))


# Type token -> (module, class) of every resource the two SDKs define.
SDK_TYPES = {token: (m["fqn"], cls) for package in (pulumi_gcp, pulumi_kubernetes)
             for m in _registration(package, "resource_modules") for token, cls in m["classes"].items()}


def test_no_type_token_literal_outside_wire():
    found = [f"{path.relative_to(ROOT)}:{number}: {match.group()}"
             for folder in SCANNED for path in sorted((ROOT / folder).rglob("*.py")) if path != WIRE
             for number, line in enumerate(path.read_text().splitlines(), 1)
             for match in TOKEN_LITERAL.finditer(line)]
    assert found == [], "type tokens belong in components/mcp_affinity/wire.py:\n" + "\n".join(found)


def test_the_scan_sees_tokens():
    """The pattern of the scan above matches every token wire.py defines, and a module prefix alone not."""
    assert all(TOKEN_LITERAL.fullmatch(f'"{token}"') for token in TOKENS.values())
    assert TOKEN_LITERAL.fullmatch('"gcp:compute/"') and TOKEN_LITERAL.fullmatch("'kubernetes:networking.istio.io/v1'")
    assert not TOKEN_LITERAL.search('"gcp:compute"') and not TOKEN_LITERAL.search('startswith("kubernetes:")')


def test_tokens_are_defined_once():
    assert len(set(TOKENS.values())) == len(TOKENS), "two constants of wire.py name the same type"
    assert len(TOKENS) >= 50  # the scan of this module found the tokens


@pytest.mark.parametrize("name", sorted(n for n, t in TOKENS.items() if t in SDK_TYPES))
def test_resource_token_is_the_sdk_class_type(name):
    """The class the SDK registers for the token passes that token to ``super().__init__``."""
    token = TOKENS[name]
    module, cls = SDK_TYPES[token]
    source = inspect.getsource(getattr(importlib.import_module(module), cls))
    assert f"__init__(\n            '{token}'," in source, f"{name} = {token!r} is not {module}.{cls}'s type"


def test_every_token_is_known_to_the_sdks():
    """What is not a registered resource type is one of the few other kinds of token, each checked."""
    istio_kinds = istio_reference()["kinds"]  # "networking.istio.io/v1/DestinationRule" -> CRD excerpt
    crd_token = 'f"kubernetes:{api_version}:{kind}"'
    assert crd_token in inspect.getsource(CustomResource)
    others = {name: token for name, token in TOKENS.items() if token not in SDK_TYPES}
    for name, token in others.items():
        if token.split(":")[1].split("/")[0].endswith("istio.io"):
            _, api_version, kind = token.split(":")
            assert f"{api_version}/{kind}" in istio_kinds, f"{name}: no Istio CRD {api_version} {kind}"
        elif name == "GET_PROJECT":
            assert f"invoke('{token}'" in inspect.getsource(pulumi_gcp.organizations.get_project)
        elif name == "KUBERNETES_PROVIDER":
            # Resource.get_provider reads the package only: the one pulumi-kubernetes' provider serves.
            packages = {p["pkg"] for p in _registration(pulumi_kubernetes, "resource_packages")}
            assert token.split(":")[0] in packages and token.count(":") == 2
        else:
            pytest.fail(f"{name} = {token!r}: no resource type of the installed pulumi-gcp or pulumi-kubernetes")
    assert {"DESTINATION_RULE", "GET_PROJECT", "KUBERNETES_PROVIDER"} <= set(others)
