"""From raw request (operation, headers, body bytes) to response, without any sockets.

This is the REST-JSON protocol layer: content type and JSON checks, header-bound
members, model validation, the caller's identity, dispatch, and response rendering.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import formatdate
from typing import Literal

from spendguard.emulator import _model
from spendguard.emulator._errors import ApiError, FieldError, serialization, validation
from spendguard.emulator._faults import Faults
from spendguard.emulator._handlers import HANDLERS, Call, Env
from spendguard.emulator._state import Instant, Store
from spendguard.emulator._validation import load_json, validate_request

TimestampFormat = Literal["iso8601", "epoch"]
logger = logging.getLogger("spendguard.emulator")
#: How long a clientToken's reply is replayed, in seconds of the emulator's clock.
REPLY_WINDOW = 3600.0
#: Most clientToken replies kept; past it the oldest are forgotten.
MAX_REPLIES = 10_000


@dataclass(frozen=True, slots=True)
class Response:
    """A complete HTTP response."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    close: bool = False


@dataclass(slots=True)
class ReplyWindow:
    """Bounds the store's idempotency replies: ``window`` seconds and ``limit`` entries.

    The store keeps a reply per clientToken for ever; this notes when each was stored (by
    the emulator's clock) and forgets the oldest, under the store's lock. A token used again
    after its reply was forgotten is a new request.
    """

    window: float = REPLY_WINDOW
    limit: int = MAX_REPLIES
    _stored: OrderedDict[tuple[str, str, str], float] = field(default_factory=OrderedDict)

    def expire(self, store: Store, now: float) -> None:
        """Forget replies older than the window, and the oldest past the limit."""
        with store.lock:
            while self._stored:
                key, stored_at = next(iter(self._stored.items()))
                if stored_at > now - self.window and len(self._stored) <= self.limit:
                    return
                del self._stored[key]
                store.replies.pop(key, None)

    def note(self, store: Store, key: tuple[str, str, str], now: float) -> None:
        """Remember when the reply for ``key`` was stored (a replay keeps the first time)."""
        with store.lock:
            if key in store.replies and key not in self._stored:
                self._stored[key] = now
        self.expire(store, now)


@dataclass(slots=True)
class App:
    """The emulated service: state, faults, the clock and the wire format."""

    clock: Callable[[], float]
    timestamp_format: TimestampFormat = "iso8601"
    max_body: int = 1024 * 1024
    env: Env = field(default_factory=lambda: Env(Store()))
    faults: Faults = field(default_factory=Faults)
    stopping: threading.Event = field(default_factory=threading.Event)
    replies: ReplyWindow = field(default_factory=ReplyWindow)

    def http_date(self) -> str:
        """The ``Date`` header value, from the emulator's clock (so skew can be simulated)."""
        return formatdate(self.clock(), usegmt=True)

    def dispatch(self, operation: str, headers: Mapping[str, str], body: bytes) -> Response:
        """Serve one request for ``operation``; never raises."""
        try:
            payload = _parse_body(headers, body)
            params = _params(operation, headers, payload)
            validate_request(operation, params)
            call = Call(params, _user_id(params, headers), self.clock())
            token = call.token(operation)
            if token is not None:
                self.replies.expire(self.env.store, call.now)
            result = HANDLERS[operation](self.env, call)
            if token is not None:
                self.replies.note(self.env.store, token, call.now)
        except ApiError as exc:
            return self.error(exc)
        except Exception:
            logger.exception("emulator: internal error serving %s", operation)
            return self.error(ApiError("InternalServerException", "Internal error", 500))
        return self.render(_model.success_status(operation), result)

    def health(self) -> Response:
        """``GET /health``: 200 ``{"status": "ok"}``; 503 ``"stopping"`` once it is stopping."""
        if self.stopping.is_set():
            return self.render(503, {"status": "stopping"})
        return self.render(200, {"status": "ok"})

    def render(self, status: int, body: dict[str, object]) -> Response:
        """A JSON response with the model's timestamp format."""
        data = json.dumps(body, default=self._json_default, separators=(",", ":"))
        return Response(status, data.encode(), self._headers())

    def error(self, exc: ApiError) -> Response:
        """The error response botocore parses into ``ClientError`` with ``exc.code``."""
        data = json.dumps(exc.body(), separators=(",", ":")).encode()
        headers = (*self._headers(), ("X-Amzn-ErrorType", exc.code))
        return Response(exc.status, data, headers, close=exc.close_connection)

    def _headers(self) -> tuple[tuple[str, str], ...]:
        return (("Content-Type", "application/json"), ("x-amzn-RequestId", str(uuid.uuid4())))

    def _json_default(self, value: object) -> object:
        if isinstance(value, Instant):
            if self.timestamp_format == "epoch":
                return round(value.epoch, 6)
            moment = datetime.fromtimestamp(value.epoch, tz=timezone.utc)
            return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
        raise TypeError(f"cannot render {type(value).__name__}")


def _parse_body(headers: Mapping[str, str], body: bytes) -> dict[str, object]:
    if not body:
        return {}
    media = (headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        raise ApiError(
            "UnsupportedMediaTypeException", f"Content-Type {media!r} is not application/json", 415
        )
    try:
        parsed = load_json(body.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise serialization(f"The request body is not valid JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise serialization("The request body must be a JSON object")
    return parsed


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


def _params(
    operation: str, headers: Mapping[str, str], payload: dict[str, object]
) -> dict[str, object]:
    params = dict(payload)
    for member, header in _model.header_members(operation).items():
        if member in payload:
            raise validation(
                f"{member} travels in the {header} header, not in the body",
                fields=[FieldError(member, "must be sent as a header")],
            )
        value = headers.get(header)
        if value is not None:
            params[member] = value
    return params


def _user_id(params: dict[str, object], headers: Mapping[str, str]) -> str:
    """``userId``, else a Bearer JWT's ``sub``, else "": the model makes userId optional."""
    user = params.get("userId")
    if isinstance(user, str) and user:
        return user
    return _bearer_subject(headers.get("authorization") or "") or ""


def _bearer_subject(authorization: str) -> str | None:
    """The unverified ``sub`` claim of a Bearer JWT (the service derives userId from it)."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or token.count(".") != 2:
        return None
    claims_part = token.split(".")[1]
    try:
        claims = load_json(base64.urlsafe_b64decode(claims_part + "=" * (-len(claims_part) % 4)))
    except (ValueError, RecursionError):
        return None
    sub = claims.get("sub") if isinstance(claims, dict) else None
    return sub if isinstance(sub, str) and sub else None
