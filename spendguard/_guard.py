"""SpendGuard: decide whether a charge fits the payment session, and hold money for it."""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import secrets
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from time import perf_counter
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from spendguard._aws import check_aws_options, default_client
from spendguard._cache import Freshness, SessionCache
from spendguard._checks import check_release_on, check_seconds, check_settlement, check_text
from spendguard._decorator import charges
from spendguard._emit import CALL_KEY, Emitter, Recorder
from spendguard._errors import (
    BudgetExceededError,
    InvalidArgumentError,
    LedgerUnavailableError,
    SessionError,
    SessionExpiredError,
    SpendGuardError,
)
from spendguard._guard_support import (
    _check_callables,
    _check_policies,
    _Claim,
    _lease,
    _LedgerBoundary,
    _monotonic,
    _receipt_time,
    _release_quietly,
    _tool,
    _utc,
    _wall_clock,
)
from spendguard._hold import Hold, ReleaseOn, Reservation
from spendguard._judging import _Judging
from spendguard._ledger import Ledger, LedgerTotals, Settlement
from spendguard._memory_ledger import InMemoryLedger
from spendguard._money import Amount, Money
from spendguard._report import Decision, GuardSnapshot
from spendguard._session import PaymentSessionClient, SessionSnapshot, fetch_session, parse_session
from spendguard.policies import Mode, Policies, WouldBlock

if TYPE_CHECKING:
    from spendguard.approval import Approvals
    from spendguard.events import DecisionSink

__all__ = ["Decision", "GuardSnapshot", "SpendGuard"]

_log = logging.getLogger("spendguard")
P = ParamSpec("P")
R = TypeVar("R")
# What shadow mode lets through: the refusals of enforcement, never a caller's bad argument.
_REFUSALS = (BudgetExceededError, SessionExpiredError, SessionError, LedgerUnavailableError)
_SHADOW_KEPT = 1000


