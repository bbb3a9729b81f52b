"""Dumping a response object as pydantic dumps openai-python's: ``model_dump``'s options.

A response object is a view over the JSON the server sent (``_types``). openai-python's
objects are pydantic models, and code written for them passes ``exclude_none=True``,
``exclude_unset=True``, ``include=``/``exclude=`` and expects what pydantic gives; an option
taken and ignored would hand back a different dict without a word. So each option is
honoured here, by the same rules, over the JSON and the fields each class declares:

- *declared* fields (a class's ``_known``, openai's own list) the server left out are dumped
  as None, as pydantic dumps an unset optional field, unless ``exclude_unset``; *set* fields
  are the ones the server sent (``model_fields_set``); fields no class declares (a
  provider's extras) are dumped as sent, never filled, never looked into;
- ``exclude_none`` drops None values of fields, at every level of declared objects;
- ``exclude_defaults`` drops declared fields whose value is their default: None, for a field
  openai declares optional (required ones have no default and stay);
- ``include`` / ``exclude``: a set of keys, or a mapping of key to True (the whole value) or
  to a nested set or mapping; list positions by index or ``"__all__"``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    from ._types import APIObject

__all__ = ["DumpOptions", "IncEx", "dump_object"]

# pydantic's IncEx: which keys (or list positions) to keep or leave out, nested at will.
IncEx = Union[AbstractSet[Union[int, str]], Mapping[Union[int, str], Any]]

_MODES = ("python", "json")


@dataclass(frozen=True)
class DumpOptions:
    exclude_unset: bool = False
    exclude_defaults: bool = False
    exclude_none: bool = False

    @classmethod
    def checked(
        cls, mode: str, *, exclude_unset: bool, exclude_defaults: bool, exclude_none: bool
    ) -> DumpOptions:
        # JSON objects dump the same in both modes; any other mode is a mistake, not a no-op.
        if mode not in _MODES:
            raise ValueError(f"mode must be 'python' or 'json', got {mode!r}")
        return cls(exclude_unset, exclude_defaults, exclude_none)

    @property
    def as_sent(self) -> bool:
        """Whether the dump is the JSON as the server sent it (a deep copy does it)."""
        return self.exclude_unset and not self.exclude_defaults and not self.exclude_none


def dump_object(
    data: Mapping[str, Any],
    cls: type[APIObject],
    options: DumpOptions,
    include: IncEx | None = None,
    exclude: IncEx | None = None,
) -> dict[str, Any]:
    """``data`` (one JSON object, of class ``cls``) dumped by ``options``."""
    if options.as_sent and include is None and exclude is None:
        return copy.deepcopy(dict(data))
    known = cls._known
    keys = list(data)
    if not options.exclude_unset:
        keys += sorted(name for name in known if name not in data)
    out: dict[str, Any] = {}
    for key in keys:
        if not _selected(key, include, exclude):
            continue
        value = data.get(key)
        declared = key in known
        if value is None:
            if options.exclude_none:
                continue
            if options.exclude_defaults and declared and key not in cls._required:
                continue
        if declared:
            value = _dump_value(
                value,
                cls._nested.get(key, _generic()),
                options,
                _below(include, key),
                _below(exclude, key),
            )
        else:
            value = copy.deepcopy(value)  # an extra: as sent
        out[key] = value
    return out


def _dump_value(
    value: Any,
    cls: type[APIObject],
    options: DumpOptions,
    include: IncEx | None,
    exclude: IncEx | None,
) -> Any:
    if isinstance(value, dict):
        return dump_object(value, cls, options, include, exclude)
    if isinstance(value, list):
        return [
            _dump_value(item, cls, options, _below(include, i), _below(exclude, i))
            for i, item in enumerate(value)
            if _selected(i, include, exclude)
        ]
    return value


def _selected(key: int | str, include: IncEx | None, exclude: IncEx | None) -> bool:
    """Whether ``key`` is dumped: named (or ``"__all__"``) by ``include`` if given, and not
    excluded whole by ``exclude`` (a nested spec under it excludes only part of it)."""
    if exclude is not None:
        if isinstance(exclude, Mapping):
            if exclude.get(key) is True or exclude.get(key) is ...:
                return False
            if exclude.get("__all__") is True:
                return False
        elif key in exclude:
            return False
    if include is not None:
        if isinstance(include, Mapping):
            return (key in include and include[key] is not False) or "__all__" in include
        return key in include
    return True


def _below(spec: IncEx | None, key: int | str) -> IncEx | None:
    """The part of an include or exclude spec that applies inside ``key``'s value."""
    if not isinstance(spec, Mapping):
        return None
    nested = spec.get(key, spec.get("__all__"))
    if isinstance(nested, (AbstractSet, Mapping)):
        return nested
    return None


def _generic() -> type[APIObject]:
    from ._types import APIObject  # (a cycle at import time: _types imports this module)

    return APIObject
