"""Pulumi's wire-format sentinels, the plan's placeholder for a secret and the resource type
tokens more than one module names, defined once.

The command line, the policy rules and the settings that must accept a secure value the plan
cannot read all take them from here.

The engine sends unknown values as the string ``UNKNOWN`` and secrets in an envelope
``{SECRET_SIG: SECRET_VALUE_SIG, "value": ...}``; see ``pulumi/sdk/python/lib/pulumi/runtime/rpc.py``.
"""

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
"""The unknown sentinel the engine sends for a value only the provider computes."""

UNKNOWNS = frozenset({UNKNOWN, "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7", "3eeb2bf0-c639-47a8-9e75-3b44932eb421",
                      "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2", "030794c1-ac77-496b-92df-f27374a8bd58",
                      "e48ece36-62e2-4504-bad9-02848725956a", "dd056dcd-154b-4c76-9bd3-c8f88648b5ff"})
"""Every typed unknown sentinel (string, bool, number, array, object, asset, archive)."""

SECRET_SIG = "4dabf18193072939515e22adb298388d"
"""The key that marks a special value in a property bag."""

SECRET_VALUE_SIG = "1b47061264138c4ac30d75fd1eb44270"
"""The value of ``SECRET_SIG`` that marks a secret envelope."""

MASKED = "[secret]"
"""What a secret's value becomes in every plan this tool writes, and what a ``secure:`` config value
reads as under ``mcp-affinity plan`` (which has no key to decrypt it)."""

COMPUTED = "(known after apply)"
"""How an unknown value reads in a plan, as in ``pulumi preview``."""


# Resource type tokens (pulumi-gcp, pulumi-kubernetes) that the policy rules, the plan's picture and
# the command line name.
REDIS = "gcp:redis/instance:Instance"
CLOUD_RUN = "gcp:cloudrunv2/service:Service"
NEG = "gcp:compute/regionNetworkEndpointGroup:RegionNetworkEndpointGroup"
BACKEND = "gcp:compute/backendService:BackendService"
FORWARDING_RULE = "gcp:compute/globalForwardingRule:GlobalForwardingRule"
URL_MAP = "gcp:compute/uRLMap:URLMap"
K8S_SERVICE = "kubernetes:core/v1:Service"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
