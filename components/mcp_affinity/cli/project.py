"""Reading a Pulumi project (``Pulumi.yaml``) and one stack's config file, as the CLI would."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SECRET_PLACEHOLDER = "[secret]"


class ProjectError(Exception):
    """The project or stack file is missing or malformed."""


@dataclass(frozen=True)
class StackConfigFile:
    """A stack's configuration as the engine hands it to a program.

    ``values``: ``namespace:key`` -> string (objects and arrays JSON-encoded); ``secret_keys``:
    keys whose value was ``secure:`` in the file and is replaced by ``[secret]``.
    """

    values: dict[str, str]
    secret_keys: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PulumiProject:
    """``Pulumi.yaml``: project name, program directory, stack config directory, declared config."""

    root: Path
    name: str
    main: Path
    stack_config_dir: Path
    declared: dict[str, Any]

    def stack_file(self, stack: str) -> Path:
        return self.stack_config_dir / f"Pulumi.{stack}.yaml"

    def stack_config(self, stack: str) -> StackConfigFile:
        """Project defaults overlaid by the stack file; raises ProjectError if it is missing."""
        path = self.stack_file(stack)
        if not path.is_file():
            stacks = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in self.stack_config_dir.glob("Pulumi.*.yaml"))
            raise ProjectError(f"no stack file {path} (stacks here: {', '.join(stacks) or 'none'})")
        document = _load_yaml(path) or {}
        values: dict[str, str] = {}
        for key, decl in self.declared.items():
            if isinstance(decl, dict) and ("default" in decl or "value" in decl):
                values[self._qualify(key)] = _encode(decl.get("value", decl.get("default")))
            elif not isinstance(decl, dict):
                values[self._qualify(key)] = _encode(decl)
        secret_keys = []
        for key, value in (document.get("config") or {}).items():
            full = self._qualify(key)
            if isinstance(value, dict) and set(value) == {"secure"}:
                values[full] = SECRET_PLACEHOLDER
                secret_keys.append(full)
            else:
                values[full] = _encode(value)
        return StackConfigFile(values, sorted(secret_keys))

    def _qualify(self, key: str) -> str:
        return key if ":" in key else f"{self.name}:{key}"


def find_project(start: Path) -> PulumiProject:
    """Load ``Pulumi.yaml`` from ``start`` or its nearest parent that has one."""
    start = start.resolve()
    for directory in [start, *start.parents]:
        for filename in ("Pulumi.yaml", "Pulumi.yml"):
            if (directory / filename).is_file():
                return _project(directory, _load_yaml(directory / filename) or {})
    raise ProjectError(f"no Pulumi.yaml in {start} or its parents")


def _project(root: Path, document: dict) -> PulumiProject:
    runtime = document.get("runtime")
    runtime_name = runtime.get("name") if isinstance(runtime, dict) else runtime
    if runtime_name != "python":
        raise ProjectError(f"{root / 'Pulumi.yaml'}: runtime is {runtime_name!r}; only python programs can be planned")
    return PulumiProject(
        root=root,
        name=document["name"],
        main=(root / document.get("main", ".")).resolve(),
        stack_config_dir=(root / document.get("stackConfigDir", ".")).resolve(),
        declared=document.get("config") or {},
    )


def _load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ProjectError(f"{path}: not valid YAML: {error}") from None


def _encode(value: Any) -> str:
    """Config values reach programs as strings; structured ones JSON-encoded, booleans lowercase."""
    if isinstance(value, str):
        return value
    return json.dumps(value)
