"""What an MCP server does with sessions, and the routing each platform derives from it.

Three kinds of server (``SessionMode``), measured with the official ``mcp`` 2.3 SDK behind a real
proxy (see the README's "Which mode for my server?" and ``tests/e2e``):

- ``stateless``: MCP 2026-07-28 (no sessions; ``Mcp-Method``/``Mcp-Name`` headers), or a legacy
  server in stateless mode. Nothing to pin; requests spread over all replicas. Redis, if any, is a
  notification broker for ``subscriptions/listen`` streams
  (https://modelcontextprotocol.io/specification/2026-07-28/changelog).
- ``shared-sessions``: legacy sessions kept in the shared store; any replica serves any request.
  Hashing the session header adds locality for streams where the platform supports it.
- ``in-memory-sessions``: legacy sessions in one replica's memory (the SDKs' default). Each session
  must reach the replica that created it. Hashing the header does not do that: ``initialize``
  carries no session id, lands anywhere, and the id that replica mints hashes to any replica
  (about (N-1)/N sessions die; modelcontextprotocol PR #325: "consistent hashing is not suitable
  in this scenario"). Only learned pinning (a proxy that reads the id from the response) or a
  cookie (for clients that keep cookies) works.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Annotated, Any

import pulumi
from pydantic import AfterValidator, Strict

from . import sources

DEFAULT_SESSION_HEADER = "Mcp-Session-Id"
"""The MCP streamable HTTP session header (https://modelcontextprotocol.io/specification/2025-11-25/basic/transports)."""

DEFAULT_COOKIE = "mcp-affinity"
"""The pinning cookie's default name (Istio persistent sessions; the conformance run's proxy)."""

METHOD_HEADER = "Mcp-Method"
NAME_HEADER = "Mcp-Name"
"""Request headers of MCP 2026-07-28 that let a load balancer route without reading the body."""

VERSION_HEADER = "MCP-Protocol-Version"
MODERN_VERSIONS = ("^(?:2026-(?:07-(?:2[89]|3[01])|(?:0[89]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01]))"
                   "|(?:202[7-9]|20[3-9][0-9]|2[1-9][0-9]{2}|[3-9][0-9]{3})-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01]))$")
"""An RE2 pattern matching exactly the ``MCP-Protocol-Version`` values 2026-07-28 or later
(``YYYY-MM-DD``, any later year up to 9999). Routes and limits act on ``Mcp-Method`` /
``Mcp-Name`` only in requests that claim such a version: MCP 2026-07-28, Streamable HTTP, "Server
Validation", says an intermediary acting on these headers should reject requests whose version
is absent or older rather than trust them
(https://modelcontextprotocol.io/specification/2026-07-28/basic/transports)."""

HASHING_LOSES_SESSIONS = (
    "hashing the session header pins a session to *a* replica, not to the one that created it: "
    "initialize carries no session id and lands anywhere, so with in-memory sessions about (N-1)/N "
    "sessions die (measured with the official mcp 2.3 SDK behind HAProxy: 2 and 5 of 8 sessions lost; "
    "modelcontextprotocol PR #325)"
)

# RFC 9110 token characters: what an HTTP field name may contain.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class SessionMode(str, Enum):
    """What the MCP server does with sessions; see the module docstring."""

    STATELESS = "stateless"
    SHARED_SESSIONS = "shared-sessions"
    IN_MEMORY_SESSIONS = "in-memory-sessions"


class StoreRole(str, Enum):
    """What the Redis store is to a service: nothing, its session store, or a notification broker."""

    NONE = "none"
    SESSION_STORE = "session-store"
    NOTIFICATION_BROKER = "notification-broker"


def store_role(mode: SessionMode, notification_broker: bool) -> StoreRole:
    """The store's role for a server of ``mode``; raises ``ValueError`` for a broker with sessions."""
    if notification_broker and mode is not SessionMode.STATELESS:
        raise ValueError("notificationBroker goes with sessionMode stateless (the 2026-07-28 "
                         "subscriptions/listen fan-out); legacy servers keep sessions, not subscriptions")
    if mode is SessionMode.SHARED_SESSIONS:
        return StoreRole.SESSION_STORE
    return StoreRole.NOTIFICATION_BROKER if notification_broker else StoreRole.NONE


def _check_header_name(value: str) -> str:
    if not _HEADER_NAME.fullmatch(value) or len(value) > 256:
        raise ValueError(f"{value!r} is not a valid HTTP header name (RFC 9110 token)")
    return value


HeaderName = Annotated[str, Strict(), AfterValidator(_check_header_name)]


def warn_header_hash_on_serverless(service: str, resource: pulumi.Resource | None = None) -> None:
    """Log, at every preview and update, that header hashing on serverless NEGs does nothing."""
    pulumi.log.warn(
        f"{service}: loadBalancerHash sets HEADER_FIELD/RING_HASH on a backend service with serverless "
        f"NEGs. Google documents load-balancer session affinity as not supported on serverless NEGs "
        f"({sources.CLOUD_RUN_SESSION_AFFINITY}) and lists consistent hashing only for INTERNAL_MANAGED "
        f"and INTERNAL_SELF_MANAGED backend services ({sources.BACKEND_SERVICE_API}): expect no effect.",
        resource,
    )


def backend_hash_settings(header: str) -> dict[str, Any]:
    """Backend-service arguments that hash ``header`` (``consistent_hash`` needs RING_HASH or MAGLEV;
    https://cloud.google.com/compute/docs/reference/rest/v1/backendServices)."""
    return {"session_affinity": "HEADER_FIELD", "locality_lb_policy": "RING_HASH",
            "consistent_hash": {"http_header_name": header}}
