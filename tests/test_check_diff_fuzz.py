"""Any JSON given to `check` and `diff` ends with exit 0, 1 or 2 and a short reason, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st
from typer.testing import CliRunner

from mcp_affinity.cli.app import app
from mcp_affinity.wire import SECRET_SIG, SECRET_VALUE_SIG, UNKNOWN

runner = CliRunner()

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False, allow_infinity=False),
                    st.sampled_from(["", "x", UNKNOWN, "INGRESS_TRAFFIC_ALL", "SERVERLESS", "HEADER_FIELD",
                                     "allUsers", "roles/run.invoker", "Mcp-Session-Id", "prod", "300s", "mcp"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.sampled_from(["name", "value", "group", "hosts", "spec", "metadata", "template", "envs",
                                     "env", "containers", "labels", "environment", "ingress", "cloudRun", "service",
                                     "urlMask", "timeout", "host", "namespace", "selector", "member", "role",
                                     "sessionAffinity", "backends", "consistentHash", "httpHeaderName",
                                     SECRET_SIG]), inner, max_size=5),
    st.builds(lambda v: {SECRET_SIG: SECRET_VALUE_SIG, "value": v}, inner)), max_leaves=20)
types = st.sampled_from(["gcp:cloudrunv2/service:Service", "gcp:compute/backendService:BackendService",
                         "gcp:compute/regionNetworkEndpointGroup:RegionNetworkEndpointGroup",
                         "gcp:redis/instance:Instance",
                         "kubernetes:core/v1:Service", "kubernetes:apps/v1:Deployment", "gcp:compute/uRLMap:URLMap",
                         "kubernetes:networking.istio.io/v1:DestinationRule", "gcp:projects/iAMMember:IAMMember",
                         "mcp-affinity:index:X"])
resources = st.fixed_dictionaries(
    {"urn": st.sampled_from([f"urn:pulumi:prod::p::t::{i}" for i in range(4)]), "type": types},
    optional={"name": st.text(max_size=5), "parent": st.one_of(st.none(), st.just("urn:pulumi:prod::p::t::0")),
              "custom": st.booleans(), "inputs": st.dictionaries(st.text(max_size=8), values, max_size=6) | values,
              "options": st.dictionaries(st.sampled_from(["protect", "ignoreChanges", "replaceOnChanges",
                                                          "deleteBeforeReplace", "provider", "dependsOn"]),
                                         values, max_size=3)})
plans = st.fixed_dictionaries(
    {"project": st.just("p"), "stack": st.just("prod"), "resources": st.lists(resources, max_size=5)},
    optional={"outputs": values, "warnings": values})
documents = st.one_of(values, plans)


def run(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (0, 1, 2), result.output
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert len(result.output.strip().splitlines()) == 1, result.output


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=documents, head=documents)
def test_random_json_never_crashes_check_or_diff(tmp_path_factory, base, head):
    folder = Path(tmp_path_factory.mktemp("fuzz"))
    (folder / "base.json").write_text(json.dumps(base))
    (folder / "head.json").write_text(json.dumps(head))
    run(["check", str(folder / "head.json")])
    for format in ("text", "markdown"):
        run(["diff", str(folder / "base.json"), str(folder / "head.json"), "--format", format, "--exit-code"])
