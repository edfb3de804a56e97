"""The HTTP/1.1 transport: one selector loop, and a bounded pool for answers that wait.

The loop thread (:meth:`EmulatorServer.serve_forever`) owns the listening socket and every
connection. It accepts, reads without blocking, and once a whole request (head and
``Content-Length`` body) is in memory it answers it at once, in one send (TCP_NODELAY, so
keep-alive requests never wait on Nagle). An idle keep-alive connection, or a client that sent
half a request, therefore costs a buffer and a file descriptor, never a thread. Only an answer
that has to wait (an injected delay, or a client that does not read its responses) goes to one
of ``workers`` threads, which gives the connection back to the loop when done. Stopping lets
the requests that have begun finish, then closes everything.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from spendguard.emulator._app import App
from spendguard.emulator._http import Exchange

logger = logging.getLogger("spendguard.emulator")

#: Worker threads: answers that wait at once (each injected delay holds one for its length).
WORKERS = 32
#: Open connections at most; past it the server stops accepting until one closes.
MAX_CONNECTIONS = 4096
#: A keep-alive connection with no request for this long is closed.
IDLE_TIMEOUT = 300.0
#: A request must arrive whole within this long of its first byte, or its connection closes.
REQUEST_TIMEOUT = 30.0
#: On shutdown, how long requests that have begun arriving get to arrive whole.
GRACE = 5.0
#: Largest request head (request line and headers); a longer one is answered 431.
MAX_HEAD = 64 * 1024
_WRITE_TIMEOUT = 10.0  # a client that stops reading its responses loses its connection
_RECV_SIZE = 64 * 1024
_ACCEPT_BATCH = 64
_SWEEP_EVERY = 0.5
_BLANK = (b"\r\n\r\n", b"\n\n", b"\n\r\n")  # the ends of a head
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def _bytes_waiting(sock: socket.socket) -> bool:
    """Whether the client has sent bytes the loop has not read yet (a request arriving)."""
    try:
        return bool(sock.recv(1, socket.MSG_PEEK))
    except OSError:  # nothing waiting (BlockingIOError), or the connection is gone
        return False


@dataclass(eq=False, slots=True)
class _Conn:
    """A client connection, the bytes arriving on it, and the request whose head has come."""

    sock: socket.socket
    address: Any
    since: float  # monotonic: last answer, or the first byte of the request arriving
    buffer: bytearray = field(default_factory=bytearray)
    eof: bool = False  # the client sent FIN: what is buffered is all there will be
    busy: bool = False  # a worker holds it (the loop does not watch it meanwhile)
    scanned: int = 0  # no head end starts before this offset of the buffer
    exchange: Exchange | None = None  # head parsed, body still arriving

    @property
    def arriving(self) -> bool:
        """Whether a request has begun to arrive (and not yet been answered)."""
        return bool(self.buffer) or self.exchange is not None

    def head_size(self) -> int:
        """Bytes of the buffered head once it is whole (or will get no more); 0: not yet;
        -1: it is too large."""
        end = _head_end(self.buffer, self.scanned)
        if end >= 0:
            return end if end <= MAX_HEAD else -1
        self.scanned = max(0, len(self.buffer) - 3)  # an end may straddle two reads
        line_end = self.buffer.find(b"\n")
        if self.eof or (line_end >= 0 and len(self.buffer[:line_end].split()) != 3):
            return len(self.buffer)  # all there will be; or HTTP/0.9 or garbage: no headers
        return -1 if len(self.buffer) > MAX_HEAD else 0

    def take(self, size: int) -> bytes:
        """Remove the first ``size`` buffered bytes and return them."""
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        self.scanned = 0
        return data


class EmulatorServer:
    """A selector-driven HTTP/1.1 server with a bounded pool of worker threads.

    Run :meth:`serve_forever` in a thread. :meth:`shutdown` stops accepting, closes idle
    connections and serves what has begun to arrive; :meth:`close_connections` lets the workers
    finish and closes every connection; :meth:`server_close` releases the port.
    """

    def __init__(
        self,
        address: tuple[str, int],
        app: App,
        *,
        workers: int = WORKERS,
        max_connections: int = MAX_CONNECTIONS,
        idle_timeout: float = IDLE_TIMEOUT,
        request_timeout: float = REQUEST_TIMEOUT,
        grace: float = GRACE,
    ) -> None:
        """Bind to ``address`` (port 0 picks a free port) and serve ``app``."""
        self.app = app
        self.max_connections = max_connections
        self.idle_timeout, self.request_timeout = idle_timeout, request_timeout
        self.grace = grace
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.socket = socket.create_server(address, family=family, backlog=1024)
        self.socket.setblocking(False)
        self.server_address: tuple[str, int] = self.socket.getsockname()[:2]
        port = self.server_address[1]
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix=f"spendguard-emulator:{port}")
        self._selector = selectors.DefaultSelector()
        self._waker, self._wake_end = socket.socketpair()
        for end in (self._waker, self._wake_end):
            end.setblocking(False)
        self._selector.register(self._wake_end, selectors.EVENT_READ)
        self._conns: set[_Conn] = set()  # every open connection, idle or with a worker
        self._returned: collections.deque[tuple[_Conn, bool]] = collections.deque()
        self._accepting = False
        self._next_sweep = 0.0
        self._quit = threading.Event()
        self._idle = threading.Event()
        self._idle.set()

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Serve until :meth:`shutdown`, then finish the requests that have begun.

        Args:
            poll_interval: Longest wait for events (timeouts are checked in between).
        """
        self._idle.clear()
        try:
            self._set_accepting(True)
            while not self._quit.is_set():
                self._step(poll_interval)
            self._drain(poll_interval)
        finally:
            self._idle.set()

    def shutdown(self) -> None:
        """Stop accepting, finish what has begun (within ``grace`` seconds), and wait for
        :meth:`serve_forever` to return."""
        self._quit.set()
        self._wake()
        self._idle.wait()

    def close_connections(self) -> None:
        """Let the workers finish their answers, then close every connection.

        Call it after :meth:`shutdown`.
        """
        self._pool.shutdown(wait=True)
        self._returned.clear()
        for conn in list(self._conns):
            self._close(conn)

    def server_close(self) -> None:
        """Release the listening socket and the loop's own resources."""
        self._pool.shutdown(wait=False)
        self._selector.close()
        for sock in (self.socket, self._waker, self._wake_end):
            sock.close()

    def connection_count(self) -> int:
        """How many client connections are open (idle, arriving or being answered)."""
        return len(self._conns)

    # The loop thread.

    def _step(self, timeout: float) -> None:
        for key, _ in self._selector.select(timeout):
            if key.fileobj is self.socket:
                self._accept()
            elif key.fileobj is self._wake_end:
                self._take_back()
            else:
                self._read(key.data)
        now = time.monotonic()
        if now >= self._next_sweep:
            self._sweep(now)
            self._next_sweep = now + _SWEEP_EVERY

    def _drain(self, poll_interval: float) -> None:
        """Accept no more; close idle connections; serve the requests already arriving.

        A request begun before the stop is served: connections the kernel has completed are
        accepted, and a connection is idle only if no byte waits on it.
        """
        if self._accepting:
            self._accept(batch=None)  # the backlog: clients that connected before the stop
        self._set_accepting(False)
        self._step(0)  # read what has arrived
        deadline = time.monotonic() + self.grace
        while (left := deadline - time.monotonic()) > 0:
            for conn in list(self._conns):
                if not conn.busy and not conn.arriving and not _bytes_waiting(conn.sock):
                    self._close(conn)
            if not self._conns:
                return
            self._step(min(poll_interval, left))

    def _set_accepting(self, on: bool) -> None:
        if on and not self._accepting:
            self._selector.register(self.socket, selectors.EVENT_READ)
        elif not on and self._accepting:
            self._selector.unregister(self.socket)
        self._accepting = on

    def _accept(self, batch: int | None = _ACCEPT_BATCH) -> None:
        # batch None: until the backlog is empty (or the connection limit is reached).
        for _ in range(batch) if batch is not None else itertools.count():
            if len(self._conns) >= self.max_connections:
                self._set_accepting(False)
                return
            try:
                sock, address = self.socket.accept()
            except BlockingIOError:
                return
            except OSError as exc:  # EMFILE and the like: wait until a connection closes
                logger.warning("emulator: cannot accept connections: %s", exc)
                self._set_accepting(False)
                return
            sock.setblocking(False)
            # Without this, keep-alive requests stall ~40 ms on Nagle + delayed ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(sock, address, time.monotonic())
            self._conns.add(conn)
            self._selector.register(sock, selectors.EVENT_READ, conn)

    def _read(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(_RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # reset by the client
            logger.debug("emulator: connection from %s ended: %s", conn.address, exc)
            self._close(conn)
            return
        if not data:
            conn.eof = True
        elif not conn.arriving:
            conn.since = time.monotonic()
        conn.buffer += data
        self._answer_buffered(conn)

    def _answer_buffered(self, conn: _Conn) -> None:
        try:
            self._answer_each(conn)
        except Exception:  # a bug must cost one connection, never the loop
            logger.exception("emulator: error serving %s", conn.address)
            self._close(conn)

    def _answer_each(self, conn: _Conn) -> None:
        """Parse each head as it completes; answer each request once its body is in."""
        while conn.buffer or conn.eof:
            exchange = conn.exchange or self._parse_head(conn)
            if exchange is None:
                return
            if exchange.ready and len(conn.buffer) < exchange.body_length and not conn.eof:
                conn.exchange = exchange
                if exchange.expects_continue:
                    exchange.expects_continue = False
                    with contextlib.suppress(OSError):
                        conn.sock.send(_CONTINUE)
                return
            conn.exchange = None
            if exchange.ready:
                exchange.answer(conn.take(exchange.body_length))
            if not self._reply(conn, exchange, conn.eof):
                return

    def _parse_head(self, conn: _Conn) -> Exchange | None:
        if conn.eof and not conn.buffer:
            self._close(conn)
            return None
        size = conn.head_size()
        if size == 0:
            return None
        if size > 0:
            return Exchange(conn.take(size), conn.sock, conn.address, self.app)
        conn.take(len(conn.buffer))  # the answer closes the connection: the rest goes unread
        return Exchange(b"", conn.sock, conn.address, self.app, too_large=True)

    def _reply(self, conn: _Conn, exchange: Exchange, last: bool) -> bool:
        """Send the answer, or leave it to a worker; whether the loop keeps reading ``conn``."""
        keep = not (exchange.close_connection or last)
        rest = exchange.rest
        if rest is not None:
            self._to_worker(conn, lambda: _finish(conn.sock, exchange, rest, last))
            return False
        data = exchange.output.getvalue()
        try:
            sent = conn.sock.send(data) if data else 0
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            logger.debug("emulator: connection from %s ended: %s", conn.address, exc)
            self._close(conn)
            return False
        if sent < len(data):  # the client is not reading: a worker waits for it
            self._to_worker(conn, lambda: _send_rest(conn.sock, data[sent:], keep))
            return False
        if not keep:
            self._close(conn)
            return False
        conn.since = time.monotonic()
        return True

    def _to_worker(self, conn: _Conn, job: Callable[[], bool]) -> None:
        conn.busy = True
        self._selector.unregister(conn.sock)
        self._pool.submit(self._work, conn, job)

    def _take_back(self) -> None:
        with contextlib.suppress(OSError):
            while self._wake_end.recv(4096):
                pass
        while self._returned:
            conn, keep = self._returned.popleft()
            conn.busy = False
            if not keep:
                self._close(conn)
                continue
            conn.since = time.monotonic()
            self._selector.register(conn.sock, selectors.EVENT_READ, conn)
            if conn.buffer:  # pipelined behind the answer that waited
                self._answer_buffered(conn)

    def _sweep(self, now: float) -> None:
        for conn in list(self._conns):
            limit = self.request_timeout if conn.arriving else self.idle_timeout
            if not conn.busy and now - conn.since > limit:
                logger.debug("emulator: closing %s after %.0f s", conn.address, now - conn.since)
                self._close(conn)
        if not self._accepting and len(self._conns) < self.max_connections:
            self._set_accepting(True)  # file descriptors may have been freed elsewhere

    def _close(self, conn: _Conn) -> None:
        self._conns.discard(conn)
        with contextlib.suppress(KeyError, ValueError, RuntimeError):
            self._selector.unregister(conn.sock)
        with contextlib.suppress(OSError):
            conn.sock.close()
        if not self._accepting and not self._quit.is_set():
            self._set_accepting(True)

    # Worker threads.

    def _work(self, conn: _Conn, job: Callable[[], bool]) -> None:
        keep = False
        try:
            keep = job()
        except OSError as exc:  # reset, broken pipe, write timeout: nothing left to answer
            logger.debug("emulator: connection from %s ended: %s", conn.address, exc)
        except Exception:
            logger.exception("emulator: error serving %s", conn.address)
        self._returned.append((conn, keep))
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full: a wake-up is pending anyway
            self._waker.send(b"\0")


def _head_end(buffer: bytearray, start: int) -> int:
    """Offset just past the blank line that ends the head (CRLF or bare LF lines), or -1."""
    best = -1
    for mark in _BLANK:  # the earliest end wins; each search stops where the last one ended
        at = buffer.find(mark, start, best if best >= 0 else len(buffer))
        if at >= 0:
            best = at + len(mark)
    return best


def _finish(sock: socket.socket, exchange: Exchange, rest: Callable[[], None], last: bool) -> bool:
    """In a worker: the rest of an answer that waited, and its send; whether to keep ``sock``."""
    rest()
    return _send_rest(sock, exchange.output.getvalue(), not (exchange.close_connection or last))


def _send_rest(sock: socket.socket, data: bytes, keep: bool) -> bool:
    """In a worker: send ``data``, waiting at most the write timeout; returns ``keep``."""
    if data:
        sock.settimeout(_WRITE_TIMEOUT)
        try:
            sock.sendall(data)
        finally:
            sock.setblocking(False)
    return keep
