"""Request and response validation: a walker over botocore's service model.

The service enforces every constraint its model states: required members, member types,
``min``/``max`` (lengths of strings, lists and maps; values of numbers), ``pattern``,
``enum``, and exactly one member of a union. botocore's client-side validation skips
maximums, patterns and enums, so the emulator walks the shapes itself, through their
public attributes only (``type_name``, ``metadata``, ``members``, ``required_members``,
``member``, ``key``/``value``, ``enum``), which every botocore with this service has.
Patterns follow Smithy semantics (not implicitly anchored); together with the length
limits the model gives they pin identifiers such as ``payment-session-`` + 15.
"""

from __future__ import annotations

import decimal
import functools
import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime

from botocore.model import ListShape, MapShape, Shape, StringShape, StructureShape
from botocore.utils import parse_to_aware_datetime

from spendguard.emulator import _model
from spendguard.emulator._errors import FieldError, validation

_Problems = list[FieldError]

#: Python types a value of each model type may have (booleans are never numbers).
_TYPES: dict[str, tuple[type, ...]] = {
    "structure": (dict,),
    "map": (dict,),
    "list": (list, tuple),
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "long": (int,),
    "float": (int, float, decimal.Decimal),
    "double": (int, float, decimal.Decimal),
    "blob": (str, bytes, bytearray),
    "timestamp": (datetime, str, int, float),
}
_NUMBERS = frozenset({"integer", "long", "float", "double"})
_JSON_SCALARS = (str, int, float, bool, type(None))

#: Deepest JSON accepted. json.loads gives up near 1,000 levels on Python < 3.13 and near
#: 10,000 on 3.13, so a fixed limit below both makes every version answer alike.
MAX_JSON_DEPTH = 512


def load_json(text: str | bytes, parse_constant: Callable[[str], object] | None = None) -> object:
    """``json.loads`` that refuses JSON nested deeper than :data:`MAX_JSON_DEPTH`.

    Raises:
        ValueError: ``text`` is not JSON.
        RecursionError: It nests too deeply, as json itself raises past its own limit.
    """
    value = json.loads(text, parse_constant=parse_constant)
    if _too_deep(value):
        raise RecursionError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def _too_deep(value: object) -> bool:
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            if depth > MAX_JSON_DEPTH:
                return True
            pending.extend((child, depth + 1) for child in item)
    return False


def collect(value: object, shape: Shape) -> list[FieldError]:
    """Every way ``value`` breaks ``shape`` and the shapes it contains, outermost first."""
    problems: _Problems = []
    _visit(value, shape, "", problems)
    return problems


def _problem(out: _Problems, path: str, detail: str) -> None:
    shown = path or "input"
    out.append(FieldError(shown, f"{shown}: {detail}"))


def _visit(value: object, shape: Shape, path: str, out: _Problems) -> None:
    if shape.metadata.get("document"):
        if not _is_document(value):
            _problem(out, path, "must be a JSON document")
        return
    if not _has_type(value, shape.type_name):
        _problem(out, path, f"must be of type {shape.type_name}, not {type(value).__name__}")
        return
    _bounds(value, shape, path, out)
    if isinstance(shape, StringShape) and isinstance(value, str):
        _string(value, shape, path, out)
    _members(value, shape, path, out)


def _members(value: object, shape: Shape, path: str, out: _Problems) -> None:
    if isinstance(shape, StructureShape) and isinstance(value, dict):
        _structure(value, shape, path, out)
    elif isinstance(shape, ListShape) and isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _visit(item, shape.member, f"{path}[{index}]", out)
    elif isinstance(shape, MapShape) and isinstance(value, dict):
        for key, item in value.items():
            _visit(key, shape.key, f"{path} (key {key!r})", out)
            _visit(item, shape.value, f"{path}.{key}", out)


def _has_type(value: object, type_name: str) -> bool:
    if isinstance(value, bool) and type_name != "boolean":
        return False
    if not isinstance(value, _TYPES.get(type_name, (object,))):
        return False
    return type_name != "timestamp" or not isinstance(value, str) or _parses_as_time(value)


def _parses_as_time(text: str) -> bool:
    try:
        parse_to_aware_datetime(text)
    except (ValueError, OverflowError):
        return False
    return True


def _is_document(value: object) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_document(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_is_document(item) for item in value)
    return isinstance(value, _JSON_SCALARS)


def _bounds(value: object, shape: Shape, path: str, out: _Problems) -> None:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    measured = _measure(value, shape.type_name)
    if measured is None or (low is None and high is None):
        return
    size, what = measured
    if low is not None and size < low:
        _problem(out, path, f"{what} must be at least {low}")
    if high is not None and size > high:
        _problem(out, path, f"{what} must be at most {high}")


def _measure(value: object, type_name: str) -> tuple[int | float | decimal.Decimal, str] | None:
    if type_name in _NUMBERS and isinstance(value, int | float | decimal.Decimal):
        return value, "value"
    if isinstance(value, str | bytes | bytearray | list | tuple | dict):
        return len(value), "length"
    return None


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _string(value: str, shape: StringShape, path: str, out: _Problems) -> None:
    pattern = shape.metadata.get("pattern")
    if pattern is not None and _compiled(pattern).search(value) is None:
        _problem(out, path, f"must match the pattern {pattern}")
    if shape.enum and value not in shape.enum:
        _problem(out, path, f"must be one of {', '.join(shape.enum)}")


def _structure(
    value: dict[object, object], shape: StructureShape, path: str, out: _Problems
) -> None:
    prefix = f"{path}." if path else ""
    for name in shape.required_members:
        if name not in value:
            _problem(out, f"{prefix}{name}", "is required")
    if shape.metadata.get("union") and len(value) != 1:
        _problem(out, path, f"must set exactly one of {', '.join(shape.members)}")
    for key, member in value.items():
        if isinstance(key, str) and key in shape.members:
            _visit(member, shape.members[key], f"{prefix}{key}", out)
        else:
            _problem(out, f"{prefix}{key}", f"is not a member of {shape.name}")


def validate_request(operation: str, params: dict[str, object]) -> None:
    """Raise a ValidationException listing every way ``params`` break the input shape.

    Args:
        operation: Operation name, e.g. ``"ProcessPayment"``.
        params: Header and body members, as botocore's client would have taken them.

    Raises:
        ApiError: ValidationException with one ``fieldList`` entry per violation.
    """
    problems = collect(params, _model.input_shape(operation))
    if problems:
        summary = "; ".join(p.message for p in problems[:5])
        raise validation(f"Invalid request for {operation}: {summary}", fields=problems)


def response_problems(operation: str, response: Mapping[str, object]) -> list[FieldError]:
    """Violations of the output shape in a response parsed by botocore (test helper).

    Args:
        operation: Operation name.
        response: What the boto3 client returned; ``ResponseMetadata`` is ignored.

    Returns:
        Every violation of the model's constraints, each with the member's path.
    """
    body = {k: v for k, v in response.items() if k != "ResponseMetadata"}
    return collect(body, _model.output_shape(operation))
