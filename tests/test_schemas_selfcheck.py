"""The schema validators in tests/schemas work, and can fail.

Istio validation needs `npm ci --prefix tests/schemas`; without it these tests fail
(IstioValidatorMissing names the command) rather than skip.
"""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest

from schemas.validate import (
    K8S_VERSION,
    IstioValidatorMissing,
    require_istio,
    validate_istio,
    validate_kubernetes,
)

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "mcp", "namespace": "mcp", "labels": {"app": "mcp"}},
    "spec": {
        "replicas": 3,
        "selector": {"matchLabels": {"app": "mcp"}},
        "template": {
            "metadata": {"labels": {"app": "mcp"}},
            "spec": {
                "containers": [
                    {
                        "name": "server",
                        "image": "example/mcp:1",
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}},
                    }
                ]
            },
        },
    },
}

DESTINATION_RULE = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "DestinationRule",
    "metadata": {"name": "mcp", "namespace": "mcp"},
    "spec": {
        "host": "mcp.mcp.svc.cluster.local",
        "trafficPolicy": {"loadBalancer": {"consistentHash": {"httpHeaderName": "mcp-session-id"}}},
    },
}


def _with(doc: dict, path: list, value) -> dict:
    """A copy of doc with value set at path (a list of keys and indexes)."""
    out = copy.deepcopy(doc)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


# --------------------------------------------------------------------------- Kubernetes


def test_kubernetes_schema_version_is_the_newest_bundled():
    assert kubernetes_validate.latest_version().startswith(K8S_VERSION + ".")


def test_valid_deployment_passes():
    assert validate_kubernetes(DEPLOYMENT) == []
    # The package's own API agrees.
    assert kubernetes_validate.validate(DEPLOYMENT, K8S_VERSION, strict=True) == K8S_VERSION


def test_unknown_field_in_deployment_spec_fails():
    bad = _with(DEPLOYMENT, ["spec", "sessionAffinity"], "ClientIP")
    assert validate_kubernetes(bad) == [
        "/spec: Additional properties are not allowed ('sessionAffinity' was unexpected)"
    ]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def test_unknown_field_deep_in_pod_template_fails():
    bad = _with(DEPLOYMENT, ["spec", "template", "spec", "containers", 0, "imagePullPolicyy"], "Always")
    errors = validate_kubernetes(bad)
    assert len(errors) == 1 and errors[0].startswith("/spec/template/spec/containers/0: ")
    assert "imagePullPolicyy" in errors[0]


def test_wrong_type_and_missing_required_are_all_reported():
    bad = _with(DEPLOYMENT, ["spec", "replicas"], "three")
    del bad["spec"]["selector"]
    errors = validate_kubernetes(bad)
    assert any(e.startswith("/spec/replicas: 'three' is not of type") for e in errors), errors
    assert "/spec: 'selector' is a required property" in errors


def test_unknown_kind_fails():
    assert validate_kubernetes(_with(DEPLOYMENT, ["kind"], "Deploymint")) == [
        f"(root): no Kubernetes {K8S_VERSION} schema for apiVersion='apps/v1' kind='Deploymint'"
    ]


# --------------------------------------------------------------------------- Istio


@pytest.fixture(scope="module")
def istio():
    require_istio()  # fails, naming `npm ci --prefix tests/schemas`, when not installed


def test_missing_istio_install_is_a_clear_error(monkeypatch):
    import schemas.validate as v

    monkeypatch.setattr(v, "HERE", v.HERE / "does-not-exist")
    with pytest.raises(IstioValidatorMissing, match=r"npm ci --prefix tests/schemas"):
        v.validate_istio([DESTINATION_RULE])