class SpendGuard(_Judging):
    """Guards one AgentCore payment session against overspending.

    The guard reads the session with ``GetPaymentSession`` (cached, see :class:`Freshness`),
    and admits a charge only if it fits in ``server available - held - committed but not yet
    reflected``, computed with exact Decimals. Holds keep concurrent calls from spending the
    same money.

    Args:
        payment_manager_arn: The payment manager's ARN.
        payment_session_id: The payment session's id.
        user_id: Passed to the service as the payments user id header.
        agent_name: Passed to the service as the agent name header.
        client: Anything with boto3's ``get_payment_session``. By default a
            ``bedrock-agentcore`` client is made on first use from ``boto3_session`` (or a new
            ``boto3.session.Session()``), ``region_name`` and ``boto_client_config``, with
            timeouts that keep a decision within 5 s (1 s connect, 1 s read, 2 attempts).
        region_name: The AWS region of the default client (else boto3's configuration:
            ``AWS_DEFAULT_REGION``, the profile's region).
        boto3_session: A ``boto3.session.Session`` for the default client (profiles,
            credentials), as the official ``PaymentManager`` takes.
        boto_client_config: A ``botocore.config.Config`` merged over the defaults.
        ledger: Where holds and charges live; an :class:`InMemoryLedger` by default.
        settlement: Default settlement of charges. ``"session"`` (default): paid through
            this AgentCore session (``ProcessPayment``, or the official SDK), so deducted until
            a reading shows the server absorbed it. ``"external"``: paid elsewhere, where the
            session never sees it (a paid API billed separately): deducted for the session's
            life.
        clock: The wall clock, epoch seconds (default ``time.time``, looked up at each call).
            Used only to compare with the server's times when a response has no ``Date``.
        timer: The monotonic clock every duration is measured on: freshness, expiry, hold
            leases (default ``time.monotonic``, looked up at each call). A wall clock that
            steps (NTP) never extends a reading's life nor lapses a live hold.
        freshness: Cache lifetime rules.
        hold_lease: Seconds after which an unsettled hold lapses into a charge.
        currency: The session's currency (the service speaks USD).
        policies: Spend policies every charge must also fit (per-call maximums, tool caps,
            rolling windows, soft thresholds), see :mod:`spendguard.policies`. None (default):
            the session limit alone. The ledger must implement ``admit`` (both of
            spendguard's do).
        mode: ``"enforce"`` (default) blocks what does not fit. ``"shadow"`` runs the same
            checks, policies included, but never blocks: a charge that would be refused is
            logged and recorded (:attr:`would_block`) and goes ahead, and the guard keeps its
            own book (what enforcement would have held) apart from the session's, so it
            holds nothing there.
        sinks: Where decision records go (see :mod:`spendguard.events`); default one
            :class:`~spendguard.events.LoggingSink`. A list replaces the default: add a
            ``LoggingSink()`` to keep logging; ``[]`` records nothing.

    Raises:
        ValueError: An argument is empty or of the wrong kind.
    """

    def __init__(
        self,
        payment_manager_arn: str,
        payment_session_id: str,
        *,
        user_id: str | None = None,
        agent_name: str | None = None,
        client: PaymentSessionClient | None = None,
        region_name: str | None = None,
        boto3_session: Any = None,
        boto_client_config: Any = None,
        ledger: Ledger | None = None,
        settlement: Settlement = "session",
        clock: Callable[[], float] | None = None,
        timer: Callable[[], float] | None = None,
        freshness: Freshness | None = None,
        hold_lease: float = 900.0,
        currency: str = "USD",
        policies: Policies | None = None,
        mode: Mode = "enforce",
        sinks: Sequence[DecisionSink] | None = None,
    ) -> None:
        check_text("payment_manager_arn", payment_manager_arn)
        check_text("payment_session_id", payment_session_id)
        check_text("user_id", user_id, optional=True)
        check_text("agent_name", agent_name, optional=True)
        check_settlement(settlement)
        hold_lease = check_seconds("hold_lease", hold_lease)
        _check_callables(clock=clock, timer=timer)
        check_aws_options(client, region_name, boto3_session, boto_client_config)
        if ledger is not None and not all(
            callable(getattr(ledger, name, None))
            for name in ("reserve", "commit", "release", "totals")
        ):
            raise InvalidArgumentError(
                f"ledger must implement reserve, commit, release and totals, got {ledger!r}",
                argument="ledger",
            )
        if freshness is not None and not isinstance(freshness, Freshness):
            raise InvalidArgumentError(
                f"freshness must be a Freshness, got {freshness!r}", argument="freshness"
            )
        Money.zero(currency)  # validates the code
        _check_policies(policies, mode, ledger, currency)
        self._request = {
            "paymentManagerArn": payment_manager_arn,
            "paymentSessionId": payment_session_id,
        }
        if user_id is not None:
            self._request["userId"] = user_id
        if agent_name is not None:
            self._request["agentName"] = agent_name
        self._client = client
        self._client_options = (region_name, boto3_session, boto_client_config)
        self._ledger: Ledger = ledger if ledger is not None else InMemoryLedger()
        # Exactly the in-memory ledger answers in microseconds; anything else may do I/O.
        self._local_ledger = type(self._ledger) is InMemoryLedger
        self._settlement: Settlement = settlement
        self._clock = clock or _wall_clock
        self._timer = timer or _monotonic
        self._freshness = freshness or Freshness()
        self._cache = SessionCache(self._freshness, self._timer)
        self._lease = float(hold_lease)
        self._currency = currency
        self._key = f"{payment_manager_arn}/{payment_session_id}"
        self._policies = policies
        self._mode: Mode = mode
        if mode == "shadow":
            # Its own book: what enforcement would hold must not block enforcing guards.
            self._key += "#shadow"
        self._shadow_lock = threading.Lock()
        self._would_block: collections.deque[WouldBlock] = collections.deque(maxlen=_SHADOW_KEPT)
        self._would_block_counts: collections.Counter[str] = collections.Counter()
        self._ledger_boundary = _LedgerBoundary(payment_session_id)
        self._ids = itertools.count(1)
        self._token = secrets.token_hex(6)
        self._rec = Recorder(Emitter(sinks), payment_session_id, currency, self._clock)
        self._seen: SessionSnapshot | None = None  # the reading the ledger last observed
        self._seen_lock = threading.Lock()

    @property
    def payment_session_id(self) -> str:
        """The guarded payment session's id."""
        return self._request["paymentSessionId"]

    @property
    def currency(self) -> str:
        """The session's currency."""
        return self._currency

    @property
    def mode(self) -> Mode:
        """``"enforce"`` or ``"shadow"``."""
        return self._mode

    @property
    def policies(self) -> Policies | None:
        """The guard's spend policies, None when there are none."""
        return self._policies

    @property
    def would_block(self) -> tuple[WouldBlock, ...]:
        """In shadow mode, the latest charges (up to 1,000) it let through but would have
        blocked, oldest first; see :attr:`would_block_counts` for every one."""
        with self._shadow_lock:
            return tuple(self._would_block)

    @property
    def would_block_counts(self) -> dict[str, int]:
        """In shadow mode, how many charges each rule would have blocked."""
        with self._shadow_lock:
            return dict(self._would_block_counts)

    # -- reading the session -------------------------------------------------------------

    def _connect(self) -> PaymentSessionClient:
        if self._client is None:
            self._client = default_client(*self._client_options)
        return self._client

    def _fetch(self) -> SessionSnapshot:
        started = perf_counter()
        try:
            response, fetched_at, fetched_mono, date = fetch_session(
                self._connect, self._request, self._clock, self._timer
            )
            snap = parse_session(
                response,
                session_id=self.payment_session_id,
                currency=self._currency,
                fetched_at=fetched_at,
                server_date=date,
                fetched_mono=fetched_mono,
                skew_tolerance=self._freshness.skew_tolerance,
            )
        except SessionError as exc:
            self._rec.session_failure(self._timer(), exc, perf_counter() - started)
            raise
        limit = None if snap.max_spend is None else snap.max_spend.amount
        seconds = perf_counter() - started
        self._rec.session_read(fetched_mono, snap.view.available, limit, seconds)
        return snap

    def _session(self) -> SessionSnapshot:
        return self._cache.get_or_fill(self._fetch)

    async def _offload(self, fn: Callable[..., R], *args: Any) -> R:
        # The in-memory ledger answers in microseconds; a shared ledger is a network round
        # trip, which must not stall the event loop.
        if self._local_ledger:
            return fn(*args)
        return await asyncio.to_thread(fn, *args)

    async def _asession(self) -> SessionSnapshot:
        cached = self._cache.get()
        if cached is not None:
            return cached
        return await asyncio.to_thread(self._session)

    def refresh(self) -> None:
        """Read the session again now, whatever the cache says.

        A failed read leaves the cached session and every hold as they were.

        Raises:
            SessionError: The session could not be read or parsed.
        """
        self._cache.put(self._fetch())

    def _totals(self, snap: SessionSnapshot, now: float) -> LedgerTotals:
        if snap is not self._seen:
            self._observe(snap, now)
        with self._ledger_boundary:
            return self._ledger.totals(self._key, snap.view, now)

    # -- decisions (judged in spendguard._judging) ---------------------------------------

    def _read(self, money: Money, tool: str | None) -> SessionSnapshot:
        try:
            return self._session()
        except SessionError as exc:
            self._rec.blocked(self._timer(), tool, exc, money.amount)
            raise

    async def _aread(self, money: Money, tool: str | None) -> SessionSnapshot:
        try:
            return await self._asession()
        except SessionError as exc:
            self._rec.blocked(self._timer(), tool, exc, money.amount)
            raise

    def _decide(self, snap: SessionSnapshot, money: Money, tool: str | None = None) -> Decision:
        error, available, _ = self._judge(snap, money, tool, self._timer())
        expired = error.expires_at if isinstance(error, SessionExpiredError) else None
        rule = None if error is None else error.rule
        return Decision(
            error is None, money, available, self.payment_session_id, expired, rule, tool
        )

    def check(self, amount: Amount, *, tool: str | None = None) -> Decision:
        """Say whether ``amount`` fits now, without holding anything.

        Args:
            amount: The proposed charge.
            tool: The tool (or action) the charge is for, recorded on the decision.

        Returns:
            The decision, with what is effectively available.

        Raises:
            InvalidAmountError: ``amount`` is not a valid amount.
            SessionError: The session could not be read (the caller should block).
        """
        money = Money.of(amount, self._currency)
        return self._decide(self._read(money, tool), money, tool)

    async def acheck(self, amount: Amount, *, tool: str | None = None) -> Decision:
        """Async :meth:`check`; the session is read in a worker thread when stale."""
        money = Money.of(amount, self._currency)
        return await self._offload(self._decide, await self._aread(money, tool), money, tool)

    # -- holds ---------------------------------------------------------------------------

    def _hold(
        self,
        snap: SessionSnapshot,
        money: Money,
        settlement: Settlement | None,
        release_on: ReleaseOn = (),
        tool: str | None = None,
        lease: float | None = None,
    ) -> Hold:
        kind = self._settlement if settlement is None else check_settlement(settlement)
        now = self._timer()
        hold_id = f"{self._token}-{next(self._ids)}"
        if not self._expired(snap, now) and lease is not None:
            # An explicit lease (a hold awaiting approval) never outlives the session.
            lease = min(lease, snap.expires_mono - now)
        held = (hold_id, kind, self._lease if lease is None else lease)
        error, _, crossed = self._judge(snap, money, tool, now, held)
        if error is not None:
            raise error
        self._cross(crossed)
        # The payment cannot have happened before the hold: a view updated after this time
        # (less the skew tolerance) may show it.
        evidence = snap.server_now(now) - self._freshness.skew_tolerance
        return Hold(self, hold_id, money, kind, evidence, release_on, tool, CALL_KEY.get())

    def _shadow(
        self,
        error: SpendGuardError,
        money: Money,
        settlement: Settlement | None,
        release_on: ReleaseOn,
        tool: str | None,
    ) -> Hold:
        """In shadow mode, record a refusal and let the call through; else raise it."""
        if self._mode != "shadow":
            raise error
        record = WouldBlock(error.rule, money, tool, _utc(self._clock()), error)
        with self._shadow_lock:
            self._would_block.append(record)
            self._would_block_counts[error.rule] += 1
        _log.warning(
            "shadow mode: would block %s%s in session %s (rule %s): %s",
            money,
            "" if tool is None else f" for tool {tool}",
            self.payment_session_id,
            error.rule,
            error,
        )
        kind = self._settlement if settlement is None else settlement
        hold_id = f"{self._token}-{next(self._ids)}"
        return Hold(self, hold_id, money, kind, 0.0, release_on, tool, recorded=False)

    def reserve(
        self,
        amount: Amount,
        *,
        settlement: Settlement | None = None,
        release_on: ReleaseOn = (),
        tool: str | None = None,
        lease: float | None = None,
    ) -> Hold:
        """Hold ``amount`` for a call about to run.

        Args:
            amount: The most the call may cost.
            settlement: Overrides the guard's default settlement for this charge.
            release_on: Exception types that, raised inside the hold's ``with`` block, mean
                the call spent nothing (the hold is released). Any other exception keeps the
                charge, since the paid action may have happened before it.
            tool: The tool (or action) the charge is for, kept on the hold.
            lease: Seconds after which this hold, if unsettled, lapses into a charge, instead
                of the guard's ``hold_lease`` (e.g. the time a person has to approve it);
                never past the session's expiry.

        Returns:
            The hold; use it as a context manager or settle it explicitly.

        Raises:
            InvalidAmountError: ``amount`` is not a valid amount.
            BudgetExceededError: The amount does not fit.
            SessionExpiredError: The session has expired.
            SessionFrozenError: An operator froze the session (also in shadow mode).
            SessionError: The session could not be read.
            LedgerUnavailableError: A shared ledger could not be reached.
        """
        money = Money.of(amount, self._currency)
        release_on = check_release_on(release_on)
        tool, lease = _tool(tool), _lease(lease)
        if settlement is not None:
            check_settlement(settlement)
        try:
            try:
                snap = self._session()
            except SessionError as exc:
                self._rec.blocked(self._timer(), tool, exc, money.amount)
                raise
            return self._hold(snap, money, settlement, release_on, tool, lease)
        except _REFUSALS as error:
            return self._shadow(error, money, settlement, release_on, tool)

    def areserve(
        self,
        amount: Amount,
        *,
        settlement: Settlement | None = None,
        release_on: ReleaseOn = (),
        tool: str | None = None,
        lease: float | None = None,
    ) -> Reservation:
        """Async :meth:`reserve`: ``await`` it, or use it directly with ``async with``.

        A reservation cancelled while it waits (e.g. by ``asyncio.wait_for``) leaves nothing
        held, even when a shared ledger's worker thread granted the hold meanwhile.

        Raises:
            The same errors as :meth:`reserve`, when awaited or entered.
        """
        money = Money.of(amount, self._currency)
        if settlement is not None:
            check_settlement(settlement)
        checked = (check_release_on(release_on), _tool(tool), _lease(lease))
        return Reservation(self._ashadowed(money, settlement, *checked))

    async def _ashadowed(
        self,
        money: Money,
        settlement: Settlement | None,
        release_on: ReleaseOn,
        tool: str | None,
        lease: float | None = None,
    ) -> Hold:
        try:
            return await self._areserve(money, settlement, release_on, tool, lease)
        except _REFUSALS as error:
            return self._shadow(error, money, settlement, release_on, tool)

    async def _areserve(
        self,
        money: Money,
        settlement: Settlement | None,
        release_on: ReleaseOn,
        tool: str | None,
        lease: float | None = None,
    ) -> Hold:
        snap = await self._aread(money, tool)
        if self._local_ledger:
            return self._hold(snap, money, settlement, release_on, tool, lease)
        claim = _Claim()

        def hold_unless_cancelled() -> Hold:
            hold = self._hold(snap, money, settlement, release_on, tool, lease)
            if not claim.deliver(hold):
                _release_quietly(hold)
            return hold

        work = asyncio.ensure_future(asyncio.to_thread(hold_unless_cancelled))
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            # Nobody awaits the worker now: retrieve its outcome so a refusal is not reported
            # as an exception never retrieved.
            work.add_done_callback(lambda done: done.cancelled() or done.exception())
            orphan = claim.cancel()
            if orphan is not None:  # granted, but its owner stopped waiting for it
                threading.Thread(target=_release_quietly, args=(orphan,), daemon=True).start()
            raise

    def _settle(self, hold: Hold, charge: Money | None, receipt: datetime | None) -> None:
        if not hold._recorded:
            return
        now = self._timer()
        evidence = hold._evidence if receipt is None else _receipt_time(receipt)
        started = perf_counter() if self._rec.timing else None
        try:
            with self._ledger_boundary:
                if charge is None:
                    found = self._ledger.release(self._key, hold.id, now)
                else:
                    found = self._ledger.commit(self._key, hold.id, charge.amount, evidence, now)
        except LedgerUnavailableError as exc:
            self._rec.ledger_failure(now, "release" if charge is None else "commit", exc, hold.tool)
            raise
        # A hold not found lapsed (its lease ran out): the ledger counts it spent in full, and
        # the "lapsed" record says so (the logging sink at WARNING).
        event = "lapsed" if not found else "released" if charge is None else "committed"
        if self._rec.wants(event):
            seconds = None if started is None else perf_counter() - started
            amount = None if charge is None else charge.amount
            self._rec.settled(now, hold, amount, found, seconds)

    # -- reporting -----------------------------------------------------------------------

    def snapshot(self) -> GuardSnapshot:
        """Report the budget as the guard sees it now (reads the session if stale).

        Raises:
            SessionError: The session could not be read.
        """
        return self._report(self._session())

    async def asnapshot(self) -> GuardSnapshot:
        """Async :meth:`snapshot`."""
        return await self._offload(self._report, await self._asession())

    def _report(self, snap: SessionSnapshot) -> GuardSnapshot:
        now = self._timer()
        totals = self._totals(snap, now)
        expired = self._expired(snap, now)

        def money(value: Any) -> Money:
            return Money(value, self._currency)

        return GuardSnapshot(
            session_id=self.payment_session_id,
            max_spend=snap.max_spend,
            server_available=money(totals.available),
            held=money(totals.held),
            pending_session=money(totals.unreflected),
            external=money(totals.external),
            effective_available=Money.zero(self._currency) if expired else money(totals.effective),
            expires_at=snap.expires_at,
            expired=expired,
            updated_at=snap.last_update,
            fetched_at=_utc(snap.fetched_at),
            fresh_until=_utc(self._clock() + max(0.0, (self._cache.fresh_until() or now) - now)),
        )

    # -- decorator -----------------------------------------------------------------------

    def charges(
        self,
        cost: Amount | Callable[..., Amount],
        *,
        settlement: Settlement | None = None,
        release_on: ReleaseOn = (),
        approvals: Approvals | None = None,
    ) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Decorate a sync or async function so every call is paid for from the budget.

        The cost is held before the call and committed when the call ends, whether it returns
        or raises: a paid API may take the money and then fail. Only a
        :class:`~spendguard.NothingSpentError` or an exception of ``release_on`` releases it.
        An over-budget call raises :class:`BudgetExceededError` and never runs.

        Args:
            cost: A fixed amount, or a callable taking the function's arguments and returning
                the amount.
            settlement: Settlement of these charges (default: the guard's).
            release_on: Exception types that mean the call spent nothing.
            approvals: Ask a person (:class:`spendguard.approval.Approvals`) before a call
                whose cost needs approval; the call's arguments are bound to the request. A
                rejection releases the hold and raises ``ApprovalRejectedError``.

        Returns:
            A decorator that keeps the function's signature and metadata.
        """
        return charges(self, cost, settlement, check_release_on(release_on), approvals)

    def __repr__(self) -> str:
        return f"SpendGuard(session={self.payment_session_id!r})"
