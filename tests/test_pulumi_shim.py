"""The SDK internals ``mcp_affinity.pulumi_shim`` relies on still exist with the shape it uses:
this fails on the Pulumi release that renames or reshapes one, before a plan silently breaks."""

from __future__ import annotations

import contextvars
import inspect

import pulumi
from pulumi.runtime import config as runtime_config
from pulumi.runtime import mocks, settings, stack, sync_await
from pulumi.runtime.proto import engine_pb2

from mcp_affinity import pulumi_shim
from mcp_affinity.cli.runner import run_function


def parameters(function) -> set[str]:
    return set(inspect.signature(function).parameters)


def test_the_mock_runtime_has_the_shape_the_runner_uses():
    assert {"mocks", "project", "stack", "preview", "monitor"} <= parameters(mocks.set_mocks)
    assert callable(mocks.MockMonitor.RegisterResource) and callable(mocks.MockEngine.Log)
    assert {"mocks"} <= parameters(mocks.MockMonitor.__init__) and {"logger"} <= parameters(mocks.MockEngine.__init__)
    assert isinstance(settings.ROOT, contextvars.ContextVar) and callable(settings.get_root_resource)
    assert hasattr(settings.SETTINGS, "engine") and hasattr(settings.SETTINGS, "root_directory")
    assert callable(stack.run_pulumi_func) and callable(sync_await._sync_await)
    assert isinstance(engine_pb2.WARNING, int)


def test_the_config_internals_have_the_shape_the_stack_uses():
    assert isinstance(runtime_config.CONFIG, contextvars.ContextVar)
    assert isinstance(runtime_config._SECRET_KEYS, contextvars.ContextVar)
    assert callable(runtime_config.get_config_env) and callable(runtime_config.get_config_secret_keys_env)
    assert list(inspect.signature(runtime_config.set_all_config).parameters)[:2] == ["config", "secret_keys"]


def test_a_mock_run_records_resources_warnings_config_and_outputs():
    def program():
        assert pulumi_shim.config_values()["ns:key"] == "value"
        assert pulumi_shim.secret_config_keys() == {"ns:key"}
        pulumi.log.warn("careful")
        pulumi.export("answer", 42)

    plan = run_function(program, config={"ns:key": "value"}, secret_keys=["ns:key"])
    assert plan.outputs == {"answer": 42} and [str(w) for w in plan.warnings] == ["careful"]
