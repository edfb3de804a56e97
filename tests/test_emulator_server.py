"""The server you can leave running: bounded workers, idle and slow clients, limits, stop.

Timing is never asserted: waits are for events (a response, a closed connection, a thread
finishing) with a bound that only a failure reaches.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any, BinaryIO

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from spendguard.emulator import DEFAULT_MANAGER_ARN, PaymentsEmulator
from spendguard.emulator._app import App, ReplyWindow
from spendguard.emulator._server import WORKERS, EmulatorServer

if TYPE_CHECKING:
    from mypy_boto3_bedrock_agentcore import BedrockAgentCoreClient

USER_HEADER = "X-Amzn-Bedrock-AgentCore-Payments-User-Id"
HEALTH = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
# Bounded: a wait that reaches this has failed; none is a measurement.
BOUND = 10.0


@contextmanager
def serving(app: App | None = None, **options: Any) -> Iterator[EmulatorServer]:
    """An EmulatorServer on a free loopback port, with the options PaymentsEmulator hides."""
    server = EmulatorServer(("127.0.0.1", 0), app or App(time.time), **options)
    loop = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    loop.start()
    try:
        yield server
    finally:
        server.app.stopping.set()
        server.shutdown()
        loop.join()
        server.close_connections()
        server.server_close()


def _client(server: EmulatorServer) -> BedrockAgentCoreClient:
    host, port = server.server_address
    return boto3.client(
        "bedrock-agentcore",
        endpoint_url=f"http://{host}:{port}",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(read_timeout=BOUND, retries={"total_max_attempts": 1}),
    )


def _create(client: BedrockAgentCoreClient, token: str | None = None, budget: str = "5.00") -> str:
    extra = {"clientToken": token} if token else {}
    made = client.create_payment_session(
        paymentManagerArn=DEFAULT_MANAGER_ARN,
        userId="user-1",
        expiryTimeInMinutes=60,
        limits={"maxSpendAmount": {"value": budget, "currency": "USD"}},
        **extra,  # type: ignore[arg-type]
    )
    return made["paymentSession"]["paymentSessionId"]


def _get(client: BedrockAgentCoreClient, session_id: str) -> dict[str, Any]:
    got = client.get_payment_session(
        paymentManagerArn=DEFAULT_MANAGER_ARN, paymentSessionId=session_id, userId="user-1"
    )
    return dict(got["paymentSession"])


def _connect(server: EmulatorServer | PaymentsEmulator) -> socket.socket:
    if isinstance(server, PaymentsEmulator):
        host, port = server.endpoint_url.removeprefix("http://").rsplit(":", 1)
        address = (host, int(port))
    else:
        address = server.server_address
    return socket.create_connection(address, timeout=BOUND)


def _response(stream: BinaryIO, *, head: bool = False) -> tuple[int, dict[str, str], bytes]:
    """One response read off ``stream`` (status, lower-cased headers, body; none for HEAD)."""
    status_line = stream.readline()
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    body = b"" if head else stream.read(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


def _get_request(session_id: str) -> bytes:
    body = json.dumps({"paymentManagerArn": DEFAULT_MANAGER_ARN, "paymentSessionId": session_id})
    return (
        f"POST /payments/getPaymentSession HTTP/1.1\r\nHost: x\r\n{USER_HEADER}: user-1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


def _workers(server: EmulatorServer) -> int:
    prefix = f"spendguard-emulator:{server.server_address[1]}"
    return sum(1 for t in threading.enumerate() if t.name.startswith(prefix))


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + BOUND
    pause = threading.Event()
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        pause.wait(0.01)


# Task 1: bounded workers; idle and half-sent connections hold none.


def test_300_idle_connections_hold_no_thread_and_boto3_is_still_answered() -> None:
    with PaymentsEmulator() as emulator, ExitStack() as held:
        made = emulator.create_session("3.00")
        for index in range(300):
            sock = held.enter_context(_connect(emulator))
            sock.sendall(HEALTH)  # answered: the server has accepted it and keeps it open
            assert _response(sock.makefile("rb"))[0] == 200
            if index % 2:  # and half of them start a request they never finish
                sock.sendall(b"POST /payments/getPaymentSession HTTP/1.1\r\nHost: x\r\nCont")
        got = emulator.client(Config(read_timeout=BOUND)).get_payment_session(
            paymentManagerArn=made.payment_manager_arn,
            paymentSessionId=made.payment_session_id,
            userId=made.user_id,
        )
        assert got["paymentSession"]["limits"]["maxSpendAmount"]["value"] == "3.00"
        port = emulator.endpoint_url.rsplit(":", 1)[1]
        workers = [
            t for t in threading.enumerate() if t.name.startswith(f"spendguard-emulator:{port}")
        ]
        assert len(workers) <= WORKERS
        assert threading.active_count() < 300


def test_with_one_worker_busy_and_clients_half_sent_requests_are_still_answered() -> None:
    app = App(time.time)
    with serving(app, workers=1) as server:
        client = _client(server)
        session_id = _create(client)
        request = _get_request(session_id)
        app.faults.delay("GetPaymentSession", BOUND * 3)  # it holds the only worker...
        delayed = _connect(server)
        delayed.sendall(request)
        _wait_for(lambda: app.faults.calls("GetPaymentSession") == 1)
        half_body, half_head = _connect(server), _connect(server)
        half_body.sendall(request[:-10])
        half_head.sendall(request[:30])
        assert _get(client, session_id)["paymentSessionId"] == session_id  # ...yet this is served
        half_body.sendall(request[-10:])
        status, _, body = _response(half_body.makefile("rb"))
        assert status == 200
        assert json.loads(body)["paymentSession"]["paymentSessionId"] == session_id
        assert _workers(server) == 1
        for sock in (delayed, half_body, half_head):
            sock.close()


def test_pipelined_requests_are_answered_in_order() -> None:
    with serving() as server:
        session_id = _create(_client(server))
        with _connect(server) as sock:
            sock.sendall(HEALTH + _get_request(session_id) + HEALTH)
            stream = sock.makefile("rb")
            answers = [_response(stream) for _ in range(3)]
    assert [status for status, _, _ in answers] == [200, 200, 200]
    assert json.loads(answers[0][2]) == json.loads(answers[2][2]) == {"status": "ok"}
    assert json.loads(answers[1][2])["paymentSession"]["paymentSessionId"] == session_id


def test_expect_100_continue_is_answered_before_the_body() -> None:
    with serving() as server:
        session_id = _create(_client(server))
        request = _get_request(session_id)
        head, body = request.split(b"\r\n\r\n", 1)
        with _connect(server) as sock:
            sock.sendall(head + b"\r\nExpect: 100-continue\r\n\r\n")
            stream = sock.makefile("rb")
            assert stream.readline() == b"HTTP/1.1 100 Continue\r\n"
            assert stream.readline() == b"\r\n"
            sock.sendall(body)
            status, _, answer = _response(stream)
    assert status == 200
    assert json.loads(answer)["paymentSession"]["paymentSessionId"] == session_id


def test_a_head_over_64_kib_is_answered_431_and_closed() -> None:
    with serving() as server, _connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\n" + b"X-Filler: " + b"a" * 70_000)
        reply = sock.makefile("rb").read()
    assert reply.startswith(b"HTTP/1.1 431")
    assert b"Connection: close" in reply


def test_idle_and_stalled_connections_are_closed_after_their_timeouts() -> None:
    with serving(idle_timeout=0.2, request_timeout=0.2) as server:
        idle, stalled = _connect(server), _connect(server)
        stalled.sendall(b"GET /health HTTP/1.1\r\nHo")
        assert idle.recv(1) == b""  # closed by the server (a hang would time out the test)
        assert stalled.recv(1) == b""
        _wait_for(lambda: server.connection_count() == 0)
        idle.close()
        stalled.close()


def test_past_max_connections_the_next_waits_until_one_closes() -> None:
    with serving(max_connections=2) as server:
        first, second = _connect(server), _connect(server)
        for sock in (first, second):
            sock.sendall(HEALTH)
            assert _response(sock.makefile("rb"))[0] == 200
        third = _connect(server)  # the kernel completes it; the server does not take it yet
        third.sendall(HEALTH)
        third.settimeout(0.3)
        with pytest.raises(TimeoutError):  # can only pass wrongly on a very slow machine
            third.recv(1)
        assert server.connection_count() == 2
        first.close()
        third.settimeout(BOUND)
        assert _response(third.makefile("rb"))[0] == 200
        second.close()
        third.close()


def test_a_client_token_is_forgotten_after_the_reply_window(emulator: PaymentsEmulator) -> None:
    made = emulator.create_session("5.00")
    client = emulator.client()
    token = f"{uuid.uuid4()}-window"
    created = [_create(client, token) for _ in range(2)]
    assert created[0] == created[1]  # replayed within the window
    emulator.advance(3601)
    assert _create(client, token) != created[0]  # an hour later, the token is new again
    assert made.payment_session_id not in created


def test_the_reply_store_keeps_at_most_its_limit_of_tokens() -> None:
    app = App(time.time, replies=ReplyWindow(limit=2))
    with serving(app) as server:
        client = _client(server)
        tokens = [f"{uuid.uuid4()}-limit" for _ in range(3)]
        first = [_create(client, token) for token in tokens]
        assert len(app.env.store.replies) == 2
        assert _create(client, tokens[0], budget="7.00") != first[0]  # forgotten: new
        with pytest.raises(ClientError) as info:  # remembered: reused with other parameters
            _create(client, tokens[2], budget="7.00")
    assert info.value.response["Error"]["Code"] == "ValidationException"


# Task 2: health, graceful stop.


def test_health_answers_ok_on_get_and_head() -> None:
    with serving() as server, _connect(server) as sock:
        sock.sendall(HEALTH + b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n")
        stream = sock.makefile("rb")
        status, headers, body = _response(stream)
        assert (status, json.loads(body)) == (200, {"status": "ok"})
        assert headers["content-type"] == "application/json"
        head_status, head_headers, _ = _response(stream, head=True)
        assert (head_status, head_headers["content-length"]) == (200, "15")
        sock.sendall(HEALTH)  # the connection is still open for more
        assert _response(stream)[0] == 200


def test_stop_lets_a_request_in_flight_finish() -> None:
    emulator = PaymentsEmulator().start()
    made = emulator.create_session("4.00")
    client = emulator.client(Config(read_timeout=BOUND, retries={"total_max_attempts": 1}))
    emulator.faults.delay("GetPaymentSession", BOUND * 3)  # stopping cuts the delay short
    answers: list[dict[str, Any]] = []

    def call() -> None:
        answers.append(
            dict(
                client.get_payment_session(
                    paymentManagerArn=made.payment_manager_arn,
                    paymentSessionId=made.payment_session_id,
                    userId=made.user_id,
                )
            )
        )

    caller = threading.Thread(target=call)
    caller.start()
    _wait_for(lambda: emulator.faults.calls("GetPaymentSession") == 1)  # a worker has it
    emulator.stop()
    caller.join(BOUND)
    assert answers[0]["paymentSession"]["paymentSessionId"] == made.payment_session_id
    assert answers[0]["ResponseMetadata"]["HTTPHeaders"]["connection"] == "close"


def test_stop_serves_a_request_begun_on_a_kept_alive_connection() -> None:
    # The connection was just handed back by the worker that answered it: its next request
    # is arriving, not idle.
    emulator = PaymentsEmulator().start()
    made = emulator.create_session("4.00")
    request = _get_request(made.payment_session_id)
    sock = _connect(emulator)
    stream = sock.makefile("rb")
    sock.sendall(request)
    assert _response(stream)[0] == 200
    sock.sendall(request[:-5])
    stopper = threading.Thread(target=emulator.stop)
    stopper.start()
    assert emulator.wait(BOUND)  # stopping
    sock.sendall(request[-5:])
    status, headers, body = _response(stream)
    assert status == 200
    assert headers["connection"] == "close"
    assert json.loads(body)["paymentSession"]["paymentSessionId"] == made.payment_session_id
    assert stream.read() == b""  # then closed
    stopper.join(BOUND)
    assert not stopper.is_alive()
    sock.close()


def test_stop_serves_a_request_that_was_still_arriving() -> None:
    emulator = PaymentsEmulator().start()
    made = emulator.create_session("4.00")
    request = _get_request(made.payment_session_id)
    sock = _connect(emulator)
    sock.sendall(request[:-5])
    stopper = threading.Thread(target=emulator.stop)
    stopper.start()
    assert emulator.wait(BOUND)  # stopping
    sock.sendall(request[-5:])
    stream = sock.makefile("rb")
    status, headers, body = _response(stream)
    assert status == 200
    assert headers["connection"] == "close"
    assert json.loads(body)["paymentSession"]["paymentSessionId"] == made.payment_session_id
    assert stream.read() == b""  # then closed
    stopper.join(BOUND)
    assert not stopper.is_alive()
    sock.close()