def test_istio_batch(istio):
    cases = {
        "valid": DESTINATION_RULE,
        "misspelled field": _with(
            DESTINATION_RULE,
            ["spec", "trafficPolicy", "loadBalancer", "consistentHash"],
            {"httpHeader": "mcp-session-id"},
        ),
        "wrong type": _with(DESTINATION_RULE, ["spec", "host"], 42),
        "unknown in spec": _with(DESTINATION_RULE, ["spec", "sessionAffinity"], "ClientIP"),
        "unknown in metadata": _with(DESTINATION_RULE, ["metadata", "lables"], {"a": "b"}),
        "two hash keys": _with(
            DESTINATION_RULE,
            ["spec", "trafficPolicy", "loadBalancer", "consistentHash", "useSourceIp"],
            True,
        ),
        "unknown version": _with(DESTINATION_RULE, ["apiVersion"], "networking.istio.io/v2"),
    }
    results = dict(zip(cases, validate_istio(list(cases.values()))))

    assert results["valid"] == []
    assert results["misspelled field"] == [
        '/spec/trafficPolicy/loadBalancer/consistentHash: unknown field "httpHeader"'
    ]
    assert results["wrong type"] == ["/spec/host: must be string"]
    assert results["unknown in spec"] == ['/spec: unknown field "sessionAffinity"']
    assert results["unknown in metadata"] == ['/metadata: unknown field "lables"']
    assert any("oneOf" in e for e in results["two hash keys"]), results["two hash keys"]
    assert results["unknown version"][0].startswith("(root): no Istio schema")


def test_istio_other_kinds(istio):
    vs = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "mcp"},
        "spec": {
            "hosts": ["mcp.example.com"],
            "gateways": ["mcp-gateway"],
            "http": [
                {
                    "match": [{"uri": {"prefix": "/mcp"}, "headers": {"mcp-session-id": {"regex": ".+"}}}],
                    "route": [{"destination": {"host": "mcp", "port": {"number": 8080}}}],
                    "timeout": "3600s",
                }
            ],
        },
    }
    gw = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "mcp-gateway"},
        "spec": {
            "selector": {"istio": "ingressgateway"},
            "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}],
        },
    }
    pa = {
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": "default"},
        "spec": {"mtls": {"mode": "STRICT"}},
    }
    bad_vs = _with(vs, ["spec", "http", 0, "match", 0, "headers", "mcp-session-id"], {"regexp": ".+"})
    bad_pa = _with(pa, ["spec", "mtls", "mode"], "STRICTER")
    assert validate_istio([vs, gw, pa, bad_vs, bad_pa]) == [
        [],
        [],
        [],
        ['/spec/http/0/match/0/headers/mcp-session-id: unknown field "regexp"'],
        ['/spec/mtls/mode: must be equal to one of the allowed values ["UNSET","DISABLE","PERMISSIVE","STRICT"]'],
    ]


def test_istio_empty_batch_needs_no_node():
    assert validate_istio([]) == []


# --------------------------------------------------------------------------- Istio 1.30.3: CRDs with CEL, charts
#
# tests/schemas/istio_check.py against tests/schemas/istio/1.30.3.yaml (istio_reference.py says
# where each part comes from). Pure Python: no Node, no network, no mirror needed.

from schemas import cel_check, istio_reference  # noqa: E402
from schemas.istio_check import check_release, validate_object  # noqa: E402

VIRTUAL_SERVICE = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": "notes", "namespace": "mcp-notes"},
    "spec": {
        "hosts": ["notes.mcp.example.com"],
        "gateways": ["istio-ingress/mcp-gateway"],
        "http": [{"timeout": "3600s", "route": [{"destination": {"host": "notes", "port": {"number": 80}}}]}],
    },
}


def test_known_good_destination_rule_with_header_hash_passes():
    assert validate_object(DESTINATION_RULE) == []


def test_known_good_virtual_service_passes_and_wire_floats_are_integers():
    assert validate_object(VIRTUAL_SERVICE) == []
    # Pulumi's wire sends 80.0; the API server decodes integral numbers as integers.
    assert validate_object(_with(VIRTUAL_SERVICE, ["spec", "http", 0, "route", 0, "destination", "port", "number"], 80.0)) == []


def test_virtual_service_zero_timeout_is_rejected_by_the_cel_rule():
    errors = validate_object(_with(VIRTUAL_SERVICE, ["spec", "http", 0, "timeout"], "0s"))
    assert len(errors) == 1, errors
    assert errors[0].startswith("VirtualService/notes: spec.http[0].timeout: Invalid value: '0s': "
                                "must be a valid duration greater than 1ms")
    assert "duration(self) >= duration('1ms')" in errors[0]


@pytest.mark.parametrize("timeout, ok", [
    ("1ms", True), ("0.001s", True), ("1h30m", True), ("1000us", True), ("1000µs", True),
    ("999us", False), ("999999ns", False), ("0", False), ("1d", False), ("10", False), ("", False),
])
def test_durations_follow_go_parse_duration(timeout, ok):
    errors = validate_object(_with(VIRTUAL_SERVICE, ["spec", "http", 0, "timeout"], timeout))
    assert (errors == []) is ok, errors


