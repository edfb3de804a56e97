"""Request and response validation against botocore's service model.

botocore's ``ParamValidator`` checks required members, types, unknown members, tagged
unions and minimums. The service also enforces maximums, patterns and enums, so
:class:`ModelValidator` extends it with exactly those constraints, read from the same
shapes. Patterns follow Smithy semantics (not implicitly anchored); together with the
length limits the model gives they pin identifiers such as ``payment-session-`` + 15.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.model import Shape
from botocore.validate import ParamValidator, ValidationErrors

from spendguard.emulator import _model
from spendguard.emulator._errors import FieldError, validation

if TYPE_CHECKING:  # the stubs omit the private hooks these classes extend

    class _ErrorsBase:
        _errors: list[tuple[str, str, dict[str, Any]]]

        def report(self, name: str, reason: str, **kwargs: Any) -> None: ...
        def _get_name(self, name: str) -> str: ...
        def _format_error(self, error: tuple[str, str, dict[str, Any]]) -> str | None: ...

    class _ValidatorBase:
        VALIDATED_METADATA_ATTRS: set[str]

        def _validate(self, params: Any, shape: Shape, errors: Any, name: str) -> None: ...
        def _validate_string(self, param: Any, shape: Shape, errors: Any, name: str) -> None: ...
        def _validate_integer(self, param: Any, shape: Shape, errors: Any, name: str) -> None: ...
        def _validate_list(self, param: Any, shape: Shape, errors: Any, name: str) -> None: ...

else:
    _ErrorsBase = ValidationErrors
    _ValidatorBase = ParamValidator

_EXTRA = {"too long", "too large", "pattern mismatch", "not in enum", "boolean as number"}


class _Errors(_ErrorsBase):
    """botocore's error collector, also formatting the constraints it does not check."""

    def fields(self) -> list[FieldError]:
        return [self._field(error) for error in self._errors]

    def _field(self, error: tuple[str, str, dict[str, Any]]) -> FieldError:
        reason, name, extra = error
        shown = self._get_name(name)
        if reason in _EXTRA:
            return FieldError(shown, f"{shown}: {extra['detail']}")
        return FieldError(shown, str(self._format_error(error)))


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


class ModelValidator(_ValidatorBase):
    """``ParamValidator`` plus the model's ``max``, ``pattern`` and ``enum`` constraints."""

    VALIDATED_METADATA_ATTRS = _ValidatorBase.VALIDATED_METADATA_ATTRS | {"max", "pattern", "enum"}

    def collect(self, params: object, shape: Shape) -> list[FieldError]:
        """Validate ``params`` against ``shape``; return every violation found."""
        errors = _Errors()
        self._validate(params, shape, errors, "")
        return errors.fields()

    def _validate_string(self, param: Any, shape: Shape, errors: Any, name: str) -> None:
        super()._validate_string(param, shape, errors, name)
        if not isinstance(param, str):
            return
        meta = shape.metadata
        if "max" in meta and len(param) > meta["max"]:
            errors.report(name, "too long", detail=f"length must be at most {meta['max']}")
        if "pattern" in meta and _compiled(meta["pattern"]).search(param) is None:
            errors.report(name, "pattern mismatch", detail=f"must match {meta['pattern']}")
        enum = meta.get("enum")
        if enum and param not in enum:
            errors.report(name, "not in enum", detail=f"must be one of {', '.join(enum)}")

    def _validate_integer(self, param: Any, shape: Shape, errors: Any, name: str) -> None:
        if isinstance(param, bool):
            errors.report(name, "boolean as number", detail="must be an integer, not a boolean")
            return
        super()._validate_integer(param, shape, errors, name)
        maximum = shape.metadata.get("max")
        if isinstance(param, int) and maximum is not None and param > maximum:
            errors.report(name, "too large", detail=f"must be at most {maximum}")

    def _validate_list(self, param: Any, shape: Shape, errors: Any, name: str) -> None:
        super()._validate_list(param, shape, errors, name)
        maximum = shape.metadata.get("max")
        if isinstance(param, list | tuple) and maximum is not None and len(param) > maximum:
            errors.report(name, "too long", detail=f"must have at most {maximum} items")


_VALIDATOR = ModelValidator()


def validate_request(operation: str, params: dict[str, object]) -> None:
    """Raise a ValidationException listing every way ``params`` break the input shape.

    Args:
        operation: Operation name, e.g. ``"ProcessPayment"``.
        params: Header and body members, as botocore's client would have taken them.

    Raises:
        ApiError: ValidationException with one ``fieldList`` entry per violation.
    """
    problems = _VALIDATOR.collect(params, _model.input_shape(operation))
    if problems:
        summary = "; ".join(p.message for p in problems[:5])
        raise validation(f"Invalid request for {operation}: {summary}", fields=problems)


def response_problems(operation: str, response: Mapping[str, object]) -> list[FieldError]:
    """Violations of the output shape in a response parsed by botocore (test helper).

    Args:
        operation: Operation name.
        response: What the boto3 client returned; ``ResponseMetadata`` is ignored.

    Returns:
        Every violation found by botocore's validator and the model's extra constraints.
    """
    body = {k: v for k, v in response.items() if k != "ResponseMetadata"}
    return _VALIDATOR.collect(body, _model.output_shape(operation))
