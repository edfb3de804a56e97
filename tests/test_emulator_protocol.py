"""The wire: raw HTTP against the emulator, bad input of every kind, keep-alive, Date."""

from __future__ import annotations

import base64
import http.client
import json
import logging
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import pytest
from conftest import PaymentSessionFixture

from spendguard.emulator import PaymentsEmulator, x402_payment_input

USER_HEADER = "X-Amzn-Bedrock-AgentCore-Payments-User-Id"


@pytest.fixture
def conn(emulator: PaymentsEmulator) -> Iterator[http.client.HTTPConnection]:
    parts = urlsplit(emulator.endpoint_url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)
    yield connection
    connection.close()


def _post(
    conn: http.client.HTTPConnection,
    path: str,
    body: bytes | str,
    headers: dict[str, str] | None = None,
    method: str = "POST",
) -> tuple[int, dict[str, str], dict[str, object]]:
    sent = {"Content-Type": "application/json", **(headers or {})}
    conn.request(method, path, body=body, headers=sent)
    response = conn.getresponse()
    data = response.read()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(data)


def _get_body(session: PaymentSessionFixture) -> str:
    return json.dumps({"paymentManagerArn": session.arn, "paymentSessionId": session.session_id})


def test_keep_alive_serves_many_requests_on_one_connection(
    conn: http.client.HTTPConnection, payment_session: PaymentSessionFixture
) -> None:
    headers = {USER_HEADER: payment_session.user_id}
    for _ in range(3):
        status, response_headers, _body = _post(
            conn, "/payments/getPaymentSession", _get_body(payment_session), headers
        )
        assert status == 200
        assert response_headers.get("connection") != "close"
    assert conn.sock is not None  # still the same, open socket


def test_every_response_has_a_date_header_from_the_server_clock(
    conn: http.client.HTTPConnection, emulator: PaymentsEmulator
) -> None:
    emulator.advance(3600)  # simulate a server clock one hour ahead
    _, headers, _ = _post(conn, "/payments/nope", "{}")
    date = parsedate_to_datetime(headers["date"]).timestamp()
    assert abs(date - emulator.now()) < 2
    assert headers["x-amzn-requestid"]


@pytest.mark.parametrize(
    ("method", "path", "body", "content_type", "status", "code"),
    [
        (
            "POST",
            "/payments/unknownOperation",
            "{}",
            "application/json",
            404,
            "UnknownOperationException",
        ),
        (
            "GET",
            "/payments/getPaymentSession",
            "",
            "application/json",
            404,
            "UnknownOperationException",
        ),
        (
            "POST",
            "/payments/getPaymentSession",
            "{not json",
            "application/json",
            400,
            "SerializationException",
        ),
        (
            "POST",
            "/payments/getPaymentSession",
            "[1, 2]",
            "application/json",
            400,
            "SerializationException",
        ),
        (
            "POST",
            "/payments/getPaymentSession",
            '{"a": NaN}',
            "application/json",
            400,
            "SerializationException",
        ),
        (
            "POST",
            "/payments/getPaymentSession",
            "[" * 100000,
            "application/json",
            400,
            "SerializationException",
        ),
        (
            "POST",
            "/payments/getPaymentSession",
            b"{\xff}",
            "application/json",
            400,
            "SerializationException",
        ),
        (
            "POST",
            "/payments/getPaymentSession",
            "{}",
            "text/plain",
            415,
            "UnsupportedMediaTypeException",
        ),
        (
            "POST",
            "/payments/getPaymentSession",
            "{}",
            "application/json",
            400,
            "ValidationException",
        ),
        (
            "POST",
            "/payments/getPaymentSession",
            '{"userId": "u"}',
            "application/json",
            400,
            "ValidationException",
        ),
        (
            "POST",
            "/payments/processPayment",
            '{"paymentConnectorId": "x"}',
            "application/json",
            400,
            "ValidationException",
        ),
    ],
)
def test_bad_requests_get_error_responses_and_the_server_keeps_serving(
    conn: http.client.HTTPConnection,
    payment_session: PaymentSessionFixture,
    method: str,
    path: str,
    body: str | bytes,
    content_type: str,
    status: int,
    code: str,
) -> None:
    got_status, headers, payload = _post(
        conn, path, body, {"Content-Type": content_type, USER_HEADER: "u"}, method
    )
    assert (got_status, headers["x-amzn-errortype"]) == (status, code)
    assert isinstance(payload["message"], str)
    # The same connection still works afterwards.
    ok, _, _ = _post(
        conn,
        "/payments/getPaymentSession",
        _get_body(payment_session),
        {USER_HEADER: payment_session.user_id},
    )
    assert ok == 200


