"""Helm values against what an Istio chart of the pinned version reads.

Sources (istio/istio at the pinned tag, ``manifests/charts/<chart>``; reference data in
``istio/<version>.yaml``, see istio_reference.py):

- Every chart's ``templates/zzz_profile.yaml`` merges ``.Values`` over the defaults that
  ``values.yaml`` keeps under ``_internal_defaults_do_not_set`` (since 1.24) and fails on
  ``.Values.defaults``. So the keys a user sets are the top-level keys of that tree: istiod reads
  ``.Values.autoscaleMin`` (``templates/autoscale.yaml``), and ``pilot.autoscaleMin`` is a key no
  template reads.
- A key is read when ``values.yaml`` has it, or a template reads ``.Values.<path>`` (listed in
  ``read_by_templates`` with file:line), or it lies under a free-form default (``{}`` or null) or
  an ``open`` subtree that a template passes through whole (cited).
- Only ``gateway`` has a ``values.schema.json``; Helm validates the merged values against it
  (``pkg/chartutil/jsonschema.go``), so an unknown gateway key fails the install. Helm drops a
  user value set to null before that (it deletes the key, ``pkg/chartutil/coalesce.go``).
"""

from __future__ import annotations

from typing import Any

import jsonschema

from schemas.crd_check import k8s_path


def _drop_nulls(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _drop_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [_drop_nulls(x) for x in v]
    return v


def _key_errors(values: dict, ref: dict) -> list[tuple[str, str]]:
    extra, open_paths = ref["read_by_templates"], ref["open"]
    out = []

    def read_by_templates(path: str) -> bool:
        return path in extra or any(e.startswith(path + ".") for e in extra)

    def walk(value: Any, tree: Any, parts: list[str]):
        for key, sub in value.items():
            path = ".".join(parts + [key])
            if path in open_paths:
                continue
            if path in ref.get("unread", {}):
                out.append((path, f"allowed by the chart's schema but not read by its templates ({ref['unread'][path]})"))
                continue
            node = tree.get(key) if isinstance(tree, dict) else None
            if node is None:
                if not read_by_templates(path):
                    hint = ""
                    if isinstance(sub, dict) and parts == [] and any(k in ref["keys"] for k in sub):
                        top = ", ".join(sorted(k for k in sub if k in ref["keys"]))
                        hint = f"; the chart reads {top} at the top level"
                    out.append((path, "no template of the chart reads this key (not in its values.yaml nor read "
                                      f"as .Values.{path}): Helm ignores it{hint}"))
                elif isinstance(sub, dict):
                    walk(sub, {}, parts + [key])
                continue
            if node in ("map", "null") or node == "list":
                continue
            if isinstance(node, dict):
                if isinstance(sub, dict):
                    walk(sub, node, parts + [key])
                elif sub is not None:
                    out.append((path, f"is a map in values.yaml, not {type(sub).__name__}"))
            elif isinstance(sub, dict):
                out.append((path, f"is a {node} in values.yaml, not a map: its sub-keys are not read"))

    wrapper = ref.get("wrapper")
    if wrapper and wrapper in values:
        out.append((wrapper, "the chart consumes this key itself (templates/zzz_profile.yaml): set its keys at the top level"))
    if wrapper and "defaults" in values:
        out.append(("defaults", "templates/zzz_profile.yaml fails on .Values.defaults: set its keys at the top level"))
    walk({k: v for k, v in values.items() if k not in (wrapper, "defaults")}, ref["keys"], [])
    return out


def check(values: dict, ref: dict) -> list[tuple[str, str]]:
    """(key path, message) for each value the chart described by ``ref`` rejects or ignores."""
    if not isinstance(values, dict):
        return [("<root>", "values must be a map")]
    out = _key_errors(values, ref)
    if "schema" in ref:
        validator = jsonschema.Draft7Validator(ref["schema"])
        for e in sorted(validator.iter_errors(_drop_nulls(values)), key=lambda e: list(map(str, e.absolute_path))):
            out.append((k8s_path(e.absolute_path), f"values.schema.json: {e.message}"))
    return out
