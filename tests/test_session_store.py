"""SessionStore on mocks: AUTH, TLS, private services access, the URL only as a secret."""

from __future__ import annotations

import json

import pulumi
import pytest
from mcp_affinity.errors import SettingsError

from conftest import AUTH, is_secret
from helpers import NETWORK
from mcp_affinity import MaintenanceWindowArgs, SessionStore, SessionStoreArgs

REDIS = "gcp:redis/instance:Instance"
VERSION = "gcp:secretmanager/secretVersion:SecretVersion"


def make(**overrides) -> SessionStoreArgs:
    return SessionStoreArgs(**{**dict(prefix="mcp-t", region="europe-west1"), **overrides})


def make_store(name: str = "store", args: SessionStoreArgs | None = None) -> SessionStore:
    return SessionStore(name, args or make(), network=NETWORK)


def test_redis_has_auth_tls_and_private_service_access(record):
    plan = record(lambda: make_store())
    redis = plan.get(REDIS, "store").inputs
    assert redis["authEnabled"] is True
    assert redis["transitEncryptionMode"] == "SERVER_AUTHENTICATION"
    assert redis["connectMode"] == "PRIVATE_SERVICE_ACCESS"
    assert redis["authorizedNetwork"] == "projects/p/global/networks/vpc"
    assert redis["name"] == "mcp-t-store"
    assert redis["tier"] == "BASIC" and redis["memorySizeGb"] == 1


def test_url_is_a_secret_in_the_secret_version_and_never_in_plain_text(record):
    plan = record(lambda: make_store())
    assert is_secret(plan.get(VERSION, "store-url").inputs["secretData"])
    everything = json.dumps([r.to_json() for r in plan.resources]) + json.dumps(plan.outputs)
    assert AUTH not in everything


@pulumi.runtime.test
def test_connection_url_output_is_a_secret(gcp_mocks):
    store = make_store()

    def check(args):
        secret, url = args
        assert secret is True
        assert url == f"rediss://:{AUTH}@10.20.0.3:6378"

    return pulumi.Output.all(store.connection_url.is_secret(), store.connection_url).apply(check)


@pulumi.runtime.test
def test_host_port_and_ca_certificate_are_outputs(gcp_mocks):
    store = make_store()

    def check(args):
        host, port, ca = args
        assert (host, port) == ("10.20.0.3", 6378)
        assert ca.startswith("-----BEGIN CERTIFICATE-----")

    return pulumi.Output.all(store.host, store.port, store.ca_certificate).apply(check)


def test_production_settings_protect_and_replicate(record):
    args = make(tier="STANDARD_HA", memory_size_gb=5, read_replicas=1, rdb_snapshot_period="ONE_HOUR",
                maintenance_window=MaintenanceWindowArgs(day="SUNDAY", hour=3), deletion_protection=True)
    plan = record(lambda: make_store(args=args))
    redis = plan.get(REDIS, "store")
    assert redis.protect is True and redis.inputs["deletionProtection"] is True
    assert plan.get("gcp:secretmanager/secret:Secret", "store-url").protect is True
    assert redis.inputs["readReplicasMode"] == "READ_REPLICAS_ENABLED" and redis.inputs["replicaCount"] == 1
    assert redis.inputs["persistenceConfig"] == {"persistenceMode": "RDB", "rdbSnapshotPeriod": "ONE_HOUR"}
    assert redis.inputs["maintenancePolicy"]["weeklyMaintenanceWindows"][0]["day"] == "SUNDAY"


def test_dev_store_is_not_protected(record):
    plan = record(lambda: make_store())
    assert plan.get(REDIS, "store").protect is False


@pytest.mark.parametrize("overrides,message", [
    ({"read_replicas": 1}, "needs tier STANDARD_HA"),
    ({"tier": "STANDARD_HA", "read_replicas": 1, "memory_size_gb": 2}, "5 or more"),
    ({"region": "europe-west99"}, "not a Google Cloud region"),
    ({"tier": "PREMIUM"}, "BASIC"),
    ({"memory_size_gb": "5"}, "valid integer"),
    ({"redis_version": "REDIS_9_9"}, "REDIS_7_2"),
])
def test_invalid_store_settings_are_refused(overrides, message):
    with pytest.raises(SettingsError, match=message):
        make(**overrides)


def test_region_defaults_to_the_networks_first_and_the_secret_is_named_after_the_store(record):
    plan = record(lambda: SessionStore("sessions", SessionStoreArgs(prefix="mcp-t"), network=NETWORK))
    assert plan.get(REDIS, "sessions").inputs["region"] == "europe-west1"
    secret = plan.get("gcp:secretmanager/secret:Secret", "sessions-url").inputs
    assert secret["secretId"] == "mcp-t-sessions-url"