def test_oversize_body_is_refused_without_reading_it(emulator: PaymentsEmulator) -> None:
    parts = urlsplit(emulator.endpoint_url)
    with socket.create_connection((parts.hostname or "", parts.port or 0), timeout=5) as sock:
        sock.sendall(
            b"POST /payments/getPaymentSession HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 99999999999\r\n\r\n{"
        )
        reply = sock.makefile("rb").read()  # the server answers, then closes
    head = reply.split(b"\r\n\r\n", 1)[0].decode()
    assert head.startswith("HTTP/1.1 413")
    assert "RequestEntityTooLargeException" in head
    assert "Connection: close" in head


@pytest.mark.parametrize(
    "headers",
    [
        b"Content-Length: -5\r\n",
        b"Content-Length: abc\r\n",
        b"Transfer-Encoding: chunked\r\n",
    ],
)
def test_broken_framing_is_answered_and_closed(emulator: PaymentsEmulator, headers: bytes) -> None:
    parts = urlsplit(emulator.endpoint_url)
    with socket.create_connection((parts.hostname or "", parts.port or 0), timeout=5) as sock:
        sock.sendall(
            b"POST /payments/getPaymentSession HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n"
        )
        reply = sock.makefile("rb").read()
    assert reply.startswith(b"HTTP/1.1 400")
    assert b"SerializationException" in reply


def test_garbage_request_line_does_not_kill_the_server(emulator: PaymentsEmulator) -> None:
    parts = urlsplit(emulator.endpoint_url)
    with socket.create_connection((parts.hostname or "", parts.port or 0), timeout=5) as sock:
        sock.sendall(b"\x16\x03\x01 garbage\r\n\r\n")
        sock.makefile("rb").read()
    made = emulator.create_session("1.00")
    client = emulator.client()
    got = client.get_payment_session(
        paymentManagerArn=made.payment_manager_arn,
        paymentSessionId=made.payment_session_id,
        userId=made.user_id,
    )
    assert got["paymentSession"]["paymentSessionId"] == made.payment_session_id


def test_bearer_token_subject_is_the_user(
    conn: http.client.HTTPConnection, payment_session: PaymentSessionFixture
) -> None:
    def b64(data: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    token = f"{b64({'alg': 'none'})}.{b64({'sub': payment_session.user_id})}.sig"
    status, _, body = _post(
        conn,
        "/payments/getPaymentSession",
        _get_body(payment_session),
        {"Authorization": f"Bearer {token}"},
    )
    assert status == 200
    assert body["paymentSession"]["userId"] == payment_session.user_id  # type: ignore[index]


def test_epoch_timestamp_format_is_parsed_by_botocore_too() -> None:
    with PaymentsEmulator(timestamp_format="epoch", clock=lambda: 1_800_000_000.25) as emulator:
        made = emulator.create_session("1.00")
        got = emulator.client().get_payment_session(
            paymentManagerArn=made.payment_manager_arn,
            paymentSessionId=made.payment_session_id,
            userId=made.user_id,
        )["paymentSession"]
    assert got["createdAt"].timestamp() == 1_800_000_000.25


def test_concurrent_raw_payments_without_client_token_never_overspend(
    emulator: PaymentsEmulator,
) -> None:
    made = emulator.create_session("1.00")
    body = json.dumps(
        {
            "paymentManagerArn": made.payment_manager_arn,
            "paymentSessionId": made.payment_session_id,
            "paymentInstrumentId": made.payment_instrument_id,
            "paymentType": "CRYPTO_X402",
            "paymentInput": x402_payment_input("0.30"),
        }
    )
    parts = urlsplit(emulator.endpoint_url)

    def pay(_: int) -> int:
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)
        try:
            return _post(connection, "/payments/processPayment", body, {USER_HEADER: "user-1"})[0]
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(pay, range(10)))
    assert sorted(statuses) == [200] * 3 + [400] * 7
    assert str(emulator.available(made.payment_session_id)) == "0.10"


