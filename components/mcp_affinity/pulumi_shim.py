"""Every use of the Pulumi Python SDK's undocumented internals, in one place.

The credential-free plan runs a program under the SDK's mock runtime and records what it
registers; reading a stack's configuration needs the keys Pulumi marks secret. Neither has a
public API, so each internal is named here once; ``tests/test_pulumi_shim.py`` fails when an SDK
release renames or reshapes one of them (the SDK's files: ``pulumi/runtime/mocks.py``,
``settings.py``, ``config.py``, ``stack.py``, ``sync_await.py``).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from pulumi.runtime import config as _config
from pulumi.runtime import mocks, settings
from pulumi.runtime.proto import engine_pb2
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

Mocks = mocks.Mocks
MockMonitor = mocks.MockMonitor
MockEngine = mocks.MockEngine
MockResourceArgs = mocks.MockResourceArgs
MockCallArgs = mocks.MockCallArgs
WARNING = engine_pb2.WARNING
"""``LogRequest.severity`` of a warning."""

sync_await = _sync_await
"""Run a coroutine to completion on the SDK's event loop."""


def config_values() -> dict[str, str]:
    """Every configuration value the program was given (``namespace:key`` -> string)."""
    return {**_config.get_config_env(), **_config.CONFIG.get()}


def secret_config_keys() -> set[str]:
    """The configuration keys Pulumi marks secret (``namespace:key``)."""
    return set(_config.get_config_secret_keys_env()) | set(_config._SECRET_KEYS.get())


def start_mock_run(mock: Mocks, monitor: MockMonitor, engine: MockEngine, *, project: str, stack: str,
                   preview: bool, config: dict[str, str], secret_keys: list[str],
                   root_directory: Optional[str]) -> None:
    """Reset the runtime and install ``mock`` with a recording ``monitor`` and ``engine``."""
    settings.ROOT.set(None)
    mocks.set_mocks(mock, project=project, stack=stack, preview=preview, monitor=monitor)
    settings.SETTINGS.engine = engine
    settings.SETTINGS.root_directory = root_directory
    _config.set_all_config(config, secret_keys)


def run_program(program: Callable[[], Any]) -> Any:
    """Run ``program`` as the stack's body; return the root (stack) resource."""
    _sync_await(run_pulumi_func(program))
    return settings.get_root_resource()
