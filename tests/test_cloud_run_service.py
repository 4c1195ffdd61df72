"""CloudRunMcpService on mocks: ingress, timeout, routing per session mode, NEGs, backend service."""

from __future__ import annotations

import pulumi
import pytest
from mcp_affinity.errors import SettingsError

from helpers import NETWORK, STORE
from mcp_affinity import CloudRunMcpService, CloudRunMcpServiceArgs
from mcp_affinity.cloud_run_service import CI_OWNED_PATHS

RUN = "gcp:cloudrunv2/service:Service"
NEG = "gcp:compute/regionNetworkEndpointGroup:RegionNetworkEndpointGroup"
BACKEND = "gcp:compute/backendService:BackendService"


def make(**overrides) -> CloudRunMcpServiceArgs:
    values = dict(prefix="mcp-t", image="img:1", session_mode="shared-sessions", access="public")
    return CloudRunMcpServiceArgs(**{**values, **overrides})


def service(args: CloudRunMcpServiceArgs | None = None, name: str = "tools", **context) -> CloudRunMcpService:
    return CloudRunMcpService(name, args or make(), network=NETWORK, **{"session_store": STORE, **context})


def envs(plan, name="tools-europe-west1") -> dict:
    return {e["name"]: e for e in plan.get(RUN, name).inputs["template"]["containers"][0]["envs"]}


def test_one_service_and_one_serverless_neg_per_region_named_after_prefix_and_name(record):
    plan = record(service)
    services, negs = plan.by_type(RUN), plan.by_type(NEG)
    assert sorted(s.inputs["location"] for s in services) == ["europe-west1", "us-central1"]
    assert {s.inputs["name"] for s in services} == {"mcp-t-tools"}
    assert sorted(n.inputs["name"] for n in negs) == ["mcp-t-tools-europe-west1", "mcp-t-tools-us-central1"]
    assert {n.inputs["networkEndpointType"] for n in negs} == {"SERVERLESS"}
    assert plan.get(BACKEND, "tools").inputs["name"] == "mcp-t-tools"
    assert plan.get("gcp:serviceaccount/account:Account", "tools").inputs["accountId"] == "mcp-t-tools"


def test_service_is_internal_and_lb_only_with_stream_timeout(record):
    inputs = record(service).get(RUN, "tools-europe-west1").inputs
    assert inputs["ingress"] == "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"
    assert inputs["template"]["timeout"] == "3600s"
    assert inputs["template"]["maxInstanceRequestConcurrency"] == 80
    assert inputs["template"]["vpcAccess"] == {"networkInterfaces": [
        {"network": "projects/p/global/networks/vpc", "subnetwork": "subnet-ew1"}], "egress": "PRIVATE_RANGES_ONLY"}


def test_shared_sessions_read_the_store_from_secret_manager_never_as_a_plain_value(record):
    plan = record(service)
    env = envs(plan, "tools-us-central1")
    assert env["MCP_SESSION_STORE_URL"] == {"name": "MCP_SESSION_STORE_URL", "valueSource": {
        "secretKeyRef": {"secret": "projects/p/secrets/url", "version": "3"}}}
    assert env["MCP_SESSION_MODE"]["value"] == "shared-sessions"
    grant = plan.get("gcp:secretmanager/secretIamMember:SecretIamMember", "tools-store-url").inputs
    assert grant["role"] == "roles/secretmanager.secretAccessor"
    assert plan.get(RUN, "tools-europe-west1").inputs["template"]["sessionAffinity"] is True
    backend = plan.get(BACKEND, "tools").inputs
    assert not {"sessionAffinity", "localityLbPolicy", "consistentHash"} & set(backend)
    assert plan.warnings == []


def test_stateless_has_no_store_and_no_affinity(record):
    plan = record(lambda: service(make(session_mode="stateless")))
    env = envs(plan)
    assert "MCP_SESSION_STORE_URL" not in env and "MCP_NOTIFICATION_BROKER_URL" not in env
    assert plan.by_type("gcp:secretmanager/secretIamMember:SecretIamMember") == []
    assert plan.get(RUN, "tools-europe-west1").inputs["template"]["sessionAffinity"] is False


def test_stateless_with_a_broker_gets_the_broker_url(record):
    plan = record(lambda: service(make(session_mode="stateless", notification_broker=True)))
    assert envs(plan)["MCP_NOTIFICATION_BROKER_URL"]["valueSource"]["secretKeyRef"]["secret"] == "projects/p/secrets/url"
    assert "MCP_SESSION_STORE_URL" not in envs(plan)


def test_in_memory_sessions_run_on_one_instance_or_need_the_cookie_acknowledgement(record):
    with pytest.raises(SettingsError, match="clients that keep cookies"):
        make(session_mode="in-memory-sessions")
    single = make(session_mode="in-memory-sessions", max_instances=1, regions=["europe-west1"])
    plan = record(lambda: service(single))
    assert [r.inputs["location"] for r in plan.by_type(RUN)] == ["europe-west1"]
    assert plan.get(RUN, "tools-europe-west1").inputs["template"]["sessionAffinity"] is True
    acknowledged = make(session_mode="in-memory-sessions", acknowledge=["cookie-clients-only"])
    assert acknowledged.max_instances == 10


