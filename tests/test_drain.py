"""Sessions across deploys on GKE (learned pinning): terminating pods keep serving their pinned
sessions for ``sessionDrainSeconds`` and take no new ones; the settings refused where a drain
would do nothing or outlast what GKE honours. (Cloud Run's generations: ``test_cloud_run_shards.py``.)"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from hypothesis import given, settings, strategies as st

from test_gke import mesh_service, service_args, spec
from mcp_affinity import pinning_proxy
from mcp_affinity.errors import SettingsError
from mcp_affinity.mesh_service import MAX_GRACE_SECONDS, SHUTDOWN_MARGIN_SECONDS
from schemas.validate import validate_kubernetes

CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
SERVICE = "kubernetes:core/v1:Service"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
AUTHZ = "kubernetes:security.istio.io/v1:AuthorizationPolicy"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"


def learned(**overrides):
    return service_args(**{"session_mode": "in-memory-sessions", "pinning": "learned", **overrides})


def pod(plan) -> dict:
    return spec(plan, DEPLOYMENT, "notes")["template"]


def test_old_pods_keep_serving_pinned_sessions_while_terminating_by_default(record):
    plan = record(lambda: mesh_service(learned()))
    template = pod(plan)
    mcp, signal = template["spec"]["containers"]
    # preStop runs before SIGTERM: the server serves its sessions for the whole drain.
    assert mcp["lifecycle"] == {"preStop": {"sleep": {"seconds": 1800}}}
    assert template["spec"]["terminationGracePeriodSeconds"] == 3600  # max(stream drain 3600, 1800 + 30)
    assert json.loads(template["metadata"]["annotations"]["proxy.istio.io/config"]) == {"terminationDrainDuration": "3600s"}
    # The drain signal stops when termination starts (no preStop), so the proxy's check fails.
    assert signal["name"] == "drain-signal" and signal["image"] == pinning_proxy.PROXY_IMAGE and "lifecycle" not in signal
    assert signal["ports"] == [{"name": "drain-signal", "containerPort": pinning_proxy.DRAIN_SIGNAL_PORT}]
    assert signal["securityContext"]["runAsUser"] == 99
    assert template["spec"]["volumes"] == [{"name": "drain-signal", "configMap": {"name": "notes-drain-signal"}}]
    relay = plan.get(CONFIG_MAP, "notes-drain-signal").inputs["data"]["haproxy.cfg"]
    assert relay == pinning_proxy.drain_signal_config(listen_port=8405, server_port=8080)
    # Terminating pods stay in DNS, so their server-template slots keep their pins.
    pods = spec(plan, SERVICE, "notes-pods")
    assert pods["publishNotReadyAddresses"] is True
    assert {"name": "http-drain-signal", "port": 8405, "appProtocol": "http"} in pods["ports"]


def test_the_proxy_checks_pods_through_the_drain_signal_and_keeps_pins_on_down_pods(record):
    plan = record(lambda: mesh_service(learned(health_path="/ready")))
    config = plan.get(CONFIG_MAP, "notes-pinning").inputs["data"]["haproxy.cfg"]
    assert "  default-server check inter 2s fall 2 rise 2\n" in config  # the handover peers keep their own port
    assert "svc.cluster.local:8080 resolvers kubedns init-addr none port 8405\n" in config
    assert "  option httpchk\n  http-check send meth GET uri /ready ver HTTP/1.1 hdr Host notes-pods\n" in config
    assert "  option persist\n" in config  # a pinned request still goes to a pod its check calls down
    check = spec(plan, AUTHZ, "notes-drain-check")
    assert check["rules"] == [{"from": [{"source": {"principals": ["cluster.local/ns/mcp-t-notes/sa/notes-pinning"]}}],
                               "to": [{"operation": {"ports": ["8405"]}}]}]
    assert spec(plan, NETPOL, "notes-drain-check")["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8405}]
    errors = {r.name: validate_kubernetes(r.manifest()) for r in plan.resources
              if r.type.startswith("kubernetes:") and "istio.io" not in r.inputs.get("apiVersion", "istio.io")}
    assert {name: e for name, e in errors.items() if e} == {}


def test_a_zero_drain_keeps_todays_pods_and_checks(record):
    plan = record(lambda: mesh_service(learned(session_drain_seconds=0)))
    template = pod(plan)
    (mcp,) = template["spec"]["containers"]
    assert mcp["lifecycle"] == {"preStop": {"sleep": {"seconds": 10}}} and "volumes" not in template["spec"]
    assert spec(plan, SERVICE, "notes-pods")["publishNotReadyAddresses"] is False
    config = plan.get(CONFIG_MAP, "notes-pinning").inputs["data"]["haproxy.cfg"]
    assert "  default-server check inter 2s fall 2 rise 2\n" in config and "httpchk" not in config
    assert "resolvers kubedns init-addr none\n" in config and " port 8405" not in config
    assert [r.name for r in plan.by_type(AUTHZ) if "drain" in r.name] == []


def test_a_short_stream_drain_still_leaves_the_session_drain_and_time_to_stop(record):
    template = pod(record(lambda: mesh_service(learned(drain_seconds=30, session_drain_seconds=600))))
    assert template["spec"]["terminationGracePeriodSeconds"] == 630
    assert template["spec"]["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"] == 600


@settings(max_examples=60, deadline=None)
@given(drain=st.integers(0, MAX_GRACE_SECONDS - SHUTDOWN_MARGIN_SECONDS), streams=st.integers(30, 3600))
def test_the_wait_always_ends_inside_the_grace_gke_honours(drain, streams):
    args = learned(session_drain_seconds=drain, drain_seconds=streams)
    # Kubernetes refuses a preStop sleep not shorter than the grace period; GKE node upgrades honour 1 h.
    assert max(drain, 10) < args.grace_seconds <= MAX_GRACE_SECONDS
    assert args.grace_seconds - drain >= SHUTDOWN_MARGIN_SECONDS or not drain


@pytest.mark.parametrize("overrides,message", [
    ({"session_mode": "stateless", "pinning": None}, "a stateless server keeps no session"),
    ({"session_mode": "shared-sessions", "pinning": None}, "shared-sessions: they live in the store"),
    ({"pinning": "cookie", "acknowledge": ["cookie-clients-only"]}, "goes with pinning: learned"),
    ({"session_drain_seconds": 3571}, "3571 s plus 30 s to shut down is longer than GKE honours"),
])
def test_bad_drain_settings_are_refused_under_their_key(overrides, message):
    values = {"session_drain_seconds": 600, **overrides}
    with pytest.raises(SettingsError) as error:
        learned(**values)
    (fault,) = error.value.problems
    assert fault[0] == "sessionDrainSeconds" and message in fault[1], fault
    assert learned(session_drain_seconds=3570).grace_seconds == 3600


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")
def test_the_drain_signal_config_is_valid_haproxy(tmp_path):
    path = tmp_path / "haproxy.cfg"
    path.write_text(pinning_proxy.drain_signal_config(listen_port=18405, server_port=18080, listen_address="127.0.0.1"))
    result = subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_plans_say_what_a_deploy_does_to_live_sessions():
    from conftest import plan_example

    (line,) = plan_example("gke-in-memory-learned").outputs["meshServiceDeploys"].values()
    assert line.startswith("a deploy drains for 30 min: old pods keep serving the sessions pinned to them")
    assert learned(session_drain_seconds=0).deploy_impact().startswith("a deploy ends the sessions of every replaced pod")
    assert service_args().deploy_impact() == "a deploy ends no session (shared-sessions: none lives in one pod's memory)"
    shards = plan_example("cloud-run-shards")
    assert shards.outputs["serviceDeploys"]["tools"] == shards.outputs["sessionShards"]["tools"]["deploy"] == (
        "new sessions start on generation 0; the next deploy (a new entry in generations) drains generation 0 for 30 min")
    assert shards.outputs["sessionShards"]["tools"]["capacity"].endswith(
        "; each deploy keeps the previous generation's 6 instance(s) running 30 min more (sessionDrainSeconds)")


HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"


def planned_proxies(plan) -> list[tuple[str, int, bool, str]]:
    """(service, planned maxReplicas, drained, haproxy.cfg) of each learned-pinning proxy in ``plan``."""
    found = []
    for resource in plan.resources:
        if resource.type == CONFIG_MAP and resource.name.endswith("-pinning"):
            service = resource.name.removesuffix("-pinning")
            max_replicas = int(spec(plan, HPA, service)["maxReplicas"])
            drained = spec(plan, SERVICE, f"{service}-pods")["publishNotReadyAddresses"]
            found.append((service, max_replicas, drained, resource.inputs["data"]["haproxy.cfg"]))
    return found


def test_the_planned_proxies_have_slots_for_old_new_and_surge_pods_and_one_answer_carries_them():
    """Measure what ships: the stacks' and the learned example's planned haproxy.cfg. (The prod stack
    plans no learned pinning; a prod-sized maxReplicas 30 with it is refused, test_one_pass.)"""
    from conftest import plan_example, plan_stack

    plans = {stack: plan_stack(stack) for stack in ("dev", "staging", "prod")}
    plans["gke-in-memory-learned"] = plan_example("gke-in-memory-learned")
    proxies = {(label, service): rest for label, plan in plans.items() for service, *rest in planned_proxies(plan)}
    assert ("gke-in-memory-learned", "legacy") in proxies
    for (label, service), (max_replicas, drained, config) in proxies.items():
        (line,) = [line for line in config.splitlines() if line.startswith("  server-template mcp 1-")]
        slots, host = int(line.split()[2][2:]), line.split()[3].rsplit(":", 1)[0]
        surge = -(-max_replicas // 4)  # Kubernetes' default maxSurge 25 %, rounded up
        assert drained and slots >= 2 * max_replicas + surge, (label, service, slots)  # old + new + surge
        assert slots >= 3 * max_replicas, (label, service, slots)  # a second deploy inside the window
        assert pinning_proxy.resolvers_section() in config and "  accepted_payload_size 65535\n" in config
        assert pinning_proxy.dns_answer_bytes(host, slots) <= 65535, (label, service)