def test_go_duration_parser():
    assert cel_check.parse_go_duration("1h2m3.5s") == (3600 + 120 + 3) * 10**9 + 500_000_000
    assert cel_check.parse_go_duration("-1.5ms") == -1_500_000
    for bad in ("1d", "s", ".s", "1", "1.2.3s", "+"):
        with pytest.raises(ValueError):
            cel_check.parse_go_duration(bad)


def test_unknown_fields_are_rejected_at_every_level():
    bad = _with(VIRTUAL_SERVICE, ["spec", "http", 0, "timeoutt"], "10s")
    assert validate_object(bad) == ['VirtualService/notes: spec.http[0]: unknown field "timeoutt"']
    bad = _with(DESTINATION_RULE, ["spec", "trafficPolicy", "loadBalancer", "consistentHash"], {"httpHeader": "x"})
    errors = validate_object(bad)
    assert 'DestinationRule/mcp: spec.trafficPolicy.loadBalancer.consistentHash: unknown field "httpHeader"' in errors
    assert validate_object(_with(DESTINATION_RULE, ["metadata", "lables"], {})) == [
        "DestinationRule/mcp: metadata: Additional properties are not allowed ('lables' was unexpected)"
    ]


def test_field_outside_the_reference_subset_is_not_called_unknown():
    errors = validate_object(_with(DESTINATION_RULE, ["spec", "subsets"], [{"name": "v1"}]))
    assert len(errors) == 1 and 'field "subsets" exists in the CRD but is outside the reference subset' in errors[0]


def test_structural_types_enums_and_one_of():
    assert validate_object(_with(DESTINATION_RULE, ["spec", "host"], 42)) == [
        "DestinationRule/mcp: spec.host: 42 is not of type 'string'"
    ]
    two = _with(DESTINATION_RULE, ["spec", "trafficPolicy", "loadBalancer", "consistentHash", "useSourceIp"], True)
    assert any("is valid under each of" in e for e in validate_object(two))
    pa = {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
          "metadata": {"name": "default", "namespace": "mcp"}, "spec": {"mtls": {"mode": "STRICTER"}}}
    assert validate_object(pa) == ["PeerAuthentication/default: spec.mtls.mode: 'STRICTER' is not one of "
                                   "['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT']"]


def test_cel_rules_of_security_kinds():
    ap = {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
          "metadata": {"name": "allow-gateway", "namespace": "mcp"},
          "spec": {"action": "ALLOW", "selector": {"matchLabels": {"app": "notes"}},
                   "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/istio-ingress/sa/gw"]}}]}]}}
    assert validate_object(ap) == []
    both = _with(ap, ["spec", "targetRefs"], [{"group": "", "kind": "Service", "name": "notes"}])
    assert [e.split(" [rule")[0] for e in validate_object(both)] == [
        "AuthorizationPolicy/allow-gateway: spec: only one of targetRefs or selector can be set"]
    wildcard = _with(ap, ["spec", "selector", "matchLabels"], {"app": "*"})
    assert any("wildcard not allowed in label value match" in e for e in validate_object(wildcard))