def test_lb_hash_needs_acknowledgement_and_is_refused_for_in_memory_sessions():
    with pytest.raises(SettingsError, match="not supported on serverless NEGs"):
        make(load_balancer_hash=True)
    with pytest.raises(SettingsError, match=r"pins a session to \*a\* replica"):
        make(session_mode="in-memory-sessions", load_balancer_hash=True, acknowledge=["cookie-clients-only"])
    with pytest.raises(SettingsError, match="no session to hash"):
        make(session_mode="stateless", load_balancer_hash=True, acknowledge=["lb-hash-unsupported"])


def test_acknowledged_lb_hash_sets_ring_hash_and_warns_with_both_sources(record):
    plan = record(lambda: service(make(load_balancer_hash=True, acknowledge=["lb-hash-unsupported"],
                                       session_header="X-Sess")))
    backend = plan.get(BACKEND, "tools").inputs
    assert (backend["sessionAffinity"], backend["localityLbPolicy"]) == ("HEADER_FIELD", "RING_HASH")
    assert backend["consistentHash"] == {"httpHeaderName": "X-Sess"}
    (warning,) = plan.warnings
    assert "https://cloud.google.com/run/docs/configuring/session-affinity" in warning
    assert "https://cloud.google.com/compute/docs/reference/rest/v1/backendServices" in warning


def test_backend_service_has_no_health_check_or_timeout_and_holds_every_neg(record):
    backend = record(service).get(BACKEND, "tools").inputs
    assert backend["loadBalancingScheme"] == "EXTERNAL_MANAGED"
    assert "healthChecks" not in backend and "timeoutSec" not in backend
    assert sorted(b["group"] for b in backend["backends"]) == ["tools-europe-west1-id", "tools-us-central1-id"]


def test_children_are_parented_to_the_component(record):
    plan = record(service)
    component = plan.get("mcp-affinity:index:CloudRunMcpService", "tools")
    policy = plan.get("mcp-affinity:index:EdgePolicy", "tools")
    children = [r for r in plan.resources if r is not component and r.parent != policy.urn]
    assert children and all(r.parent == component.urn for r in children)
    assert plan.get("gcp:compute/securityPolicy:SecurityPolicy", "tools").parent == policy.urn


def test_ci_owned_image_is_ignored_only_when_asked(record):
    owned = record(lambda: service(make(image_managed_by_ci=True)))
    assert owned.get(RUN, "tools-europe-west1").ignore_changes == CI_OWNED_PATHS
    assert record(service).get(RUN, "tools-europe-west1").ignore_changes == []


def test_secret_env_values_stay_secrets(record):
    plan = record(lambda: service(make(env={"API_KEY": "s3cr3t", "LEVEL": "info"}), secret_env={"API_KEY"}))
    env = envs(plan)
    assert env["API_KEY"]["value"] == {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",
                                       "value": "[secret]"}
    assert env["LEVEL"]["value"] == "info"


@pulumi.runtime.test
def test_outputs_are_keyed_by_region(gcp_mocks):
    component = service()

    def check(values):
        urls, negs = values
        assert sorted(urls) == ["europe-west1", "us-central1"]
        assert negs == {"europe-west1": "tools-europe-west1-id", "us-central1": "tools-us-central1-id"}

    return pulumi.Output.all(pulumi.Output.from_input(component.service_urls),
                             pulumi.Output.from_input(component.neg_ids)).apply(check)


@pytest.mark.parametrize("field,value,message", [
    ("timeout_seconds", 3601, "less than or equal to 3600"),
    ("concurrency", 1001, "less than or equal to 1000"),
    ("session_header", "Bad Header", "not a valid HTTP header name"),
    ("regions", ["mars-north1"], "not a Google Cloud region"),
    ("session_mode", "sticky", "stateless"),
    ("cpu", "3", "1, 2, 4, 6 or 8"),
    ("cpu", "0.5", "concurrency 1"),
    ("memory", "512MB", "Mi or Gi"),
    ("memory", "64Gi", "Cloud Run takes"),
    ("env", {"PORT": "1"}, "set by the platform"),
    ("env", {"MCP_SESSION_STORE_URL": "x"}, "set by the platform or by this package"),
    ("env", {"1BAD": "x"}, "not starting with a digit"),
    ("image_managed_by_ci", "yes", "valid boolean"),
    ("min_instances", 5.5, "valid integer"),
    ("notification_broker", True, "goes with sessionMode stateless"),
])
def test_settings_the_platform_would_refuse_are_refused(field, value, message):
    with pytest.raises(SettingsError, match=message):
        make(**{field: value})


def test_context_errors_name_the_problem():
    with pytest.raises(ValueError, match="needs a session_store"):
        CloudRunMcpService("tools", make(), network=NETWORK)
    with pytest.raises(ValueError, match="no subnet"):
        CloudRunMcpService("tools", make(regions=["europe-west4"]), network=NETWORK, session_store=STORE)
    with pytest.raises(ValueError, match="allowed 6 to 30"):
        make(prefix="abcdefghijklmnopqrst").names("a-long-service-name", ["europe-west1"])
