"""The credential-free plan: run a Pulumi Python program under Pulumi's mock runtime.

``mcp-affinity plan --stack dev`` reads ``Pulumi.yaml`` and the stack's real config file, runs the
program with no CLI, no credentials and no network, and reports every resource with exactly the
inputs the engine would send to the provider.
"""

from .project import PulumiProject, StackConfigFile, find_project
from .runner import Plan, PlannedResource, run_plan

__all__ = ["Plan", "PlannedResource", "PulumiProject", "StackConfigFile", "find_project", "run_plan"]
