"""``PaymentsEmulator``: the local AgentCore payments server and its test controls."""

from __future__ import annotations

import functools
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from spendguard._errors import InvalidArgumentError
from spendguard.emulator._app import App, TimestampFormat
from spendguard.emulator._call import Env
from spendguard.emulator._errors import ApiError
from spendguard.emulator._faults import Faults
from spendguard.emulator._instruments import CHAINS, address, atomic
from spendguard.emulator._pricing import USDC_DECIMALS, parse_amount
from spendguard.emulator._server import WORKERS, EmulatorServer
from spendguard.emulator._state import (
    CONTEXT,
    InstrumentRecord,
    SessionRecord,
    Store,
    new_id,
    to_wire,
)

if TYPE_CHECKING:
    from mypy_boto3_bedrock_agentcore import BedrockAgentCoreClient

#: Payment manager ARN used when a test does not care which one.
DEFAULT_MANAGER_ARN = (
    "arn:aws:bedrock-agentcore:us-east-1:123456789012"
    ":payment-manager/spendguard-emulator-0123456789"
)
#: Payment connector of the wallets the emulator creates itself.
DEFAULT_CONNECTOR_ID = "emulator-connector-0123456789"
ENDPOINT_ENV_VAR = "AWS_ENDPOINT_URL_BEDROCK_AGENTCORE"


@functools.cache
def _boto3_session() -> boto3.Session:
    # One session for every emulator: its loader caches the service model, so clients
    # after the first are cheap to make.
    return boto3.Session(
        aws_access_key_id="emulator", aws_secret_access_key="emulator", region_name="us-east-1"
    )


@dataclass(frozen=True, slots=True)
class EmulatorSession:
    """A session created through :meth:`PaymentsEmulator.create_session`.

    Attributes:
        payment_manager_arn: The manager the session belongs to.
        payment_session_id: The session's id.
        user_id: The user who owns the session (send it as ``userId``).
        payment_instrument_id: An ACTIVE wallet of the same user, for ProcessPayment.
        budget: The session's ``maxSpendAmount`` (None: no limit).
        payment_connector_id: The wallet's connector (GetPaymentInstrumentBalance and
            DeletePaymentInstrument name it).
    """

    payment_manager_arn: str
    payment_session_id: str
    user_id: str
    payment_instrument_id: str
    budget: Decimal | None
    payment_connector_id: str = DEFAULT_CONNECTOR_ID


