"""The spec at /admin/openapi.json: quart-schema's generator, with what it misses filled in.

quart-schema 0.25, for msgspec Structs:
- puts only the top-level Struct of each body or answer in `components`; the Structs nested in it
  are referenced but absent, so a client generator or a fuzzer cannot resolve them. Here every
  route's whole tree of Structs is added, and a body or answer refers to its Struct by name (so
  generated clients get one named type per Struct), described by its cleaned-up docstring.
- turns `/services/<name>/<any(start, stop, restart):action>` into `/services/{action}` (its path
  pattern lets the first converter's `[^:]*` run across `>`). Here each `<…>` is matched on its own.
- knows only `application/json` answers. `streams` documents a route's other answer, such as the
  NDJSON of `logs?follow=1`, as a second media type of its 200.
- documents a route's request body for each of its methods; a GET or DELETE here reads none.
  And it leaves the body optional, but every route here that reads one needs it (if only `{}`).
- says of a path parameter only what its converter says; `path_parameters` gives the rest (a pattern).
  And a rule's methods and an `any(...)` converter's choices come in a set's order: sorted here, so
  the spec is the same text from one process to the next.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
from msgspec.json import schema_components
from quart_schema.openapi import OpenAPIProvider
from quart_schema.validation import (
    QUART_SCHEMA_HEADERS_ATTRIBUTE,
    QUART_SCHEMA_QUERYSTRING_ATTRIBUTE,
    QUART_SCHEMA_REQUEST_ATTRIBUTE,
    QUART_SCHEMA_RESPONSE_ATTRIBUTE,
)
from werkzeug.routing.rules import Rule

F = TypeVar("F", bound=Callable[..., Any])

REF_TEMPLATE = "#/components/schemas/{name}"  # quart-schema's, for msgspec
_STREAM_ATTRIBUTE = "_dancodes_stream"
_PATH_ATTRIBUTE = "_dancodes_path_parameters"
_BODYLESS = {"get", "delete"}
_PARAMETER = re.compile(r"<(?:[^:<>]*:)?([^<>]+)>")


def streams(media_type: str, item: type[msgspec.Struct], description: str) -> Callable[[F], F]:
    """Document that the route's 200 may also be a stream of `item`s as `media_type`."""

    def decorate(func: F) -> F:
        setattr(func, _STREAM_ATTRIBUTE, (media_type, item, description))
        return func

    return decorate


def path_parameters(**schemas: dict[str, Any]) -> Callable[[F], F]:
    """Document the JSON Schema of the route's path parameters by name."""

    def decorate(func: F) -> F:
        setattr(func, _PATH_ATTRIBUTE, schemas)
        return func

    return decorate


class OpenAPI(OpenAPIProvider):
    def build_paths(self, rule: Rule) -> tuple[dict[str, Any], dict[str, Any]]:
        paths, components = super().build_paths(rule)
        (operations,) = paths.values()  # one path per rule; each method's operation is its own dict
        func = self._app.view_functions[rule.endpoint]
        models = _models(func)
        declared = getattr(func, _PATH_ATTRIBUTE, {})
        stream = getattr(func, _STREAM_ATTRIBUTE, None)
        for method, operation in operations.items():
            if method in _BODYLESS:
                operation.pop("requestBody", None)
            elif "requestBody" in operation:
                operation["requestBody"] = {**operation["requestBody"], "required": True}
            operation["parameters"] = [
                {**p, "schema": declared[p["name"]]}
                if p["in"] == "path" and p["name"] in declared
                else _sorted(p)
                for p in operation["parameters"]
            ]
            if stream is not None:
                _add_stream(operation, *stream)
        if stream is not None:
            models.append(stream[1])
        _, named = schema_components(models, ref_template=REF_TEMPLATE)
        for schema in named.values():
            if "description" in schema:
                schema["description"] = inspect.cleandoc(schema["description"])
        for operation in operations.values():
            _refer_by_name(operation, named)
            operation["responses"] = dict(sorted(operation["responses"].items(), key=lambda r: str(r[0])))
        # a rule's methods are a set: in a fixed order, the spec (and the types made from it) is stable
        ordered = dict(sorted(operations.items()))
        return {_PARAMETER.sub(r"{\1}", rule.rule): ordered}, {**components, **named}


def _sorted(parameter: dict[str, Any]) -> dict[str, Any]:
    """The parameter with its `enum` sorted: an `any(...)` converter keeps its choices in a set, whose
    order changes from one process to the next, and the web app's types are generated from this."""
    schema = parameter.get("schema", {})
    if "enum" not in schema:
        return parameter
    return {**parameter, "schema": {**schema, "enum": sorted(schema["enum"])}}


def _add_stream(
    operation: dict[str, Any], media_type: str, item: type[msgspec.Struct], description: str
) -> None:
    (ref,), _ = schema_components([item], ref_template=REF_TEMPLATE)
    # the responses are shared by the rule's methods: setting the same entry again changes nothing
    answer = operation["responses"].setdefault(200, {"description": "", "content": {}})
    answer["content"][media_type] = {"schema": {**ref, "description": description}}


def _refer_by_name(operation: dict[str, Any], named: dict[str, Any]) -> None:
    """Replace each inlined body or answer schema by a reference to its component."""
    bodies = [operation.get("requestBody", {}), *operation["responses"].values()]
    for body in bodies:
        for media in body.get("content", {}).values():
            name = media.get("schema", {}).get("title")
            if name in named:
                media["schema"] = {"$ref": REF_TEMPLATE.format(name=name)}


def _models(func: Callable[..., Any]) -> list[type[msgspec.Struct]]:
    """The Structs a route declares: its body, query string, headers and answers."""
    found: list[Any] = [
        getattr(func, QUART_SCHEMA_QUERYSTRING_ATTRIBUTE, None),
        getattr(func, QUART_SCHEMA_HEADERS_ATTRIBUTE, None),
        (getattr(func, QUART_SCHEMA_REQUEST_ATTRIBUTE, None) or (None,))[0],
    ]
    for model, headers in getattr(func, QUART_SCHEMA_RESPONSE_ATTRIBUTE, {}).values():
        found += [model, headers]
    return [m for m in found if inspect.isclass(m) and issubclass(m, msgspec.Struct)]
