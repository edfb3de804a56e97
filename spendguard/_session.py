"""Reading the payment session: the boto3 boundary, error translation and strict parsing."""

from __future__ import annotations

import decimal
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

from spendguard._errors import (
    InvalidAmountError,
    MalformedSessionError,
    SessionAccessDeniedError,
    SessionConfigurationError,
    SessionError,
    SessionNotFoundError,
    SessionRequestError,
    SessionUnavailableError,
)
from spendguard._ledger import ServerView
from spendguard._money import CONTEXT, Money

__all__ = ["PaymentSessionClient", "SessionSnapshot", "fetch_session", "parse_session"]

_log = logging.getLogger("spendguard")
#: The ``Date`` header has 1 s resolution; server times within it of each other agree.
DATE_RESOLUTION = 1.0

_UNAVAILABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "InternalServerException",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
# Credentials the service refused: a configuration problem of the caller, not of the session.
_CREDENTIAL_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredTokenException",
        "ExpiredToken",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "MissingAuthenticationTokenException",
    }
)
_ERRORS_BY_CODE: dict[str, type[SessionError]] = {
    "AccessDeniedException": SessionAccessDeniedError,
    "UnauthorizedException": SessionAccessDeniedError,
    "ResourceNotFoundException": SessionNotFoundError,
    "ValidationException": SessionRequestError,
    **dict.fromkeys(_CREDENTIAL_CODES, SessionAccessDeniedError),
    **dict.fromkeys(_UNAVAILABLE_CODES, SessionUnavailableError),
}


class PaymentSessionClient(Protocol):
    """Anything with boto3's ``get_payment_session`` (a ``bedrock-agentcore`` client)."""

    def get_payment_session(
        self,
        *,
        paymentManagerArn: str,  # boto3 parameter names
        paymentSessionId: str,
        userId: str = ...,
        agentName: str = ...,
    ) -> Mapping[str, Any]:
        """Return the GetPaymentSession response."""
        ...  # pragma: no cover


@dataclass(frozen=True, slots=True)
class SessionSnapshot:
    """One parsed GetPaymentSession response: what the guard needs of it, nothing more.

    Attributes:
        max_spend: ``limits.maxSpendAmount``, or None when the service sent no limits.
        view: The available amount, spent total and times, as the ledger sees them (server
            clock, epoch seconds); no ``availableLimits`` means nothing is available.
        expires_at: ``createdAt + expiryTimeInMinutes``, UTC.
        fetched_at: Local wall clock reading (epoch seconds) when the response arrived.
        fetched_mono: Local monotonic clock reading when the response arrived; every
            duration (freshness, expiry) is measured from it, never on the wall clock.
        server_time: The server's time when it answered (epoch seconds): the ``Date`` header,
            or the local wall clock without one; never earlier than the body's own times.
    """

    max_spend: Money | None
    view: ServerView
    expires_at: datetime
    fetched_at: float
    fetched_mono: float
    server_time: float
    #: The monotonic clock reading at which the session expires (derived, kept for the hot
    #: path: every decision compares with it).
    expires_mono: float = field(init=False)

    def __post_init__(self) -> None:
        remaining = self.expires_at.timestamp() - self.server_time
        object.__setattr__(self, "expires_mono", self.fetched_mono + remaining)

    @property
    def last_update(self) -> datetime:
        """When the available amount last changed, per the server."""
        return datetime.fromtimestamp(self.view.updated_at, tz=timezone.utc)

    def server_now(self, mono: float) -> float:
        """The server's time at monotonic reading ``mono``, by the time elapsed since the fetch."""
        return self.server_time + (mono - self.fetched_mono)


