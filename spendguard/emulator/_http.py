"""One HTTP/1.1 request, parsed from memory and answered into memory.

:class:`Exchange` reuses ``http.server``'s request-line and header parsing (and its error
pages) over bytes the server's loop has read: the head as soon as it is whole (so its framing
says how much body to wait for), then the body. An answer that has to wait (an injected
delay) is left in :attr:`Exchange.rest` for a worker thread to finish.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import socket
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any

from spendguard.emulator import _model
from spendguard.emulator._app import App, Response
from spendguard.emulator._errors import ApiError, serialization, unknown_operation
from spendguard.emulator._faults import Fault

logger = logging.getLogger("spendguard.emulator")
#: ASCII only: str.isdigit() accepts "²" (which int() rejects) and int() accepts "٣".
_DIGITS = re.compile(r"[0-9]+")


class Exchange(BaseHTTPRequestHandler):
    """One request: its head parsed at once, its answer written to :attr:`output`.

    Attributes:
        output: The response bytes written so far.
        close_connection: Whether the connection must close after the response.
        body_length: Bytes of body to pass to :meth:`answer` (the ``Content-Length``).
        ready: Whether the head was accepted and :meth:`answer` is still to be called; when
            not, ``output`` already holds the error response.
        expects_continue: The client waits for "100 Continue" before sending its body.
        rest: What is left to do when the answer has to wait (a worker runs it), else None.
    """

    protocol_version = "HTTP/1.1"
    server_version = "spendguard-emulator/1"
    sys_version = ""
    default_request_version = "HTTP/1.0"  # a bad request line still gets a status line
    raw_requestline: bytes  # set by handle_one_request (not in typeshed)

    def __init__(
        self, head: bytes, sock: socket.socket, address: Any, app: App, *, too_large: bool = False
    ) -> None:
        # Not StreamRequestHandler's socket files: the loop reads, and sends what is written.
        self.connection, self.client_address, self.app = sock, address, app
        self.rfile = io.BytesIO(head)
        self.wfile = self.output = io.BytesIO()
        self.close_connection = True
        self.body_length, self.body = 0, b""
        self.ready = self.expects_continue = False
        self.rest: Callable[[], None] | None = None
        if too_large:
            self.command, self.requestline = "", ""
            self.request_version = self.default_request_version
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
            return
        self._parse_head()

    def answer(self, body: bytes) -> None:
        """Answer the request, whose body arrived (shorter than ``body_length``: cut off)."""
        self.ready = False
        if len(body) < self.body_length:
            error = _fatal(serialization("The request body ended before its Content-Length"))
            self._send(self.app.error(error))
            return
        self.body = body
        getattr(self, "do_" + self.command)()

    def _parse_head(self) -> None:
        """The first half of ``handle_one_request``: request line, headers, framing."""
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.requestline = self.request_version = self.command = ""
            self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
            return
        if not self.raw_requestline or not self.parse_request():
            return  # nothing, or an error response already written
        if not hasattr(self, "do_" + self.command):
            self.send_error(HTTPStatus.NOT_IMPLEMENTED, f"Unsupported method ({self.command!r})")
            return
        try:
            self.body_length = self._content_length(self.app.max_body)
        except ApiError as exc:
            self._send(self.app.error(exc))
            return
        self.ready = True

    def version_string(self) -> str:
        return self.server_version

    def date_time_string(self, timestamp: float | None = None) -> str:
        return self.app.http_date()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - " + format, self.address_string(), *args)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if logger.isEnabledFor(logging.DEBUG):  # every response: skip the formatting if unseen
            super().log_request(code, size)

    def handle_expect_100(self) -> bool:
        self.expects_continue = True  # the loop says it if the body has not come yet
        return True

    def parse_request(self) -> bool:
        if len(self.raw_requestline.split()) != 2:
            return super().parse_request()
        # HTTP/0.9 ("GET /"): no version, no headers. Refuse it at once, with a status line,
        # rather than serve a bare body.
        self.command, self.request_version = "", self.default_request_version
        self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        self.close_connection = True
        self.send_error(HTTPStatus.BAD_REQUEST, "HTTP/0.9 requests are not supported")
        return False

    def do_POST(self) -> None:
        self._serve()

    do_GET = do_HEAD = do_PUT = do_DELETE = do_PATCH = do_POST

    def _serve(self) -> None:
        app, body = self.app, self.body
        path = self.path.split("?", 1)[0]
        if path == "/health" and self.command in ("GET", "HEAD"):
            self._send(app.health())
            return
        operation = _model.routes().get((self.command, path))
        if operation is None:
            self._send(app.error(unknown_operation(self.command, path)))
            return
        fault = app.faults.take(operation)
        if fault is not None and fault.kind == "error":
            self._send(app.error(ApiError(fault.code, fault.message, fault.status)))
        elif fault is not None and fault.kind == "delay":
            self.rest = lambda: self._answer(operation, body, fault)
        else:
            self._answer(operation, body, fault)

    def _answer(self, operation: str, body: bytes, fault: Fault | None) -> None:
        if fault is not None and fault.kind == "delay":
            self.app.stopping.wait(fault.seconds)
        if fault is not None and fault.kind == "drop" and not fault.after:
            self._drop()
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        response = self.app.dispatch(operation, headers, body)
        if fault is not None and fault.kind == "drop":
            self._drop()
            return
        self._send(response)

    def _content_length(self, limit: int) -> int:
        if self.headers.get("Transfer-Encoding"):
            raise _fatal(serialization("Chunked request bodies are not supported"))
        values = {value.strip() for value in self.headers.get_all("Content-Length") or ()}
        if not values:
            return 0
        if len(values) > 1:
            raise _fatal(serialization("Conflicting Content-Length headers"))
        raw = values.pop()
        if _DIGITS.fullmatch(raw) is None:
            raise _fatal(serialization(f"Invalid Content-Length {raw[:20]!r}"))
        if len(raw.lstrip("0")) > len(str(limit)) or int(raw) > limit:  # int() of 4301+ digits
            shown = raw if len(raw) <= 20 else raw[:20] + "..."
            message = f"The request body is {shown} bytes; the limit is {limit}"
            raise _fatal(ApiError("RequestEntityTooLargeException", message, 413))
        return int(raw)

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if response.close or self.app.stopping.is_set():
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)


def _fatal(exc: ApiError) -> ApiError:
    """The body was not consumed, so the connection cannot be reused after answering."""
    exc.close_connection = True
    return exc
