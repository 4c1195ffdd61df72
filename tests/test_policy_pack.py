"""The CrossGuard pack in policy/: built without an engine, its validate functions called directly."""

from __future__ import annotations

import copy
import importlib.util
import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest

pulumi_policy = pytest.importorskip("pulumi_policy")
from google.protobuf import struct_pb2  # noqa: E402
from pulumi.runtime import proto  # noqa: E402
from pulumi_policy.deserialize import deserialize_properties  # noqa: E402
from pulumi_policy.proxy import unknown_checking_proxy  # noqa: E402

from conftest import plan_document  # noqa: E402
from mcp_affinity.policies import RULES, UNKNOWN  # noqa: E402

ROOT = Path(__file__).parents[1]
PACK = ROOT / "policy"
NEG_TYPE = "gcp:compute/regionNetworkEndpointGroup:RegionNetworkEndpointGroup"
BACKEND_TYPE = "gcp:compute/backendService:BackendService"
PARENT = "urn:pulumi:t::p::mcp-affinity:index:CloudRunMcpService::tools"


@pytest.fixture(scope="module")
def pack():
    spec = importlib.util.spec_from_file_location("mcp_affinity_policy_pack", PACK / "__main__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # not __main__: builds POLICIES, starts no server
    return module


def policy(pack, name):
    return next(p for p in pack.POLICIES if p.name == name)


def resource(type_, name, props, parent=None, proxied=False):
    """A stand-in for pulumi_policy.PolicyResource; ``proxied`` wraps props as the SDK does."""
    bag = unknown_checking_proxy(deserialize_properties(props)) if proxied else props
    return SimpleNamespace(resource_type=type_, props=bag, urn=f"urn:pulumi:t::p::{type_}::{name}", name=name,
                           parent=parent, opts=SimpleNamespace(parent=None), provider=object())


def validate(pack, name, resources, config=None):
    reported = []
    args = SimpleNamespace(resources=resources, get_config=lambda: config or {})
    policy(pack, name).validate(args, lambda message, urn=None: reported.append((urn, message)))
    return reported


def test_policies_mirror_the_rules(pack):
    assert [p.name for p in pack.POLICIES] == [r.name for r in RULES]
    assert all(isinstance(p, pulumi_policy.StackValidationPolicy) for p in pack.POLICIES)
    assert all(p.url and p.description for p in pack.POLICIES)


def test_running_as_main_builds_a_mandatory_pack(monkeypatch):
    built = {}
    monkeypatch.setattr(pulumi_policy, "PolicyPack", lambda name, **kw: built.update(name=name, **kw))
    runpy.run_path(str(PACK), run_name="__main__")  # how pulumi.policy runs a pack
    assert built["name"] == "mcp-affinity"
    assert built["enforcement_level"] is pulumi_policy.EnforcementLevel.MANDATORY
    assert [p.name for p in built["policies"]] == [r.name for r in RULES]


def test_plain_unwraps_proxies_and_keeps_unknowns(pack):
    props = {"backends": [{"group": UNKNOWN}], "logConfig": {"enable": True},
             "secret": {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": "s"}}
    proxied = unknown_checking_proxy(deserialize_properties(props))
    with pytest.raises(Exception):
        proxied["backends"][0]["group"]  # the SDK raises on reading an unknown
    assert pack.plain(proxied) == {"backends": [{"group": UNKNOWN}], "logConfig": {"enable": True}, "secret": "s"}


@pytest.mark.parametrize("proxied", [False, True])
def test_validate_reports_violation_with_urn(pack, proxied):
    neg_parent = SimpleNamespace(urn=PARENT)  # the SDK links parent to the parent's PolicyResource
    neg = resource(NEG_TYPE, "neg", {"networkEndpointType": "SERVERLESS", "name": "n", "region": "r",
                                     "cloudRun": {"service": UNKNOWN}}, neg_parent, proxied)
    bad = resource(BACKEND_TYPE, "bs", {"backends": [{"group": UNKNOWN}], "timeoutSec": 120}, neg_parent, proxied)
    good = resource(BACKEND_TYPE, "ok", {"backends": [{"group": UNKNOWN}]}, neg_parent, proxied)
    reported = validate(pack, "serverless-backend-no-healthcheck-timeout", [neg, bad, good])
    assert [urn for urn, _ in reported] == [bad.urn]
    assert "timeoutSec is 120" in reported[0][1]


def test_validate_tolerates_the_api_default_timeout_in_outputs(pack):
    """Stack policies read provider outputs: the API may report its 30 s default, a preview leaves it unknown."""
    neg = resource(NEG_TYPE, "neg", {"networkEndpointType": "SERVERLESS", "name": "n", "region": "r",
                                     "selfLink": "https://x/projects/p/regions/r/networkEndpointGroups/n"})
    backend = resource(BACKEND_TYPE, "bs", {"backends": [{"group": "projects/p/regions/r/networkEndpointGroups/n"}],
                                            "timeoutSec": 30})
    assert validate(pack, "serverless-backend-no-healthcheck-timeout", [neg, backend]) == []
    computed = resource(BACKEND_TYPE, "new", {"backends": [{"group": UNKNOWN}], "timeoutSec": UNKNOWN},
                        proxied=True)
    computed.parent = SimpleNamespace(urn=PARENT)
    neg.parent = computed.parent
    assert validate(pack, "serverless-backend-no-healthcheck-timeout", [neg, computed]) == []  # a preview's create


def test_validate_reads_policy_config(pack):
    backend = resource(BACKEND_TYPE, "bs", {"sessionAffinity": "HEADER_FIELD", "localityLbPolicy": "RING_HASH",
                                            "consistentHash": {"httpHeaderName": "X-Session"}})
    name = "header-hash-names-configured-header"
    assert [urn for urn, _ in validate(pack, name, [backend])] == [backend.urn]
    assert validate(pack, name, [backend], {"header": "X-Session"}) == []
    store = resource("gcp:redis/instance:Instance", "store", {"deletionProtection": False})
    assert validate(pack, "production-store-protected", [store]) == []
    reported = validate(pack, "production-store-protected", [store], {"production": True})
    assert [urn for urn, _ in reported] == [store.urn]


def _request(plan: dict) -> proto.AnalyzeStackRequest:
    resources = []
    for r in plan["resources"]:
        properties = struct_pb2.Struct()
        properties.update(r["inputs"])
        resources.append(proto.AnalyzerResource(type=r["type"], urn=r["urn"], name=r["name"],
                                                parent=r["parent"] or "", properties=properties))
    return proto.AnalyzeStackRequest(resources=resources)


def test_analyzer_on_real_prod_plan(pack):
    """The SDK's own AnalyzeStack (what the engine calls) over the prod plan, then a broken copy."""
    from pulumi_policy.policy import _PolicyAnalyzerServicer

    plan = plan_document("prod")
    servicer = _PolicyAnalyzerServicer("mcp-affinity", "0.1.0", pack.POLICIES, pulumi_policy.EnforcementLevel.MANDATORY)
    assert list(servicer.AnalyzeStack(_request(plan), None).diagnostics) == []

    broken = copy.deepcopy(plan)
    store = next(r for r in broken["resources"] if r["type"] == "gcp:redis/instance:Instance")
    store["inputs"]["connectMode"] = "DIRECT_PEERING"
    backend = next(r for r in broken["resources"] if r["type"] == BACKEND_TYPE and r["name"] == "search")
    backend["inputs"]["healthChecks"] = [UNKNOWN]
    diagnostics = servicer.AnalyzeStack(_request(broken), None).diagnostics
    assert sorted((d.policyName, d.urn) for d in diagnostics) == [
        ("redis-auth-tls-private", store["urn"]), ("serverless-backend-no-healthcheck-timeout", backend["urn"])]
    assert {d.enforcementLevel for d in diagnostics} == {proto.MANDATORY}


def test_the_rules_are_core_and_load_without_the_command_line():
    """The pack installs the package without its ``cli`` extra: the rules must not need it."""
    import subprocess
    import sys

    code = ("import sys, mcp_affinity.policies; "
            "print(sorted({'typer', 'rich', 'mcp_affinity.cli'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
    assert (PACK / "__main__.py").read_text().count("from mcp_affinity import policies") == 1
