"""The HTTP/1.1 transport: keep-alive, TCP_NODELAY, body limits, faults, clean shutdown."""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from spendguard.emulator import _model
from spendguard.emulator._app import App, Response
from spendguard.emulator._errors import ApiError, serialization, unknown_operation

logger = logging.getLogger("spendguard.emulator")
# ASCII only: str.isdigit() accepts "²" (which int() rejects) and int() accepts "٣".
_DIGITS = re.compile(r"[0-9]+")


class EmulatorServer(ThreadingHTTPServer):
    """A threaded HTTP server that can close its idle keep-alive connections on stop."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: App) -> None:
        """Bind to ``address`` (port 0 picks a free port) and serve ``app``."""
        self.app = app
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, conn: socket.socket, *, add: bool) -> None:
        """Remember or forget an open client connection."""
        with self._open_lock:
            if add:
                self._open.add(conn)
            else:
                self._open.discard(conn)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away is routine; anything else is a bug, logged (not printed)."""
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # reset, broken pipe: nothing left to answer
            logger.debug("emulator: connection from %s ended: %s", client_address, exc)
        else:
            logger.error("emulator: error serving %s", client_address, exc_info=True)

    def close_connections(self) -> None:
        """Shut down every open client connection (unblocks their handler threads)."""
        with self._open_lock:
            conns = list(self._open)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "spendguard-emulator/1"
    sys_version = ""
    wbufsize = 64 * 1024  # one send per response: headers and body leave together
    timeout = 300  # idle keep-alive connections are closed after this
    default_request_version = "HTTP/1.0"  # a bad request line still gets a status line
    server: EmulatorServer
    raw_requestline: bytes  # set by handle_one_request (not in typeshed)

    def setup(self) -> None:
        super().setup()
        # Without this, keep-alive requests stall ~40 ms on Nagle + delayed ACK.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        self.server.track(self.connection, add=False)
        with contextlib.suppress(OSError):
            super().finish()

    def version_string(self) -> str:
        return self.server_version

    def date_time_string(self, timestamp: float | None = None) -> str:
        return self.server.app.http_date()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - " + format, self.address_string(), *args)

    def parse_request(self) -> bool:
        if len(self.raw_requestline.split()) != 2:
            return super().parse_request()
        # HTTP/0.9 ("GET /"): no version, no headers. Refuse it at once, with a status line,
        # rather than serve a bare body or wait for headers that never come.
        self.command, self.request_version = "", self.default_request_version
        self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        self.close_connection = True
        self.send_error(HTTPStatus.BAD_REQUEST, "HTTP/0.9 requests are not supported")
        return False

    def do_POST(self) -> None:
        self._serve()

    do_GET = do_PUT = do_DELETE = do_PATCH = do_POST

    def _serve(self) -> None:
        app = self.server.app
        try:
            body = self._read_body(app.max_body)
        except ApiError as exc:
            self._send(app.error(exc))
            return
        path = self.path.split("?", 1)[0]
        operation = _model.routes().get((self.command, path))
        if operation is None:
            self._send(app.error(unknown_operation(self.command, path)))
            return
        fault = app.faults.take(operation)
        if fault is not None and fault.kind == "error":
            self._send(app.error(ApiError(fault.code, fault.message, fault.status)))
            return
        if fault is not None and fault.kind == "delay":
            app.stopping.wait(fault.seconds)
        if fault is not None and fault.kind == "drop" and not fault.after:
            self._drop()
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        response = app.dispatch(operation, headers, body)
        if fault is not None and fault.kind == "drop":
            self._drop()
            return
        self._send(response)

    def _read_body(self, limit: int) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            raise _fatal(serialization("Chunked request bodies are not supported"))
        values = {value.strip() for value in self.headers.get_all("Content-Length") or ()}
        if not values:
            return b""
        if len(values) > 1:
            raise _fatal(serialization("Conflicting Content-Length headers"))
        raw = values.pop()
        if _DIGITS.fullmatch(raw) is None:
            raise _fatal(serialization(f"Invalid Content-Length {raw[:20]!r}"))
        if len(raw.lstrip("0")) > len(str(limit)) or int(raw) > limit:  # int() of 4301+ digits
            shown = raw if len(raw) <= 20 else raw[:20] + "..."
            message = f"The request body is {shown} bytes; the limit is {limit}"
            raise _fatal(ApiError("RequestEntityTooLargeException", message, 413))
        body = self.rfile.read(int(raw))
        if len(body) < int(raw):
            raise _fatal(serialization("The request body ended before its Content-Length"))
        return body

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if response.close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)


def _fatal(exc: ApiError) -> ApiError:
    """The body was not consumed, so the connection cannot be reused after answering."""
    exc.close_connection = True
    return exc
