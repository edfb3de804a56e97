"""Errors the emulator answers with, shaped the way botocore parses REST-JSON errors.

Every failure inside a handler is an :class:`ApiError`; the server turns it into a
response with the ``X-Amzn-ErrorType`` header and a JSON body, which botocore reads
into ``ClientError.response["Error"]["Code"]`` and ``ResponseMetadata.HTTPStatusCode``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from spendguard.emulator._model import error_status


@dataclass(frozen=True, slots=True)
class FieldError:
    """One entry of a ValidationException ``fieldList``."""

    name: str
    message: str


@dataclass(slots=True)
class ApiError(Exception):
    """An error response: code (the exception shape name), HTTP status and message."""

    code: str
    message: str
    status: int
    reason: str | None = None
    fields: Sequence[FieldError] = field(default_factory=tuple)
    close_connection: bool = False

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def body(self) -> dict[str, object]:
        """The JSON body botocore parses into ``Error`` (message, reason, fieldList)."""
        out: dict[str, object] = {"message": self.message}
        if self.code == "ValidationException":
            out["reason"] = self.reason or "FieldValidationFailed"
            out["fieldList"] = [{"name": f.name, "message": f.message} for f in self.fields]
        return out


def modeled(code: str, message: str) -> ApiError:
    """An error whose HTTP status comes from botocore's model (e.g. ThrottlingException)."""
    return ApiError(code, message, error_status(code))


def validation(
    message: str, *, reason: str = "FieldValidationFailed", fields: Sequence[FieldError] = ()
) -> ApiError:
    """A ValidationException (HTTP 400)."""
    return ApiError("ValidationException", message, 400, reason=reason, fields=tuple(fields))


def not_found(message: str) -> ApiError:
    """A ResourceNotFoundException (HTTP 404)."""
    return ApiError("ResourceNotFoundException", message, 404)


def access_denied(message: str) -> ApiError:
    """An AccessDeniedException (HTTP 403)."""
    return ApiError("AccessDeniedException", message, 403)


def serialization(message: str) -> ApiError:
    """A SerializationException (HTTP 400): the body is not the JSON object expected."""
    return ApiError("SerializationException", message, 400)


def unknown_operation(method: str, path: str) -> ApiError:
    """An UnknownOperationException (HTTP 404) for a method/path the service lacks."""
    return ApiError("UnknownOperationException", f"No operation matches {method} {path}", 404)
