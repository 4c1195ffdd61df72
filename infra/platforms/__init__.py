"""The platforms a stack can run MCP services on, each a seam of its own.

A platform module provides: ``KEYS`` (its stack-file keys), ``keys_set(config)`` (those of its keys
the file sets), ``settings(config, common, problems, network)`` (validate its keys into component
settings, None where refused, every fault recorded in ``problems``), ``needs_store(settings)``,
``routes(settings)`` (route key -> (route values, function from a fault's location in the route to
the config key that defined it)), ``named_components(settings, network)`` (for the physical-name
collision check) and ``build(settings, context)`` (create its components; return backends by route
key and outputs). Adding a platform means adding a module here and its keys to ``StackConfig``.
"""

from . import cloud_run, gke

PLATFORMS = {"cloud-run": cloud_run, "gke": gke}
