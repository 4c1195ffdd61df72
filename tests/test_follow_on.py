"""No follow-on faults: a fault that only follows from another is not reported; the user fixes the
first and the second goes away (issue 21 item 4). Each case is a stack file a user writes."""

from __future__ import annotations

import copy

import pytest

from test_hostile_config import BASE, NS, problems

SUBNETS = BASE[NS + "network"]["subnets"]


def prod(**changes) -> dict:
    config = {**copy.deepcopy(BASE), NS + "environment": "prod", NS + "deletionProtection": True,
              NS + "sessionStore": {**BASE[NS + "sessionStore"], "tier": "STANDARD_HA"}}
    config.update(changes)
    return config


def misspelt_region() -> dict:
    """Two regions written, one misspelt: only the misspelling is a fault."""
    network = copy.deepcopy(BASE[NS + "network"])
    network["subnets"]["eurpoe-west4"] = network["subnets"].pop("europe-west4")
    services = copy.deepcopy(BASE[NS + "services"])
    services["search"]["regions"] = ["europe-west1", "europe-west4"]
    return prod(**{NS + "network": network, NS + "services": services})


def access_as_plain_iap() -> dict:
    services = copy.deepcopy(BASE[NS + "services"])
    services["tools"]["access"] = "iap"
    return {**BASE, NS + "services": services}


@pytest.mark.parametrize("config, only", [
    (misspelt_region(), NS + "network.subnets.eurpoe-west4"),
    (access_as_plain_iap(), NS + "services.tools.access"),
], ids=["misspelt region", "access: iap"])
def test_one_mistake_one_fault(config, only):
    assert [key for key, _ in problems(config)] == [only]


def test_a_plain_iap_shows_the_mapping_to_write():
    ((_, message),) = problems(access_as_plain_iap())
    assert "write access: {mode: iap, members: [...]}" in message


def test_the_rule_still_holds_without_the_mistake():
    """The suppressed rules are not gone: one region in prod, a store no service uses."""
    one_region = {"cloudNat": True, "subnets": {"europe-west1": SUBNETS["europe-west1"]}}
    found = dict(problems(prod(**{NS + "network": one_region})))
    assert found[NS + "network"] == "prod needs subnets in two regions or more"
    services = {name: {**service, "sessionMode": "stateless"} for name, service in BASE[NS + "services"].items()}
    notes = {"notes": {**BASE[NS + "meshServices"]["notes"], "sessionMode": "stateless"}}
    found = dict(problems({**BASE, NS + "services": services, NS + "meshServices": notes}))
    assert found[NS + "sessionStore"].startswith("set, but no service uses a store")


def test_in_memory_on_cloud_run_names_session_shards():
    services = copy.deepcopy(BASE[NS + "services"])
    services["tools"]["sessionMode"] = "in-memory-sessions"
    found = dict(problems({**BASE, NS + "services": services}))
    assert "pinning: shards" in found[NS + "services.tools.sessionMode"]