def fetch_session(
    connect: Callable[[], PaymentSessionClient],
    request: Mapping[str, str],
    clock: Callable[[], float],
    timer: Callable[[], float],
) -> tuple[Mapping[str, Any], float, float, float | None]:
    """Call GetPaymentSession and translate every failure into a SessionError.

    This is the one boundary with boto3: building the client (``connect``) happens inside it
    too, so a missing region or credentials is a :class:`SessionConfigurationError`, never a
    raw botocore error. botocore parses the response (timestamps included) in a decimal
    context of spendguard's own, so the caller's ``decimal.getcontext()`` has no say.

    Returns:
        The response, the local wall and monotonic times it arrived, and the server ``Date``
        as epoch seconds.

    Raises:
        SessionError: A known failure, translated. Anything else (a bug in a custom client)
            propagates unchanged.
    """
    session_id = request.get("paymentSessionId")
    try:
        with decimal.localcontext(decimal.Context()):
            response = connect().get_payment_session(**request)
    except Exception as exc:
        error = _translate(exc, session_id)
        if error is None:
            raise
        raise error from exc
    return response, clock(), timer(), _server_date(response)


def _translate(exc: Exception, session_id: str | None) -> SessionError | None:
    from botocore import exceptions as bx  # noqa: PLC0415 - only once something failed

    if isinstance(exc, bx.ClientError):
        code = exc.response.get("Error", {}).get("Code")
        kind = _ERRORS_BY_CODE.get(code, SessionError) if isinstance(code, str) else SessionError
        return kind(f"GetPaymentSession failed with {code}: {exc}", session_id=session_id)
    table: tuple[tuple[tuple[type[Exception], ...], type[SessionError], str], ...] = (
        (
            (
                bx.NoRegionError,
                bx.InvalidRegionError,
                bx.NoCredentialsError,
                bx.PartialCredentialsError,
                bx.CredentialRetrievalError,
                bx.ProfileNotFound,
                bx.EndpointConnectionError,
                bx.InvalidEndpointConfigurationError,
                bx.SSOError,
            ),
            SessionConfigurationError,
            "the AWS client is not configured",
        ),
        ((bx.ParamValidationError,), SessionRequestError, "invalid GetPaymentSession request"),
        (
            (bx.ConnectionError, bx.HTTPClientError, TimeoutError, ConnectionError),
            SessionUnavailableError,
            "GetPaymentSession could not be completed",
        ),
    )
    for types, kind, what in table:
        if isinstance(exc, types):
            return kind(f"{what}: {type(exc).__name__}: {exc}", session_id=session_id)
    return None


def _server_date(response: Mapping[str, Any]) -> float | None:
    meta = response.get("ResponseMetadata")
    headers = meta.get("HTTPHeaders") if isinstance(meta, Mapping) else None
    date = headers.get("date") if isinstance(headers, Mapping) else None
    if not isinstance(date, str):
        return None
    try:
        return parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def _field(body: Mapping[str, Any], path: str, session_id: str | None) -> Any:
    node: Any = body
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise MalformedSessionError("missing", field=path, session_id=session_id)
        node = node[part]
    return node


def _optional(body: Mapping[str, Any], path: str, session_id: str | None) -> Any:
    head, _, rest = path.partition(".")
    if head not in body or body[head] is None:
        return None
    return _field(body, path, session_id) if rest else body[head]


def _money(value: Any, path: str, currency: str, session_id: str | None) -> Money:
    if not isinstance(value, Mapping):
        raise MalformedSessionError("not an object", field=path, session_id=session_id)
    amount = _field(value, "value", session_id)
    found = _field(value, "currency", session_id)
    if found != currency:
        raise MalformedSessionError(
            f"currency {found!r} is not the guard's {currency}; amounts are never converted",
            field=f"{path}.currency",
            session_id=session_id,
        )
    if not isinstance(amount, str):
        raise MalformedSessionError(
            f"value must be a decimal string, got {amount!r}",
            field=f"{path}.value",
            session_id=session_id,
        )
    try:
        return Money.of(amount, currency)
    except InvalidAmountError as exc:
        raise MalformedSessionError(str(exc), field=f"{path}.value", session_id=session_id) from exc


