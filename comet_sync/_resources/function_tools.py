"""Strict function tools for ``chat.completions.parse``: declared from a pydantic model, and the
arguments of each call the model makes parsed back.

``parse(tools=[...])`` takes tools built by :func:`pydantic_function_tool` (ours, or
openai-python's of the same name: both are a dict whose ``function`` carries the model class)
and plain dict tools marked ``"strict": True``. A call to a pydantic tool comes back with
``tool_call.function.parsed_arguments`` validated into the model; a call to a strict dict tool
with its arguments decoded from JSON. Only strict function tools can be parsed, so any other
tool is refused before anything is sent, as openai-python refuses it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Callable

from .._exceptions import InvalidArgumentError
from .._params import is_not_given
from .strict_schema import strict_schema

__all__ = ["PydanticFunction", "argument_parsers", "pydantic_function_tool"]

# A tool's name to what turns a call's ``arguments`` (JSON text) into ``parsed_arguments``.
ArgumentParsers = dict[str, Callable[[str], object]]


class PydanticFunction(dict):  # type: ignore[type-arg]
    """A tool's ``function`` definition (a plain dict on the wire) that remembers the model class
    its schema came from, so that the model's calls can be validated back into it."""

    def __init__(self, definition: Mapping[str, Any], model: type[Any]) -> None:
        super().__init__(definition)
        self.model = model


def pydantic_function_tool(
    model: type[Any], *, name: str | None = None, description: str | None = None
) -> dict[str, Any]:
    """A strict function tool whose parameters are ``model``'s schema (a pydantic v2 class), as
    openai-python's ``pydantic_function_tool`` builds it: the name defaults to the class's, the
    description to its docstring. ``parse(tools=[...])`` then gives each call's arguments as an
    instance of ``model`` (``tool_call.function.parsed_arguments``).

    >>> class GetWeather(BaseModel):
    ...     city: str
    >>> client.chat.completions.parse(model="gpt-4o-mini", messages=msgs,
    ...                               tools=[pydantic_function_tool(GetWeather)])
    """
    schema_of = getattr(model, "model_json_schema", None)
    if not isinstance(model, type) or schema_of is None:
        raise InvalidArgumentError("model", "expected a pydantic (v2) model class")
    definition: dict[str, Any] = {
        "name": name or model.__name__,
        "strict": True,
        "parameters": strict_schema(schema_of()),
    }
    doc = description if description is not None else model.__doc__
    if doc is not None:
        definition["description"] = doc
    return {"type": "function", "function": PydanticFunction(definition, model)}


def argument_parsers(tools: object) -> tuple[list[Any] | None, ArgumentParsers]:
    """``parse()``'s ``tools``, checked before anything is sent: the list to send (an iterable
    is read once, here) and a parser for each tool's calls. Refuses, naming the tool, any tool
    that is not a strict function tool, since its calls could not be parsed."""
    if tools is None or is_not_given(tools):
        return None, {}
    if isinstance(tools, (str, bytes, Mapping)) or not isinstance(tools, Iterable):
        raise InvalidArgumentError("tools", "expected a list of tools")
    listed = list(tools)
    parsers: ArgumentParsers = {}
    for i, tool in enumerate(listed):
        where = f"tools[{i}]"
        if not isinstance(tool, Mapping) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, Mapping) else type(tool).__name__
            raise InvalidArgumentError(
                where, f"parse() can only parse function tools, got {kind!r}; use create()"
            )
        function = tool.get("function")
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise InvalidArgumentError(f"{where}.function", "expected a dict with a 'name'")
        if function.get("strict") is not True:
            raise InvalidArgumentError(
                f"{where}.function.strict",
                f"{function['name']!r} is not strict: parse() parses only strict function tools "
                "(pydantic_function_tool(Model), or 'strict': True); use create() for others",
            )
        parsers[function["name"]] = _parser_for(function)
    return listed, parsers


def _parser_for(function: Mapping[str, Any]) -> Callable[[str], object]:
    model = getattr(function, "model", None)
    validate = getattr(model, "model_validate_json", None)
    if isinstance(model, type) and callable(validate):
        # pydantic's ValidationError, as openai-python raises it, when the arguments do not fit.
        return validate  # type: ignore[no-any-return]
    return json.loads
