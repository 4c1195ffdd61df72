"""Hostile and malformed stack files: each ends in a ConfigError naming the key as written in the
stack file, before any resource exists; never a traceback, never a clean plan. Valid variants pass.

The validation pass (``infra/stack_config.py``) runs here without the resource program, so the
property-based fuzz can try many inputs quickly; a few cases also go through ``mcp-affinity plan``.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pulumi
import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st
from pulumi.runtime.config import set_all_config
from typer.testing import CliRunner

from conftest import ROOT
from mcp_affinity import ConfigError
from mcp_affinity.cli.app import app
from mcp_affinity.cli.project import _encode

sys.path.insert(0, str(ROOT / "infra"))
import stack_config  # noqa: E402

BASE = yaml.safe_load((ROOT / "stacks" / "Pulumi.staging.yaml").read_text())["config"]
NS = "mcp-affinity:"


def problems(config: dict, secret_keys=()) -> list[tuple[str, str]]:
    """The faults the stack program reports for ``config`` (stack-file keys -> values), [] if valid."""
    set_all_config({k: _encode(v) for k, v in config.items()}, list(secret_keys))
    try:
        stack_config.load("hostile")
    except ConfigError as error:
        return error.problems
    return []


def mutate(path: str, value=None, delete: bool = False) -> dict:
    """BASE with the value at ``path`` (``mcp-affinity:key.sub.sub``) replaced or deleted."""
    config = copy.deepcopy(BASE)
    top, _, rest = path.partition(".")
    if not rest:
        if delete:
            config.pop(top, None)
        else:
            config[top] = value
        return config
    node = config.setdefault(top, {})
    *parents, last = rest.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    if delete:
        node.pop(last, None)
    else:
        node[last] = value
    return config


HOSTILE = {
    "cidr /33": (mutate(NS + "network.subnets.europe-west1.ipCidrRange", "10.0.0.0/33"),
                 NS + "network.subnets.europe-west1.ipCidrRange"),
    "cidr host bits": (mutate(NS + "network.subnets.europe-west4.ipCidrRange", "10.20.1.7/24"),
                       NS + "network.subnets.europe-west4.ipCidrRange"),
    "cidr not ipv4": (mutate(NS + "network.subnets.europe-west4.ipCidrRange", "fd00::/64"),
                      NS + "network.subnets.europe-west4.ipCidrRange"),
    "subnets overlap": (mutate(NS + "network.subnets.europe-west4.ipCidrRange", "10.20.0.0/16"), NS + "network"),
    "secondary overlaps primary": (mutate(NS + "network.subnets.europe-west1.secondaryRanges.pods", "10.20.0.0/22"),
                                   NS + "network"),
    "master overlaps subnet": (mutate(NS + "gke.masterCidr", "10.20.0.16/28"), NS + "gke.masterCidr"),
    "prefix uppercase": (mutate(NS + "prefix", "MCP"), NS + "prefix"),
    "prefix too long": (mutate(NS + "prefix", "a" * 21), NS + "prefix"),
    "prefix trailing hyphen": (mutate(NS + "prefix", "mcp-"), NS + "prefix"),
    "prefix a list": (mutate(NS + "prefix", [1, 2]), NS + "prefix"),
    "service name uppercase": (mutate(NS + "services.Tools", {"image": "i:1", "sessionMode": "stateless"}),
                               NS + "services.Tools"),
    "service account too long": (mutate(NS + "services.averyveryveryverylongname", {
        "image": "i:1", "sessionMode": "stateless", "pathPrefixes": ["/long"], "access": "oauth"}),
        NS + "services.averyveryveryverylongname"),
    "service shadows the gke route": (mutate(NS + "services.gke", {"image": "i:1", "sessionMode": "stateless",
                                                                    "pathPrefixes": ["/g"], "access": "oauth"}),
                                      NS + "services.gke"),
    "host with newline": (mutate(NS + "services.tools.hosts", ["tools.mcp.staging.example.com\n"]),
                          NS + "services.tools.hosts.0"),
    "host on no certificate": (mutate(NS + "services.tools.hosts", ["other.example.com"]), NS + "services.tools.hosts"),
    "duplicate host": (mutate(NS + "services.search.hosts", ["tools.mcp.staging.example.com"]),
                       NS + "services.tools.hosts"),
    "mesh and cloud run share a host": (mutate(NS + "meshServices.notes.hosts", ["tools.mcp.staging.example.com"]),
                                        NS + "meshServices.notes.hosts"),
    "duplicate path prefix": ({**mutate(NS + "services.search", {"image": "i:1", "sessionMode": "stateless",
                                                                  "pathPrefixes": ["/x"], "access": "oauth"}),
                               NS + "services": {**BASE[NS + "services"],
                                                 "search": {"image": "i:1", "sessionMode": "stateless", "pathPrefixes": ["/x"], "access": "oauth"},
                                                 "more": {"image": "i:1", "sessionMode": "stateless", "pathPrefixes": ["/x"], "access": "oauth"}}},
                              NS + "services.search.pathPrefixes"),
    "unreachable service": (mutate(NS + "services.search.pathPrefixes", []), NS + "services.search"),
    "cpu 3": (mutate(NS + "services.tools.cpu", "3"), NS + "services.tools"),
    "cpu as a boolean": (mutate(NS + "services.tools.cpu", True), NS + "services.tools.cpu"),
    "memory too large": (mutate(NS + "services.tools.memory", "100Gi"), NS + "services.tools"),
    "memory MB": (mutate(NS + "services.tools.memory", "512MB"), NS + "services.tools.memory"),
    "k8s cpu garbage": (mutate(NS + "meshServices.notes.cpu", "lots"), NS + "meshServices.notes.cpu"),
    "env PORT": (mutate(NS + "services.tools.env", {"PORT": "9"}), NS + "services.tools.env.PORT"),
    "env K_SERVICE": (mutate(NS + "meshServices.notes.env", {"K_SERVICE": "x"}), NS + "meshServices.notes.env.K_SERVICE"),
    "env bad name": (mutate(NS + "services.tools.env", {"A-B": "x"}), NS + "services.tools.env.A-B"),
    "env number value": (mutate(NS + "services.tools.env", {"LEVEL": 5}), NS + "services.tools.env.LEVEL"),
    "misspelt namespace": ({**BASE, "mcp-afinity:prefix": "x"}, "mcp-afinity:prefix"),
    "missing project": (mutate("gcp:project", delete=True), "gcp:project"),
    "yes for true": (mutate(NS + "deletionProtection", "yes"), NS + "deletionProtection"),
    "string for int": (mutate(NS + "services.tools.maxInstances", "10"), NS + "services.tools.maxInstances"),
    "float for int": (mutate(NS + "services.tools.minInstances", 1.5), NS + "services.tools.minInstances"),
    "unknown service key": (mutate(NS + "services.tools.affinityMode", "shared-store"), NS + "services.tools.affinityMode"),
    "unknown top key": (mutate(NS + "regions", {"europe-west1": {}}), NS + "regions"),
    "prod one region": ({**mutate(NS + "environment", "prod"), NS + "deletionProtection": True,
                         NS + "network": {"cloudNat": True, "subnets": {"europe-west1": BASE[NS + "network"]["subnets"]["europe-west1"]}},
                         NS + "sessionStore": {"tier": "STANDARD_HA", "memorySizeGb": 5}}, NS + "network"),
    "prod unprotected": (mutate(NS + "environment", "prod"), NS + "deletionProtection"),
    "prod basic store": ({**mutate(NS + "environment", "prod"), NS + "deletionProtection": True}, NS + "sessionStore.tier"),
    "unknown region": (mutate(NS + "network.subnets.mars-north1", {"ipCidrRange": "10.99.0.0/24"}),
                       NS + "network.subnets.mars-north1"),
    "service region without subnet": (mutate(NS + "services.tools.regions", ["us-east1"]), NS + "services.tools.regions"),
    "store region without subnet": (mutate(NS + "sessionStore.region", "us-east1"), NS + "sessionStore.region"),
    "store nobody uses": ({**BASE, NS + "services": {"tools": {"image": "i:1", "sessionMode": "stateless",
                                                              "hosts": ["tools.mcp.staging.example.com"], "access": "oauth"}},
                           NS + "meshServices": {"notes": {"image": "i:1", "sessionMode": "stateless",
                                                           "hosts": ["notes.mcp.staging.example.com"], "access": "oauth"}}},
                          NS + "sessionStore"),
    "lb hash unacknowledged": (mutate(NS + "services.tools.loadBalancerHash", True), NS + "services.tools"),
    "in-memory unacknowledged": (mutate(NS + "services.tools.sessionMode", "in-memory-sessions"), NS + "services.tools"),
    "in-memory mesh without pinning": (mutate(NS + "meshServices.notes.sessionMode", "in-memory-sessions"),
                                       NS + "meshServices.notes"),
    "session mode old name": (mutate(NS + "services.tools.sessionMode", "shared-store"), NS + "services.tools.sessionMode"),
    "gke without nat": (mutate(NS + "network.cloudNat", False), NS + "network.cloudNat"),
    "gke zone of another region": (mutate(NS + "gke.zones", ["europe-west4-a"]), NS + "gke"),
    "gke region without secondary ranges": (mutate(NS + "gke.region", "europe-west4") | {
        NS + "gke": {**BASE[NS + "gke"], "region": "europe-west4", "zones": ["europe-west4-a"]}},
        NS + "network.subnets.europe-west4.secondaryRanges"),
    "gke without mesh services": (mutate(NS + "meshServices", delete=True), NS + "meshServices"),
    "mesh services without gke platform": (mutate(NS + "platforms", ["cloud-run"]), NS + "meshServices"),
    "linkerd": (mutate(NS + "gke.mesh.kind", "linkerd"), NS + "gke.mesh.kind"),
    "method route to nowhere": (mutate(NS + "meshServices.notes.methodRoutes", {"r": {"method": "tools/call",
                                                                                      "service": "ghost"}}),
                                NS + "meshServices.notes.methodRoutes.r.service"),
    "read replicas on basic": (mutate(NS + "sessionStore.readReplicas", 1), NS + "sessionStore"),
    "timeout zero": (mutate(NS + "services.tools.timeoutSeconds", 0), NS + "services.tools.timeoutSeconds"),
    "timeout too long": (mutate(NS + "services.tools.timeoutSeconds", 3601), NS + "services.tools.timeoutSeconds"),
    "platforms twice": (mutate(NS + "platforms", ["cloud-run", "cloud-run", "gke"]), NS + "platforms"),
    "platforms unknown": (mutate(NS + "platforms", ["cloud-run", "lambda"]), NS + "platforms.1"),
    "label uppercase": (mutate(NS + "labels", {"Team": "a"}), NS + "labels.Team"),
    "deep nesting": (mutate(NS + "services", "[" * 5000), NS + "services"),
    "services a string": (mutate(NS + "services", "tools"), NS + "services"),
    "huge image": (mutate(NS + "services.tools.image", "x" * 5000), NS + "services.tools.image"),
    "drain too long": (mutate(NS + "meshServices.notes.drainSeconds", 86400), NS + "meshServices.notes.drainSeconds"),
    "sidecar port": (mutate(NS + "meshServices.notes.port", 15021), NS + "meshServices.notes"),
    "authorized network bad": (mutate(NS + "gke.masterAuthorizedNetworks", {"ci": "1.2.3.4"}),
                               NS + "gke.masterAuthorizedNetworks.ci"),
    "default route unknown": (mutate(NS + "loadBalancer.defaultRoute", "ghost"), NS + "loadBalancer"),
}

VALID = {
    "staging": BASE,
    "prod": yaml.safe_load((ROOT / "stacks" / "Pulumi.prod.yaml").read_text())["config"],
    "dev": yaml.safe_load((ROOT / "stacks" / "Pulumi.dev.yaml").read_text())["config"],
    "empty store object means defaults": mutate(NS + "sessionStore", {}),
    "prefix of 20 characters": mutate(NS + "prefix", "a" * 20),
    "path-only route and a default": mutate(NS + "services.search", {"image": "i:1", "sessionMode": "shared-sessions",
                                                                     "pathPrefixes": ["/search"], "access": "oauth"}),
    "gke only": {k: v for k, v in BASE.items() if k != NS + "services"} | {
        NS + "platforms": ["gke"], NS + "loadBalancer": {"certificates": {"main": ["notes.mcp.staging.example.com"]}}},
    "a secure env value": mutate(NS + "services.tools.env", {"API_KEY": "[secret]"}),
    "cpu as a YAML number": mutate(NS + "services.tools", {**BASE[NS + "services"]["tools"], "cpu": 2, "memory": "1Gi"}),
    "mesh cpu as a YAML number": mutate(NS + "meshServices.notes.cpu", 1),
    "fractional cpu with concurrency 1": mutate(NS + "services.tools", {**BASE[NS + "services"]["tools"],
                                                                        "cpu": "0.5", "concurrency": 1}),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_config_is_refused_under_its_key(name):
    config, key = HOSTILE[name]
    found = problems(config)
    assert found, f"{name}: planned cleanly"
    assert any(k == key or k.startswith(key + ".") or k.startswith(key + " ") for k, _ in found), found


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_config_is_accepted(name):
    assert problems(VALID[name]) == []


def test_config_errors_end_pulumi_up_without_a_traceback():
    assert issubclass(ConfigError, pulumi.RunError)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
                    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
                    max_leaves=12)
PATHS = sorted({NS + "prefix", NS + "environment", NS + "network", NS + "network.subnets.europe-west1",
                NS + "services", NS + "services.tools", NS + "services.tools.env", NS + "services.tools.hosts",
                NS + "gke", NS + "gke.mesh", NS + "gke.nodePool", NS + "meshServices.notes", NS + "loadBalancer",
                NS + "loadBalancer.certificates", NS + "sessionStore", NS + "platforms", NS + "labels"})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(PATHS), value=JSON)
def test_fuzzed_config_ends_in_a_config_error_or_a_valid_plan(path, value):
    """Any value at any key ends in ConfigError (or validates): never another exception."""
    for key, message in problems(mutate(path, value)):
        assert key.startswith((NS, "gcp:")) and message


def plan_file(tmp_path: Path, text: str):
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text().replace("main: infra/", f"main: {ROOT / 'infra'}/")
                                          .replace("stackConfigDir: stacks", "stackConfigDir: ."))
    (tmp_path / "Pulumi.zz.yaml").write_text(text)
    return CliRunner().invoke(app, ["plan", "--stack", "zz", "--program", str(tmp_path), "--quiet"])


@pytest.mark.parametrize("text,message", [
    ("config:\n  a: &a [1,1,1,1,1,1,1,1,1,1]\n  b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n  c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
     "  d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n  e: [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n", "expands to more than"),
    ("config:\n  mcp-affinity:prefix: a\n  mcp-affinity:prefix: b\n", "duplicate key"),
    ("config: [1, 2]\n", "must be a mapping"),
    ("config:\n  mcp-affinity:prefix: [1, 2]\n  mcp-affinity:regions: x\n", "mcp-affinity:prefix"),
    ("{{{", "not valid YAML"),
])
def test_plan_exits_2_with_a_message_and_no_traceback(tmp_path, text, message):
    result = plan_file(tmp_path, text)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
