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
