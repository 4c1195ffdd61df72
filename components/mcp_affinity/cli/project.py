"""Reading a Pulumi project (``Pulumi.yaml``) and one stack's config file, as the CLI would."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..wire import MASKED as SECRET_PLACEHOLDER


class ProjectError(Exception):
    """The project or stack file is missing or malformed."""


@dataclass(frozen=True)
class StackConfigFile:
    """A stack's configuration as the engine hands it to a program.

    ``values``: ``namespace:key`` -> string (objects and arrays JSON-encoded); ``secret_keys``:
    top-level keys holding a ``secure:`` value at any depth (Pulumi marks the whole key secret);
    each secure value is replaced by ``[secret]``.
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
        config = document.get("config") if isinstance(document, dict) else None
        if config is not None and not isinstance(config, dict):
            raise ProjectError(f"{path}: 'config' must be a mapping of keys to values")
        for key, value in (config or {}).items():
            full = self._qualify(str(key))
            masked, secret = _mask_secure(value)
            values[full] = SECRET_PLACEHOLDER if masked is _SECURE else _encode(masked)
            if secret:
                secret_keys.append(full)
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


_SECURE = object()
MAX_BYTES = 1 << 20


def _mask_secure(value: Any) -> tuple[Any, bool]:
    """Replace every ``{secure: ...}`` inside ``value``; return (masked value, whether any was found)."""
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return _SECURE, True
        found, out = False, {}
        for k, v in value.items():
            masked, secret = _mask_secure(v)
            out[k] = SECRET_PLACEHOLDER if masked is _SECURE else masked
            found = found or secret
        return out, found
    if isinstance(value, list):
        items = [_mask_secure(v) for v in value]
        return [SECRET_PLACEHOLDER if m is _SECURE else m for m, _ in items], any(s for _, s in items)
    return value, False


MAX_NODES = 100_000
"""The most nodes a stack file may expand to once its aliases are followed (a "billion laughs"
document of a few lines would expand to billions)."""


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML read as Pulumi reads it (YAML 1.2: ``yes``, ``on`` and ``0755`` stay text), refusing
    duplicate keys (the last would win silently) and documents whose anchors and aliases (merge
    keys ``<<: *base`` included) expand beyond :data:`MAX_NODES` nodes."""

    yaml_implicit_resolvers = {k: [(tag, regexp) for tag, regexp in v
                                   if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int",
                                                  "tag:yaml.org,2002:float")]
                               for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}

    def construct_document(self, node):
        _check_expansion(node)
        return super().construct_document(node)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# YAML 1.2 core schema booleans and numbers (https://yaml.org/spec/1.2.2/#1032-tag-resolution), as Pulumi's
# Go YAML reader resolves them.
_StrictLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                    list("tTfF"))
_StrictLoader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
                                    list("-+0123456789"))
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))


def _check_expansion(root: yaml.Node) -> None:
    """Raise when ``root`` expands to more than :data:`MAX_NODES` nodes (aliases counted each time)."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        if id(node) not in sizes:
            sizes[id(node)] = 0  # a recursive alias counts as nothing more while it is being measured
            children = node.value if isinstance(node, yaml.SequenceNode) else \
                [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else []
            sizes[id(node)] = min(1 + sum(size(child) for child in children), MAX_NODES + 1)
        return sizes[id(node)]

    if size(root) > MAX_NODES:
        raise yaml.constructor.ConstructorError(None, None, f"the document expands to more than {MAX_NODES} values "
                                                "through its aliases", root.start_mark)


def _load_yaml(path: Path) -> Any:
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ProjectError(f"{path}: larger than {MAX_BYTES} bytes")
        return yaml.load(path.read_text(), Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except (yaml.YAMLError, RecursionError, UnicodeDecodeError) as error:
        raise ProjectError(f"{path}: not valid YAML: {str(error).strip()}") from None


def _encode(value: Any) -> str:
    """Config values reach programs as strings; structured ones JSON-encoded, booleans lowercase."""
    if isinstance(value, str):
        return value
    return json.dumps(value)
