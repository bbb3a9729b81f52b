"""A pydantic JSON schema made fit for OpenAI's strict mode (structured outputs, strict tools).

Strict mode accepts a subset of JSON Schema; a schema outside it is refused with a 400 before
the model runs. What pydantic emits and strict mode refuses, and what we do about it:

* an object that may hold more than its properties, or may leave one out: every object with
  properties is closed (``additionalProperties: false``) and requires all of them (an optional
  field stays nullable through its own ``anyOf [..., null]``); an object with no properties
  that says nothing about extra keys is closed too;
* ``"default": null`` on an optional field: dropped (the field is nullable anyway, and the
  model class fills in its default when it validates);
* keywords beside a ``$ref`` (pydantic puts a field's ``description`` there, or wraps the ref
  in a one-item ``allOf``): the definition is inlined in the ref's place, the field's own
  keywords winning over the definition's.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from .._exceptions import InvalidArgumentError

__all__ = ["strict_schema"]

# Keywords whose value is one subschema, a list of them, or a dict of them by name.
_ONE = ("items", "additionalProperties", "not", "contains")
_MANY = ("anyOf", "oneOf", "allOf", "prefixItems")
_BY_NAME = ("properties", "$defs", "definitions", "patternProperties")


def strict_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A strict copy of ``schema`` (which is left as it was)."""
    root = copy.deepcopy(dict(schema))
    return _strict(root, root)


def _strict(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    all_of = node.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict):
        # A one-item allOf is its item: pydantic's way to put keywords beside a $ref.
        node = {**{k: v for k, v in node.items() if k != "allOf"}, **all_of[0]}
    ref = node.get("$ref")
    if isinstance(ref, str) and len(node) > 1:
        inlined = copy.deepcopy(_resolve(root, ref))
        inlined.update((k, v) for k, v in node.items() if k != "$ref")
        return _strict(inlined, root)
    if "default" in node and node["default"] is None:
        del node["default"]
    for key in _BY_NAME:
        children = node.get(key)
        if isinstance(children, dict):
            for name, child in children.items():
                if isinstance(child, dict):
                    children[name] = _strict(child, root)
    for key in _ONE:
        if isinstance(node.get(key), dict):
            node[key] = _strict(node[key], root)
    for key in _MANY:
        if isinstance(node.get(key), list):
            node[key] = [_strict(c, root) if isinstance(c, dict) else c for c in node[key]]
    if node.get("type") == "object":
        properties = node.get("properties")
        if isinstance(properties, dict):
            node["additionalProperties"] = False
            node["required"] = list(properties)
        else:
            node.setdefault("additionalProperties", False)
    return node


def _resolve(root: dict[str, Any], ref: str) -> dict[str, Any]:
    """The definition a local ``$ref`` (``#/$defs/Name``) points to."""
    target: Any = root
    if ref.startswith("#/"):
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, dict) else None
    if not isinstance(target, dict):
        raise InvalidArgumentError("response_format", f"the schema's $ref {ref!r} leads nowhere")
    return target
