"""A paid API on 127.0.0.1 for the official SDK's integrations to call, and pay, end to end.

``seller`` answers every request with the 402 it was told to ask (``seller.asks(...)``)
until a request carries a payment for that challenge: an x402 ``X-PAYMENT`` /
``PAYMENT-SIGNATURE`` signing the amount asked, or an MPP ``Authorization: Payment``
credential for the challenge's id. Then it answers 200 with the data. It records every
request's headers.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

DATA = {"data": "the paid data"}


@dataclass
class Seller:
    """The paid API's script and what it saw."""

    url: str = ""
    challenge: dict[str, Any] = field(default_factory=dict)
    requests: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def asks(self, challenge: dict[str, Any]) -> None:
        """Answer unpaid requests with ``challenge`` (``{"statusCode", "headers", "body"}``)."""
        self.challenge = challenge

    def paid(self) -> list[dict[str, str]]:
        """The requests that carried a payment the seller accepted."""
        return [h for h in self.requests if self.accepts(h)]

    def accepts(self, headers: dict[str, str]) -> bool:
        """Whether ``headers`` pay for the current challenge."""
        try:
            if "authorization" in headers:
                return _mpp_pays(headers["authorization"], self.challenge)
            proof = headers.get("x-payment") or headers.get("payment-signature")
            return proof is not None and _x402_pays(proof, self.challenge)
        except (ValueError, KeyError, TypeError, binascii.Error):
            return False


def _decode(text: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


def _x402_pays(proof: str, challenge: dict[str, Any]) -> bool:
    signed = json.loads(base64.b64decode(proof))
    payload = signed["payload"]
    value = (
        payload["permit2Authorization"]["permitted"]["amount"]
        if "permit2Authorization" in payload
        else payload["authorization"]["value"]
    )
    if signed["x402Version"] == 1:
        accepts = challenge["body"]["accepts"]
        return value in {a["maxAmountRequired"] for a in accepts}
    required = json.loads(base64.b64decode(challenge["headers"]["PAYMENT-REQUIRED"]))
    return signed["accepted"] in required["accepts"] and value == signed["accepted"]["amount"]


def _mpp_pays(authorization: str, challenge: dict[str, Any]) -> bool:
    scheme, _, token = authorization.partition(" ")
    credential = _decode(token)
    offered = challenge["headers"]["WWW-Authenticate"]
    return scheme == "Payment" and f'id="{credential["challenge"]["id"]}"' in offered


def _handler(seller: Seller) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            with seller.lock:
                seller.requests.append(headers)
            if seller.accepts(headers):
                self._send(200, {"content-type": "application/json"}, DATA)
            else:
                challenge = seller.challenge
                self._send(
                    402,
                    {"content-type": "application/json", **challenge["headers"]},
                    challenge["body"],
                )

        do_POST = do_GET

        def _send(self, status: int, headers: dict[str, str], body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def seller(monkeypatch: pytest.MonkeyPatch) -> Iterator[Seller]:
    """A paid API on a free port of 127.0.0.1, for this test."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")  # the SDK's httpx honours proxies
    made = Seller()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(made))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    made.url = f"http://127.0.0.1:{server.server_address[1]}/data"
    try:
        yield made
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