def test_gateway_api_waypoint_defaults_and_list_rules():
    waypoint = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                "metadata": {"name": "waypoint", "namespace": "mcp", "labels": {"istio.io/waypoint-for": "service"}},
                "spec": {"gatewayClassName": "istio-waypoint",
                         "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]}}
    assert validate_object(waypoint) == []
    dup = _with(waypoint, ["spec", "listeners"], waypoint["spec"]["listeners"] * 2)
    errors = validate_object(dup)
    assert "Gateway/waypoint: spec.listeners[1]: Duplicate value: {'name': 'mesh'}" in errors
    assert any("Listener name must be unique within the Gateway" in e for e in errors)
    # tls.mode defaults to Terminate, and then a certificate is required (a CEL rule on the default).
    https = _with(waypoint, ["spec", "listeners"], [{"name": "https", "port": 443, "protocol": "HTTPS", "tls": {}}])
    assert any("certificateRefs or options must be specified when mode is Terminate" in e for e in validate_object(https))


def test_metadata_name_and_unknown_kind():
    assert validate_object(_with(DESTINATION_RULE, ["metadata", "name"], "Not_Valid"))[0].startswith(
        "DestinationRule/Not_Valid: metadata.name: Invalid value")
    assert validate_object(_with(DESTINATION_RULE, ["apiVersion"], "networking.istio.io/v1alpha2"))[0].startswith(
        "DestinationRule/mcp: <root>: no reference data for apiVersion='networking.istio.io/v1alpha2'")


def test_transition_rules_do_not_run_on_create():
    rules = [{"path": "spec", "rule": "self == oldSelf", "message": "immutable"},
             {"path": "spec", "rule": "size(self) > 5", "message": "too small"}]
    assert cel_check.check({"spec": {"a": 1}}, rules) == [(["spec"], "too small [rule: size(self) > 5]")]


def test_every_stored_rule_compiles_with_supported_functions():
    kinds = istio_reference.load()["kinds"]
    assert set(kinds) == set(istio_reference.FIELDS)
    for key, ref in kinds.items():
        assert ref["rules"], key
        for r in ref["rules"]:
            assert cel_check.unsupported_functions(r["rule"]) == set(), (key, r)
            cel_check.program(r["rule"])  # parses


def test_istiod_nested_pilot_value_is_reported():
    assert check_release("istiod", "1.30.3", {"pilot": {"autoscaleMin": 2}}) == [
        "helm/istiod: pilot: no template of the chart reads this key (not in its values.yaml nor read as "
        ".Values.pilot): Helm ignores it; the chart reads autoscaleMin at the top level"
    ]


def test_istiod_top_level_values_are_accepted():
    values = {"autoscaleMin": 2, "env": {"PILOT_ENABLE_PERSISTENT_SESSION_FILTER": "true"},
              "meshConfig": {"defaultConfig": {"terminationDrainDuration": "30s"}},
              "resources": {"limits": {"cpu": "1"}}, "global": {"hub": "europe-docker.pkg.dev/p/r", "platform": "gke"}}
    assert check_release("istiod", "1.30.3", values) == []


def test_istiod_wrong_shape_and_wrapper_are_reported():
    errors = check_release("istiod", "1.30.3", {"autoscaleMin": {"value": 2}, "_internal_defaults_do_not_set": {}})
    assert any(e.startswith("helm/istiod: autoscaleMin: is a integer in values.yaml, not a map") for e in errors)
    assert any(e.startswith("helm/istiod: _internal_defaults_do_not_set: the chart consumes") for e in errors)


def test_gateway_unknown_value_is_rejected_by_its_schema():
    errors = check_release("gateway", "1.30.3", {"autoscaling": {"minReplicas": 2}, "replicas": 2})
    assert "helm/gateway: <root>: values.schema.json: Additional properties are not allowed ('replicas' was unexpected)" in errors
    assert check_release("gateway", "1.30.3", {"autoscaling": {"minReplicas": "2"}}) == [
        "helm/gateway: autoscaling.minReplicas: values.schema.json: '2' is not of type 'integer'"]


def test_gateway_known_values_pass_and_null_removes_a_key():
    values = {"autoscaling": {"minReplicas": 2}, "terminationGracePeriodSeconds": 3600,
              "labels": {"istio": "mcp-gateway"},
              "service": {"type": "ClusterIP", "annotations": {"cloud.google.com/neg": "{}"}, "loadBalancerIP": None}}
    assert check_release("gateway", "1.30.3", values) == []


def test_chart_version_other_than_the_reference_is_reported():
    assert check_release("base", "1.28.1", {}) == [
        "helm/base: version: chart version 1.28.1 but the checks are for Istio 1.30.3"]


def test_reference_file_names_its_sources_and_licence():
    text = istio_reference.REFERENCE.read_text()
    assert "Apache License 2.0" in text.split("\n\n")[0]
    data = istio_reference.load()
    assert data["istio_version"] == istio_reference.ISTIO_VERSION
    for section in [*data["kinds"].values(), *data["charts"].values()]:
        assert section["source"]["repo"] in (istio_reference.ISTIO_REPO, istio_reference.GATEWAY_API_REPO,
                                             istio_reference.GMP_REPO)
        assert section["source"]["path"] and section["source"]["ref"]


def test_reference_matches_the_fetched_mirrors():
    """Drift: the stored file is what istio_reference.build() makes from the upstream tags."""
    for repo in istio_reference.MIRRORS:
        why = istio_reference.mirror_missing(repo)
        if why:
            pytest.skip(f"drift check needs the fetched mirror: {why}")
    assert istio_reference.build() == istio_reference.load(), \
        "tests/schemas/istio/1.30.3.yaml differs from the upstream files: run tests/schemas/istio_reference.py --update"
