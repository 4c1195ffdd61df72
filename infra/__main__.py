"""The mcp-affinity stack program: Network -> SessionStore -> Cloud Run MCP services -> load balancer.

Reads ``mcp-affinity:*`` config (see ``stack_config.py``); a bad stack file stops the program
with a ConfigError before any resource is registered.
"""

import pulumi

from mcp_affinity import load_stack_config
from stack_config import NAMESPACE, StackConfig
from wiring import build

config = load_stack_config(StackConfig, NAMESPACE)
outputs = build(config)
for key, value in outputs.items():
    pulumi.export(key, value)
