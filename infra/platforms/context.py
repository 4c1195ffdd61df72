"""What every platform's ``build`` receives from the shared components of the stack."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from mcp_affinity import NetworkRef, SessionStoreRef


@dataclass(frozen=True)
class SharedContext:
    """The network, the store (or None), the names of config keys holding secure values, and whether
    monitoring is on."""

    network: NetworkRef
    session_store: Optional[SessionStoreRef]
    secret_keys: frozenset[str]
    monitoring: bool = False
    """Monitoring is on: platforms plan what it scrapes (``McpMeshMetrics`` on GKE)."""

    def secret_env(self, key: str, env: dict[str, str]) -> frozenset[str]:
        """Env names whose values must stay secrets: all of them when the top-level key is secure."""
        return frozenset(env) if key in self.secret_keys else frozenset()