def _time(value: Any, path: str, session_id: str | None) -> datetime:
    if not isinstance(value, datetime):
        raise MalformedSessionError(
            f"not a timestamp: {value!r}", field=path, session_id=session_id
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise MalformedSessionError("timestamp has no time zone", field=path, session_id=session_id)
    return value.astimezone(timezone.utc)


def parse_session(
    response: Mapping[str, Any],
    *,
    session_id: str,
    currency: str,
    fetched_at: float,
    server_date: float | None,
    fetched_mono: float = 0.0,
    skew_tolerance: float = 2.0,
) -> SessionSnapshot:
    """Parse a GetPaymentSession response strictly; any doubt raises MalformedSessionError.

    Absences, chosen to fail closed: no ``availableLimits.availableSpendAmount`` means nothing
    is available (every charge blocks); no ``limits`` means the maximum is unknown, so the
    server's spent total is unknown and locally committed session charges are never dropped.

    Times: a ``Date`` header earlier than the body's own ``createdAt`` / ``updatedAt`` by more
    than its 1 s resolution plus ``skew_tolerance`` cannot be right; the server's time is then
    taken as the latest body time (the safe side: the session is older, its expiry nearer)
    and the reading may not overrule others by its ``Date``.
    """
    body = _field(response, "paymentSession", session_id)
    if not isinstance(body, Mapping):
        raise MalformedSessionError("not an object", field="paymentSession", session_id=session_id)
    found_id = _field(body, "paymentSessionId", session_id)
    if found_id != session_id:
        raise MalformedSessionError(
            f"expected {session_id!r}, got {found_id!r}",
            field="paymentSessionId",
            session_id=session_id,
        )
    minutes = _minutes(_field(body, "expiryTimeInMinutes", session_id), session_id)
    created = _time(_field(body, "createdAt", session_id), "createdAt", session_id)
    updated = _time(_field(body, "updatedAt", session_id), "updatedAt", session_id)
    limit = _optional(body, "limits.maxSpendAmount", session_id)
    max_spend = (
        None if limit is None else _money(limit, "limits.maxSpendAmount", currency, session_id)
    )
    available, available_updated = _available(body, currency, max_spend, session_id)
    spent = None if max_spend is None else CONTEXT.subtract(max_spend.amount, available.amount)
    last_update = (available_updated or updated).timestamp()
    server_time, read_at = _server_time(
        server_date,
        fetched_at,
        max(created.timestamp(), updated.timestamp(), last_update),
        skew_tolerance,
        session_id,
    )
    return SessionSnapshot(
        max_spend=max_spend,
        view=ServerView(available.amount, spent, last_update, read_at),
        expires_at=created + timedelta(minutes=minutes),
        fetched_at=fetched_at,
        fetched_mono=fetched_mono,
        server_time=server_time,
    )


def _minutes(value: Any, session_id: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10**6:
        raise MalformedSessionError(
            f"must be a non-negative integer, got {value!r}",
            field="expiryTimeInMinutes",
            session_id=session_id,
        )
    return value


def _available(
    body: Mapping[str, Any], currency: str, max_spend: Money | None, session_id: str
) -> tuple[Money, datetime | None]:
    """``availableLimits``: the amount (zero when absent: fail closed) and its update time."""
    raw = _optional(body, "availableLimits", session_id)
    if raw is None:
        return Money.zero(currency), None
    if not isinstance(raw, Mapping):
        raise MalformedSessionError("not an object", field="availableLimits", session_id=session_id)
    amount = raw.get("availableSpendAmount")
    field = "availableLimits.availableSpendAmount"
    available = (
        Money.zero(currency) if amount is None else _money(amount, field, currency, session_id)
    )
    if max_spend is not None and available > max_spend:
        raise MalformedSessionError(
            f"available {available} exceeds the limit {max_spend}",
            field=field,
            session_id=session_id,
        )
    stamp = raw.get("updatedAt")
    return available, None if stamp is None else _time(
        stamp, "availableLimits.updatedAt", session_id
    )


def _server_time(
    server_date: float | None,
    fetched_at: float,
    latest_body_time: float,
    skew_tolerance: float,
    session_id: str,
) -> tuple[float, float | None]:
    """The server's time at the reading, and the latest server time it may have been taken."""
    if server_date is None:
        return max(fetched_at, latest_body_time), None
    if server_date + DATE_RESOLUTION + skew_tolerance < latest_body_time:
        _log.warning(
            "payment session %s: the Date header (%s) is earlier than the session's own "
            "times (%s); using the latter",
            session_id,
            _iso(server_date),
            _iso(latest_body_time),
        )
        return latest_body_time, None
    return max(server_date, latest_body_time), server_date + DATE_RESOLUTION + skew_tolerance


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat()