class PaymentsEmulator:
    """A local HTTP server speaking the AgentCore payments data-plane API.

    Use it as a context manager; it listens on a free loopback port::

        with PaymentsEmulator() as emulator:
            session = emulator.create_session(budget="10.00")
            client = emulator.client()
            client.get_payment_session(
                paymentManagerArn=session.payment_manager_arn,
                paymentSessionId=session.payment_session_id,
                userId=session.user_id,
            )

    Args:
        host: Interface to bind (loopback by default).
        port: Port to bind; 0 picks a free one.
        clock: The server's clock in epoch seconds; :meth:`advance` shifts it.
        timestamp_format: ``"iso8601"`` (what the model declares) or ``"epoch"``.
        asset_decimals: Decimals of the asset x402 amounts count (USDC: 6).
        max_body: Largest request body accepted, in bytes.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: Callable[[], float] = time.time,
        timestamp_format: TimestampFormat = "iso8601",
        asset_decimals: int = USDC_DECIMALS,
        max_body: int = 1024 * 1024,
        workers: int = WORKERS,
    ) -> None:
        """Configure the emulator; nothing listens until :meth:`start`.

        ``workers`` bounds the threads that answer requests which must wait (an injected
        delay, a client not reading its replies); idle connections never hold one.
        """
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise InvalidArgumentError(
                f"workers must be an int of at least 1, got {workers!r}", argument="workers"
            )
        self._workers = workers
        self._clock = clock
        self._offset = 0.0
        self._host, self._port = host, port
        self._app = App(self.now, timestamp_format, max_body, Env(Store(), asset_decimals))
        self._server: EmulatorServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def faults(self) -> Faults:
        """Fault injection (``fail``, ``delay``, ``drop``) and per-operation call counts."""
        return self._app.faults

    @property
    def endpoint_url(self) -> str:
        """``http://host:port`` of the running server."""
        if self._server is None:
            raise RuntimeError("the emulator is not running; call start() or use `with`")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> PaymentsEmulator:
        """Bind and serve in a background thread; returns ``self``."""
        if self._server is None:
            self._app.stopping.clear()
            self._server = EmulatorServer(
                (self._host, self._port), self._app, workers=self._workers
            )
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},  # so stop() returns quickly
                name="spendguard-emulator",
                daemon=True,
            )
            self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Block until :meth:`stop` is called (or ``timeout`` passes); Ctrl+C interrupts.

        Returns:
            Whether the emulator was stopped.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._app.stopping.wait(0.2):
            if deadline is not None and time.monotonic() >= deadline:
                return False
        return True

    def stop(self) -> None:
        """Stop serving and close every connection."""
        server, self._server = self._server, None
        if server is None:
            return
        self._app.stopping.set()
        if self._thread is not None:
            server.shutdown()
            self._thread.join()
            self._thread = None
        server.close_connections()
        server.server_close()

    def __enter__(self) -> PaymentsEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def now(self) -> float:
        """The server's current time: ``clock()`` plus every :meth:`advance`."""
        return self._clock() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the server's clock forward (e.g. past a session's expiry)."""
        self._offset += seconds

    def reset_clock(self) -> None:
        """Undo every :meth:`advance`."""
        self._offset = 0.0

    def reset(self) -> None:
        """Forget all sessions and instruments, clear faults and counters, undo advances."""
        self._app.env.store.clear()
        self.faults.clear()
        self.faults.reset_calls()
        self._offset = 0.0

    def client(self, config: Config | None = None) -> BedrockAgentCoreClient:
        """A boto3 ``bedrock-agentcore`` client for this emulator (dummy credentials).

        Args:
            config: botocore ``Config`` merged over the defaults (us-east-1).
        """
        merged = Config(region_name="us-east-1")
        merged = merged.merge(config) if config is not None else merged
        return _boto3_session().client(
            "bedrock-agentcore", endpoint_url=self.endpoint_url, config=merged
        )

    def create_session(
        self,
        budget: str | Decimal | None = "10.00",
        *,
        user_id: str = "user-1",
        expiry_minutes: int = 60,
        payment_manager_arn: str = DEFAULT_MANAGER_ARN,
        network: str = "ETHEREUM",
    ) -> EmulatorSession:
        """Create a session (and a wallet for the same user) directly in the server state.

        Args:
            budget: ``maxSpendAmount`` in USD; None creates a session without limits.
            user_id: Owner of the session.
            expiry_minutes: Lifetime (the service accepts 15 to 480).
            payment_manager_arn: Manager the session belongs to.
            network: Network of the wallet (``ETHEREUM`` or ``SOLANA``).
        """
        limit = None if budget is None else parse_amount(str(budget), "budget")
        now = self.now()
        record = SessionRecord(
            new_id("payment-session-"),
            payment_manager_arn,
            user_id,
            expiry_minutes,
            now,
            now,
            limit,
            limit,
            None if limit is None else now,
        )
        self._app.env.store.add_session(record)
        instrument = self.create_instrument(user_id, payment_manager_arn, network=network)
        return EmulatorSession(payment_manager_arn, record.session_id, user_id, instrument, limit)

    def create_instrument(
        self,
        user_id: str,
        payment_manager_arn: str = DEFAULT_MANAGER_ARN,
        *,
        network: str = "ETHEREUM",
    ) -> str:
        """Create an ACTIVE embedded wallet for ``user_id``; returns its instrument id."""
        instrument_id = new_id("payment-instrument-")
        seed = hashlib.sha256(instrument_id.encode()).hexdigest()
        wallet = {"network": network, "linkedAccounts": [], "walletAddress": address(network, seed)}
        record = InstrumentRecord(
            instrument_id,
            payment_manager_arn,
            user_id,
            DEFAULT_CONNECTOR_ID,
            "EMBEDDED_CRYPTO_WALLET",
            {"embeddedCryptoWallet": wallet},
            self.now(),
        )
        self._app.env.store.add_instrument(record)
        return instrument_id

    def fund(
        self, payment_instrument_id: str, amount: str | Decimal, *, chain: str = "BASE_SEPOLIA"
    ) -> Decimal:
        """Add ``amount`` USDC to a wallet's balance on ``chain``, as a faucet would.

        GetPaymentInstrumentBalance reports it; payments do not move it (nothing settles).

        Args:
            payment_instrument_id: The wallet.
            amount: USDC to add, e.g. ``"5.00"``.
            chain: A chain of the wallet's network (``BASE``, ``BASE_SEPOLIA`` or
                ``ETHEREUM`` for ETHEREUM wallets; ``SOLANA`` or ``SOLANA_DEVNET``).

        Returns:
            The wallet's new balance on ``chain``.

        Raises:
            KeyError: When the instrument does not exist.
            InvalidArgumentError: For a malformed amount, one finer than the asset's
                decimals, or a chain of another network.
        """
        decimals = self._app.env.decimals
        try:
            units = atomic(parse_amount(str(amount), "amount"), decimals)
        except (ApiError, ValueError) as exc:
            raise InvalidArgumentError(str(exc), argument="amount") from exc
        store = self._app.env.store
        with store.lock:
            record = store.instruments[payment_instrument_id]
            if chain not in CHAINS.get(record.network, ()):
                message = f"{chain} is not a chain of a {record.network} wallet"
                raise InvalidArgumentError(message, argument="chain")
            record.balances[chain] = record.balances.get(chain, 0) + units
            return Decimal(record.balances[chain]).scaleb(-decimals, CONTEXT)

    def available(self, payment_session_id: str) -> Decimal | None:
        """What the server says is left in the session, as clients see it (None: no limit).

        Raises:
            KeyError: When the session does not exist.
        """
        with self._app.env.store.lock:
            available = self._app.env.store.sessions[payment_session_id].available
        return None if available is None else Decimal(to_wire(available))

    def spend(self, payment_session_id: str, amount: str | Decimal) -> Decimal | None:
        """Debit the session server-side, as another spender would; returns what is left.

        Raises:
            KeyError: When the session does not exist.
            InvalidArgumentError: When ``amount`` is malformed or more than is available.
        """
        try:
            value = parse_amount(str(amount), "amount")
        except ApiError as exc:
            raise InvalidArgumentError(str(exc), argument="amount") from exc
        store = self._app.env.store
        with store.lock:
            record = store.sessions[payment_session_id]
            if record.available is not None and value > record.available:
                raise InvalidArgumentError(
                    f"{value} exceeds the {record.available} available", argument="amount"
                )
            record.debit(CONTEXT.plus(value), self.now())
        return self.available(payment_session_id)
