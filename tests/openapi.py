"""Check a JSON value against a definition of Koyeb's OpenAPI document (the subset in
`koyeb_openapi_subset.json`).

Swagger 2.0 definitions are JSON Schema draft 4 with keywords of their own; this checks the ones
the subset uses: `$ref`, `type`, `format`, `enum`, `properties`, `additionalProperties`, `items`.
One rule is stricter than JSON Schema: an object holds only the properties its definition declares
(unless it has `additionalProperties`). The API is grpc-gateway writing protobuf messages, which
have no other fields, so a key next to the documented ones is a reply Koyeb never sends.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

SUBSET = json.loads(Path(__file__).with_name("koyeb_openapi_subset.json").read_text())
DEFINITIONS: dict[str, Any] = SUBSET["definitions"]

_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)")
_TYPES: dict[str, Callable[[object], bool]] = {
    "object": lambda value: isinstance(value, dict),
    "array": lambda value: isinstance(value, list),
    "string": lambda value: isinstance(value, str),
    "boolean": lambda value: isinstance(value, bool),
    "integer": lambda value: isinstance(value, int) and not isinstance(value, bool),
    "number": lambda value: isinstance(value, (int, float)) and not isinstance(value, bool),
}
_FORMATS: dict[str, Callable[[Any], bool]] = {
    "date-time": lambda value: bool(_RFC3339.fullmatch(value)),
    "int32": lambda value: -(2**31) <= value < 2**31,
    # int64 and uint64 may come as strings too (protobuf's JSON for 64-bit integers).
    "int64": lambda value: -(2**63) <= int(value) < 2**63 if str(value).lstrip("-").isdigit() else False,
    "uint64": lambda value: str(value).isdigit() and int(value) < 2**64,
}


def problems(value: object, definition: str) -> list[str]:
    """What makes `value` something other than a `definition`, as `$.path: reason` lines; [] if nothing."""
    if definition not in DEFINITIONS:
        raise KeyError(f"{definition} is not in the subset")
    return list(_check(value, {"$ref": f"#/definitions/{definition}"}, "$"))


def _check(value: object, schema: dict[str, Any], where: str) -> Iterator[str]:
    if "$ref" in schema:
        yield from _check(value, DEFINITIONS[schema["$ref"].removeprefix("#/definitions/")], where)
        return
    kind = schema.get("type")
    if kind is not None and not _TYPES[kind](value):
        yield f"{where}: {value!r} is not of type {kind}"
        return
    if "enum" in schema and value not in schema["enum"]:
        yield f"{where}: {value!r} is not one of {schema['enum']}"
    if (check := _FORMATS.get(schema.get("format", ""))) is not None and not check(value):
        yield f"{where}: {value!r} is not in format {schema['format']}"
    if isinstance(value, dict) and kind == "object":
        declared, others = schema.get("properties", {}), schema.get("additionalProperties")
        for key, item in value.items():
            if key in declared:
                yield from _check(item, declared[key], f"{where}.{key}")
            elif others is not None:
                yield from _check(item, others, f"{where}.{key}")
            else:
                yield f"{where}: {key!r} is not a property of this definition"
    if isinstance(value, list) and kind == "array":
        for index, item in enumerate(value):
            yield from _check(item, schema["items"], f"{where}[{index}]")