def _exchange(emulator: PaymentsEmulator, request: bytes) -> bytes:
    """Send raw bytes and read until the server closes (a 5 s timeout fails the test)."""
    parts = urlsplit(emulator.endpoint_url)
    with socket.create_connection((parts.hostname or "", parts.port or 0), timeout=5) as sock:
        sock.sendall(request)
        return sock.makefile("rb").read()


POST = b"POST /payments/getPaymentSession HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


@pytest.mark.parametrize(
    ("request_", "status"),
    [
        pytest.param(POST + b"Content-Length: \xb2\r\n\r\n{}", b"400", id="superscript two"),
        pytest.param(POST + b"Content-Length: \xb9\xb3\r\n\r\n{}", b"400", id="superscripts"),
        pytest.param(POST + b"Content-Length: -1\r\n\r\n{}", b"400", id="negative"),
        pytest.param(POST + b"Content-Length: +2\r\n\r\n{}", b"400", id="plus sign"),
        pytest.param(POST + b"Content-Length: 2 2\r\n\r\n{}", b"400", id="two numbers"),
        pytest.param(POST + b"Content-Length: \r\n\r\n{}", b"400", id="empty"),
        pytest.param(
            POST + b"Content-Length: 2\r\nContent-Length: 7\r\n\r\n{}", b"400", id="conflicting"
        ),
        pytest.param(POST + b"Content-Length: " + b"9" * 30 + b"\r\n\r\n", b"413", id="huge"),
        pytest.param(
            POST + b"Content-Length: " + b"9" * 5000 + b"\r\n\r\n", b"413", id="past int limit"
        ),
        pytest.param(b"GET /\r\n", b"400", id="HTTP/0.9 request line alone"),
        pytest.param(b"GET /\r\n\r\n", b"400", id="HTTP/0.9 GET"),
        pytest.param(b"GET /payments/getPaymentSession\r\n\r\n", b"400", id="HTTP/0.9 route"),
        pytest.param(b"POST /payments/getPaymentSession\r\n\r\n", b"400", id="HTTP/0.9 POST"),
        pytest.param(b"GET\r\n\r\n", b"400", id="method alone"),
        pytest.param(b"GET / HTTP/1.1 x\r\n\r\n", b"400", id="four words"),
        pytest.param(b"GET / SPDY/3\r\n\r\n", b"400", id="not HTTP"),
    ],
)
def test_malformed_framing_is_refused_and_closed_without_a_traceback(
    emulator: PaymentsEmulator,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    request_: bytes,
    status: bytes,
) -> None:
    reply = _exchange(emulator, request_)  # returns once the server has closed the connection
    assert reply.startswith(b"HTTP/1.1 " + status)
    head = reply.split(b"\r\n\r\n", 1)[0]
    assert b"Connection: close" in head
    assert "Traceback" not in capfd.readouterr().err
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    made = emulator.create_session("1.00")  # and the server still serves
    assert emulator.available(made.payment_session_id) is not None


def test_a_body_shorter_than_its_content_length_is_refused(
    emulator: PaymentsEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    parts = urlsplit(emulator.endpoint_url)
    with socket.create_connection((parts.hostname or "", parts.port or 0), timeout=5) as sock:
        sock.sendall(POST + b"Content-Length: 10\r\n\r\n{}")
        sock.shutdown(socket.SHUT_WR)  # the client gives up after two bytes
        reply = sock.makefile("rb").read()
    assert reply.startswith(b"HTTP/1.1 400")
    assert b"ended before its Content-Length" in reply
    assert b"SerializationException" in reply
    assert "Traceback" not in capfd.readouterr().err
