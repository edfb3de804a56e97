"""A pool of guards: one :class:`~spendguard.SpendGuard` per payment session, made on demand.

A service with many end users has many AgentCore payment sessions. :class:`GuardPool` hands out
the guard of ``(payment_manager_arn, payment_session_id, user_id, agent_name)``, making it the
first time and keeping it while it is used, and gives every guard the same boto3 client (one
bounded connection pool) and the same ledger::

    pool = GuardPool(region_name="us-east-1")
    guard = pool.get(payment_manager_arn, payment_session_id, user_id="user-1")

Adapters take a resolver instead of a guard, e.g.
``lambda ctx: pool.get(ARN, ctx.session_id, user_id=ctx.user_id)``.

Guards live in a ``cachetools.TLRUCache``: an entry lasts ``idle`` seconds after its last
``get``, never past its session's expiry, and the least recently used goes first when more
than ``maxsize`` are kept. Eviction never loses money:

* holds and charges live in the shared ledger, keyed by session, not in the guard: a guard
  made again for the same session sees them;
* a guard with holds in flight is *pinned*: kept outside the cache, and handed out as the same
  object, until every hold is settled (or its lease lapses, when the ledger counts it spent);
* a book goes only once its session has expired: the pool tells a ledger that has
  ``forget_expired`` (:class:`~spendguard.InMemoryLedger` does) of each guard it evicts, and
  the ledger drops the session's book after the expiry, once no hold is open.

Thread- and task-safe. :meth:`GuardPool.get` does no I/O (the guard reads its session on first
use), so it may be called on an event loop; a burst of first calls for one session, from
threads or tasks, gets one guard and so one ``GetPaymentSession``.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from cachetools import TLRUCache

from spendguard._aws import check_aws_options, default_client
from spendguard._cache import Freshness
from spendguard._checks import check_seconds, check_settlement, check_text
from spendguard._errors import InvalidArgumentError
from spendguard._guard import SpendGuard
from spendguard._hold import Hold, ReleaseOn
from spendguard._ledger import Ledger, Settlement
from spendguard._memory_ledger import InMemoryLedger
from spendguard._money import Money
from spendguard._session import PaymentSessionClient, SessionSnapshot
from spendguard.policies import Mode, Policies

if TYPE_CHECKING:
    from spendguard.events import DecisionSink

__all__ = ["GuardKey", "GuardPool"]

#: What a pooled guard is found by: ARN, session id, user id, agent name.
GuardKey = tuple[str, str, str | None, str | None]

_PROBE_ARN, _PROBE_ID = "arn:probe", "payment-session-probe"

#: Connections of the shared client by default (botocore's own default is 10).
MAX_POOL_CONNECTIONS = 32


def _monotonic() -> float:
    return time.monotonic()


class GuardPool:
    """Hands out one :class:`~spendguard.SpendGuard` per payment session, sharing a client
    and a ledger; see the module documentation for the eviction rule.

    Args:
        client: Anything with boto3's ``get_payment_session``, shared by every guard. By
            default one ``bedrock-agentcore`` client is made on first use, as
            :class:`~spendguard.SpendGuard` makes its own, from ``boto3_session``,
            ``region_name`` and ``boto_client_config``, with at most
            ``max_pool_connections`` connections.
        region_name: The AWS region of the default client.
        boto3_session: A ``boto3.session.Session`` for the default client.
        boto_client_config: A ``botocore.config.Config`` merged over the defaults.
        max_pool_connections: Connections the default client keeps open at most.
        ledger: The ledger of every guard: one :class:`~spendguard.InMemoryLedger` by
            default; a ``RedisLedger`` to share sessions with other processes.
        maxsize: Guards kept in the cache at most (pinned guards come on top).
        idle: Seconds a guard is kept after its last :meth:`get`.
        settlement: Default settlement of every guard's charges.
        freshness: Cache lifetime rules of every guard.
        hold_lease: Seconds after which an unsettled hold lapses into a charge.
        currency: The sessions' currency.
        policies: Spend policies of every guard (see :mod:`spendguard.policies`); their state
            lives in the ledger, by session, so it survives eviction too.
        mode: ``"enforce"`` or ``"shadow"`` for every guard. A shadow guard's own book of what
            it would have held is the guard's, and goes with it when it is evicted.
        sinks: Where every guard's decision records go (see :mod:`spendguard.events`).
        clock: The wall clock of every guard, epoch seconds (tests).
        timer: The monotonic clock of the pool and every guard (tests).

    Raises:
        InvalidArgumentError: An argument is of the wrong kind or out of range.
    """

    def __init__(
        self,
        *,
        client: PaymentSessionClient | None = None,
        region_name: str | None = None,
        boto3_session: Any = None,
        boto_client_config: Any = None,
        max_pool_connections: int = MAX_POOL_CONNECTIONS,
        ledger: Ledger | None = None,
        maxsize: int = 10_000,
        idle: float = 900.0,
        settlement: Settlement = "session",
        freshness: Freshness | None = None,
        hold_lease: float = 900.0,
        currency: str = "USD",
        policies: Policies | None = None,
        mode: Mode = "enforce",
        sinks: Sequence[DecisionSink] | None = None,
        clock: Callable[[], float] | None = None,
        timer: Callable[[], float] | None = None,
    ) -> None:
        check_aws_options(client, region_name, boto3_session, boto_client_config)
        _check_count("max_pool_connections", max_pool_connections)
        _check_count("maxsize", maxsize)
        self._idle = check_seconds("idle", idle)
        check_settlement(settlement)
        check_seconds("hold_lease", hold_lease)
        Money.zero(currency)  # validates the code
        if freshness is not None and not isinstance(freshness, Freshness):
            raise InvalidArgumentError(
                f"freshness must be a Freshness, got {freshness!r}", argument="freshness"
            )
        for name, fn in (("clock", clock), ("timer", timer)):
            if fn is not None and not callable(fn):
                raise InvalidArgumentError(f"{name} must be callable, got {fn!r}", argument=name)
        if ledger is not None and not all(
            callable(getattr(ledger, name, None))
            for name in ("reserve", "commit", "release", "totals")
        ):
            raise InvalidArgumentError(
                f"ledger must implement reserve, commit, release and totals, got {ledger!r}",
                argument="ledger",
            )
        self._timer = timer or _monotonic
        self._ledger: Ledger = ledger if ledger is not None else InMemoryLedger()
        self._client = _SharedClient(
            client, (region_name, boto3_session, boto_client_config), max_pool_connections
        )
        self._options: dict[str, Any] = {
            "ledger": self._ledger,
            "settlement": settlement,
            "freshness": freshness,
            "hold_lease": hold_lease,
            "currency": currency,
            "policies": policies,
            "mode": mode,
            "sinks": sinks,
            "clock": clock,
            "timer": self._timer,
        }
        # Checks every guard option the way each guard will, once; makes no request.
        SpendGuard(_PROBE_ARN, _PROBE_ID, client=self._client, **self._options)
        self._lock = threading.Lock()
        forget = getattr(self._ledger, "forget_expired", None)
        self._forget: Callable[[str, float, float], object] | None = (
            forget if callable(forget) else None
        )
        self._cache = _GuardCache(maxsize, self._expiry, self._timer, self._retire)
        self._pinned: dict[GuardKey, _PooledGuard] = {}
        self._leases: list[tuple[float, int, _PooledGuard, str]] = []
        self._order = itertools.count()

    @property
    def ledger(self) -> Ledger:
        """The ledger every guard of the pool shares."""
        return self._ledger

    @property
    def pinned(self) -> int:
        """How many guards are pinned by holds in flight."""
        with self._lock:
            self._lapse(self._timer())
            return len(self._pinned)

    def __len__(self) -> int:
        """Guards kept: cached or pinned."""
        with self._lock:
            now = self._timer()
            self._lapse(now)
            self._cache.expire(now)
            return len(self._pinned) + sum(1 for key in self._cache if key not in self._pinned)

    def get(
        self,
        payment_manager_arn: str,
        payment_session_id: str,
        *,
        user_id: str | None = None,
        agent_name: str | None = None,
    ) -> SpendGuard:
        """The guard of a payment session, made on first use; never does I/O.

        Args:
            payment_manager_arn: The payment manager's ARN.
            payment_session_id: The payment session's id.
            user_id: The payments user id (sent as the user id header).
            agent_name: The agent name (sent as the agent name header).

        Returns:
            The session's guard: the same object while it is kept.

        Raises:
            InvalidArgumentError: An argument is empty or not a string (nothing changes).
        """
        check_text("payment_manager_arn", payment_manager_arn)
        check_text("payment_session_id", payment_session_id)
        check_text("user_id", user_id, optional=True)
        check_text("agent_name", agent_name, optional=True)
        key: GuardKey = (payment_manager_arn, payment_session_id, user_id, agent_name)
        with self._lock:
            self._lapse(self._timer())
            guard = self._pinned.get(key) or self._cache.get(key)
            if guard is None:
                guard = _PooledGuard(self, key, client=self._client, **self._options)
            if key not in self._pinned:
                self._keep(key, guard)  # (re)starts its idle time
            return guard

    async def aget(
        self,
        payment_manager_arn: str,
        payment_session_id: str,
        *,
        user_id: str | None = None,
        agent_name: str | None = None,
    ) -> SpendGuard:
        """:meth:`get`, then read the session in a worker thread if the guard has none fresh.

        Concurrent calls for one session share one read; the threads are those of the event
        loop's default executor, so their number stays bounded however many tasks wait.

        Raises:
            InvalidArgumentError: An argument is empty or not a string.
            SessionError: The session could not be read.
        """
        guard = self.get(
            payment_manager_arn, payment_session_id, user_id=user_id, agent_name=agent_name
        )
        await guard._asession()
        return guard

    def __repr__(self) -> str:
        return f"GuardPool(guards={len(self)}, pinned={self.pinned})"

    # -- eviction --------------------------------------------------------------------------

    def _expiry(self, key: GuardKey, guard: _PooledGuard, now: float) -> float:
        until = now + self._idle
        snapshot = guard._cache.newest
        return until if snapshot is None else min(until, snapshot.expires_mono)

    def _pin(self, guard: _PooledGuard, hold_id: str, deadline: float) -> None:
        with self._lock:
            guard._open.add(hold_id)
            self._pinned.setdefault(guard._pool_key, guard)
            heapq.heappush(self._leases, (deadline, next(self._order), guard, hold_id))

    def _unpin(self, guard: _PooledGuard, hold_id: str) -> None:
        with self._lock:
            guard._open.discard(hold_id)
            self._release_pin(guard)

    def _release_pin(self, guard: _PooledGuard) -> None:
        if guard._open or self._pinned.get(guard._pool_key) is not guard:
            return
        del self._pinned[guard._pool_key]
        if guard._pool_key not in self._cache:
            self._keep(guard._pool_key, guard)  # kept for another idle period

    def _keep(self, key: GuardKey, guard: _PooledGuard) -> None:
        self._cache[key] = guard
        if key not in self._cache:  # its session expired: the cache did not keep it
            self._retire(guard)

    def _retire(self, guard: _PooledGuard) -> None:
        # A guard leaves the cache. Once its session expires no guard can spend from it, so
        # the ledger may drop the session's book then (it keeps any hold still open).
        snapshot = guard._cache.newest
        if self._forget is None or snapshot is None or guard._pool_key in self._pinned:
            return  # no book to drop, or a pinned guard (retired when unpinned)
        self._forget(guard._key, snapshot.expires_mono, self._timer())

    def _lapse(self, now: float) -> None:
        # A hold whose lease ran out is counted spent by the ledger: it pins nothing more.
        while self._leases and self._leases[0][0] <= now:
            _, _, guard, hold_id = heapq.heappop(self._leases)
            if hold_id in guard._open:
                guard._open.discard(hold_id)
                self._release_pin(guard)


class _PooledGuard(SpendGuard):
    """A guard that tells its pool when it holds money and when the holds settle."""

    def __init__(self, pool: GuardPool, key: GuardKey, **options: Any) -> None:
        super().__init__(key[0], key[1], user_id=key[2], agent_name=key[3], **options)
        self._pool = pool
        self._pool_key = key
        self._open: set[str] = set()  # ids of unsettled holds, guarded by the pool's lock

    def _hold(
        self,
        snap: SessionSnapshot,
        money: Money,
        settlement: Settlement | None,
        release_on: ReleaseOn = (),
        tool: str | None = None,
        lease: float | None = None,
    ) -> Hold:
        hold = super()._hold(snap, money, settlement, release_on, tool, lease)
        # Pinned for the hold's own lease: a hold awaiting approval may outlive hold_lease.
        self._pool._pin(self, hold.id, self._timer() + (self._lease if lease is None else lease))
        return hold

    def _settle(self, hold: Hold, *args: Any, **kwargs: Any) -> None:
        super()._settle(hold, *args, **kwargs)
        self._pool._unpin(self, hold.id)


class _GuardCache(TLRUCache[GuardKey, _PooledGuard]):
    """The pool's TLRU cache, telling the pool of every guard it evicts or expires."""

    def __init__(
        self,
        maxsize: int,
        ttu: Callable[[GuardKey, _PooledGuard, float], float],
        timer: Callable[[], float],
        retire: Callable[[_PooledGuard], None],
    ) -> None:
        super().__init__(maxsize, ttu, timer=timer)
        self._retire = retire

    def popitem(self) -> tuple[GuardKey, _PooledGuard]:
        key, guard = super().popitem()
        self._retire(guard)
        return key, guard

    def expire(self, time: float | None = None) -> list[tuple[GuardKey, _PooledGuard]]:
        expired = super().expire(time)
        for _, guard in expired:
            self._retire(guard)
        return expired


class _SharedClient:
    """The pool's one client, made on first use: a burst of first reads makes one."""

    def __init__(
        self,
        client: PaymentSessionClient | None,
        options: tuple[str | None, Any, Any],
        connections: int,
    ) -> None:
        self._client = client
        self._options = options
        self._connections = connections
        self._lock = threading.Lock()

    def _connect(self) -> PaymentSessionClient:
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    region, session, config = self._options
                    self._client = default_client(region, session, _bounded(config, self))
                client = self._client
        return client

    def get_payment_session(self, **kwargs: Any) -> Any:
        return self._connect().get_payment_session(**kwargs)


def _bounded(config: Any, shared: _SharedClient) -> Any:
    from botocore.config import Config  # noqa: PLC0415 - only when a client is made

    bound = Config(max_pool_connections=shared._connections)
    return bound if config is None else bound.merge(config)


def _check_count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(f"{name} must be a positive int, got {value!r}", argument=name)
    return value
