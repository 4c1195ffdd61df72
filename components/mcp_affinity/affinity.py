"""Session affinity modes for Cloud Run behind a global external Application Load Balancer.

A serverless NEG addresses a Cloud Run *service*, never one instance, and Google documents that
load-balancer session affinity is not supported on serverless NEGs
(https://cloud.google.com/run/docs/configuring/session-affinity). So on Cloud Run the session
store, not the load balancer, is what keeps an MCP session alive; header hashing is offered only
because popular guides describe it, and it is loudly flagged when chosen.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Any

import pulumi

from . import sources

DEFAULT_SESSION_HEADER = "Mcp-Session-Id"
"""The MCP streamable HTTP session header (https://modelcontextprotocol.io/specification/2025-11-25/basic/transports)."""

# RFC 9110 token characters: what an HTTP field name may contain.
HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


class AffinityMode(str, Enum):
    """How a Cloud Run MCP service keeps requests of one session working.

    - ``shared-store`` (default): no load-balancer affinity; Cloud Run's own cookie-based,
      best-effort session affinity on; session metadata in the shared Memorystore store.
    - ``lb-header-hash``: the backend service hashes the session header
      (``HEADER_FIELD`` + ``RING_HASH``). Google documents this as unsupported on serverless NEGs;
      choosing it logs a warning at every preview and update.
    """

    SHARED_STORE = "shared-store"
    LB_HEADER_HASH = "lb-header-hash"


# Modes people ask for that Cloud Run behind a serverless NEG cannot honour, and why.
UNSUPPORTED_ON_CLOUD_RUN = {
    "client-ip": "the load balancer cannot pin a Cloud Run instance; CLIENT_IP affinity is not supported on serverless NEGs",
    "generated-cookie": "the load balancer cannot pin a Cloud Run instance; GENERATED_COOKIE affinity is not supported on serverless NEGs",
    "http-cookie": "the load balancer cannot pin a Cloud Run instance; HTTP_COOKIE affinity is not supported on serverless NEGs",
    "mesh-header-hash": "Cloud Run has no service mesh data plane; mesh header hashing needs the GKE platform",
    "none": "use shared-store: without the store a session survives only on the instance that created it",
}


def parse_mode(value: Any) -> AffinityMode:
    """Accept an :class:`AffinityMode` or its string; raise ``ValueError`` naming what is allowed.

    Source: https://cloud.google.com/run/docs/configuring/session-affinity
    """
    if isinstance(value, AffinityMode):
        return value
    allowed = ", ".join(m.value for m in AffinityMode)
    if value in UNSUPPORTED_ON_CLOUD_RUN:
        raise ValueError(
            f"'{value}' cannot be honoured on Cloud Run: {UNSUPPORTED_ON_CLOUD_RUN[value]} "
            f"({sources.CLOUD_RUN_SESSION_AFFINITY}); allowed: {allowed}"
        )
    try:
        return AffinityMode(value)
    except ValueError:
        raise ValueError(f"unknown affinity mode {value!r}; allowed: {allowed}") from None


def check_header_name(value: str) -> str:
    """Return ``value`` if it is a valid HTTP field name, else raise ``ValueError``."""
    if not HEADER_NAME.match(value):
        raise ValueError(f"{value!r} is not a valid HTTP header name")
    return value


def backend_affinity_settings(mode: AffinityMode, header: str) -> dict[str, Any]:
    """Backend-service arguments for ``mode``: empty for ``shared-store``.

    For ``lb-header-hash``: ``session_affinity="HEADER_FIELD"``, ``locality_lb_policy="RING_HASH"``
    and ``consistent_hash.http_header_name`` (which takes effect only with RING_HASH or MAGLEV;
    https://cloud.google.com/compute/docs/reference/rest/v1/backendServices).
    """
    if mode is AffinityMode.SHARED_STORE:
        return {}
    return {
        "session_affinity": "HEADER_FIELD",
        "locality_lb_policy": "RING_HASH",
        "consistent_hash": {"http_header_name": header},
    }


def warn_header_hash_on_serverless(service: str, resource: pulumi.Resource | None = None) -> None:
    """Log, at every preview and update, that header hashing on serverless NEGs is unsupported."""
    pulumi.log.warn(
        f"{service}: affinity mode 'lb-header-hash' sets HEADER_FIELD/RING_HASH on a backend service "
        f"with serverless NEGs. Google documents load-balancer session affinity as not supported on "
        f"serverless NEGs ({sources.CLOUD_RUN_SESSION_AFFINITY}), and a serverless NEG cannot address "
        f"one instance: sessions are kept by the shared session store, not by this setting.",
        resource,
    )
