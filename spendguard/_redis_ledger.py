"""A ledger shared through Redis, for many processes spending from one payment session.

:class:`RedisLedger` implements the :class:`~spendguard._ledger.Ledger` protocol with the same
rules as :class:`~spendguard._memory_ledger.InMemoryLedger` (check and hold, commit, leases,
reconciliation); each method is one Lua script, so one atomic round trip, and reconciliation
runs inside the script against the state every process shares.

Money is exact. Lua numbers are doubles, so amounts never travel as numbers: an amount is
stored as a decimal string of integer units of ``10**-18`` (the finest amount :class:`Money`
accepts) and the scripts add, subtract and compare those strings digit-group by digit-group.
There is no upper bound and no rounding; an amount that is not a whole number of units (more
than 18 decimal places), negative or not finite is refused with :class:`InvalidAmountError`
before Redis is asked, so the state is unchanged.

Server times (view times, evidence times) are the floats the guard passes, sent as ``repr``
text so Redis and Lua parse the very same double Python compared. Leases do not use the
caller's ``now`` (a per-process monotonic reading, meaningless to other processes): a script
sets a hold's deadline to Redis ``TIME`` plus the lease and lapses holds by Redis ``TIME``, so
every process follows one clock and no host's clock can extend or cut short a lease. A lapsed
hold becomes an external charge of its full amount (it may have been spent): the budget
over-counts, it never forgets.

Failures close: any Redis error (refused, reset, timed out, read-only replica, ...) raises
:class:`LedgerUnavailableError` chained to it, and the next call simply tries again. Every
operation is idempotent per hold id (a retried script answers as the first run did and changes
nothing more), so a client that retries after a lost reply, as redis-py's ``RedisCluster``
does, never holds or charges twice.

Lost data closes too. Each book carries a generation (a random name given when it is created)
and a version (bumped by every write); a ledger remembers, per session, the newest pair it saw
and sends it with every script. A book that is gone, renamed or older than what its writer saw
means Redis lost writes (a restart without persistence, a failover to a replica that missed
them, ``FLUSHALL``): the script sets a LOST marker beside the book and every process, even one
that never wrote the book, gets :class:`LedgerDataLostError` for that session until an operator
calls :meth:`RedisLedger.reopen`. A Redis that comes back with its data (AOF) carries on.
"""

from __future__ import annotations

import inspect
import math
import secrets
import threading
import time
from collections.abc import Sequence
from decimal import Decimal, DecimalException
from typing import Any, NamedTuple

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.commands.core import Script
    from redis.exceptions import RedisClusterException, RedisError
    from redis.retry import Retry
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        'RedisLedger needs the redis package; install it with: pip install "spendguard[redis]"'
    ) from exc

from spendguard._checks import check_seconds, check_settlement, check_text
from spendguard._errors import (
    InvalidAmountError,
    InvalidArgumentError,
    LedgerDataLostError,
    LedgerUnavailableError,
)
from spendguard._ledger import (
    Admission,
    HoldInfo,
    LedgerTotals,
    Limits,
    ServerView,
    Settlement,
    _frozen,
)
from spendguard._money import CONTEXT
from spendguard._redis_scripts import (
    ADMIT,
    COMMIT,
    HOLDS,
    RELEASE,
    REOPEN,
    RESERVE,
    SETTLE_STUCK,
    TOTALS,
)

__all__ = ["DECIMALS", "RedisLedger", "from_units", "to_units"]

#: Decimal places the ledger stores exactly (one unit is ``10**-DECIMALS``).
DECIMALS = 18
_UNIT = 10**DECIMALS
# What a Redis call may raise when Redis (or a cluster node) fails; cluster errors about the
# topology (no node reachable, a slot not covered) are not RedisErrors.
_FAILURES = (RedisError, RedisClusterException)
_KINDS: dict[str, Settlement] = {"s": "session", "e": "external"}
_CODES = {kind: code for code, kind in _KINDS.items()}
_SUFFIXES = (
    "book",
    "holds",
    "deadlines",
    "pending",
    "lost",
    "retired",
    "settled",
    "forget",
    "frozen",
    "policy",
    "calls",
    "calldata",
    "windows",
)


def to_units(value: Decimal, what: str) -> str:
    """An amount as a decimal string of ``10**-18`` units, exactly, or InvalidAmountError."""
    if not isinstance(value, Decimal) or not value.is_finite():
        raise InvalidAmountError(f"{what} must be a finite Decimal, got {value!r}", value=value)
    try:
        scaled = value.scaleb(DECIMALS, CONTEXT)
    except DecimalException as exc:
        raise InvalidAmountError(f"{what} {value} is out of range", value=value) from exc
    if scaled != scaled.to_integral_value(context=CONTEXT):
        raise InvalidAmountError(
            f"{what} {value} has more than {DECIMALS} decimal places; the Redis ledger stores "
            f"amounts exactly in units of 10**-{DECIMALS} and never rounds",
            value=value,
        )
    return str(int(scaled))


def from_units(text: str) -> Decimal:
    """The Decimal a units string stands for, without trailing zeros in the fraction."""
    count = int(text)
    sign = "-" if count < 0 else ""
    whole, frac = divmod(abs(count), _UNIT)
    if not frac:
        return Decimal(f"{sign}{whole}")
    return Decimal(f"{sign}{whole}.{frac:0{DECIMALS}d}".rstrip("0"))


def _amount(value: Decimal, what: str) -> str:
    units = to_units(value, what)
    if units.startswith("-"):
        raise InvalidAmountError(f"{what} must not be negative, got {value}", value=value)
    return units


def _time(value: float, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidArgumentError(
            f"{what} must be a finite number of epoch seconds, got {value!r}", argument=what
        )
    return repr(float(value))


def _duration(value: float, what: str) -> str:
    return repr(check_seconds(what, value, allow_zero=True))


def _view_args(view: ServerView) -> list[str]:
    spent = "" if view.spent is None else to_units(view.spent, "spent")
    read_at = "" if view.read_at is None else _time(view.read_at, "read_at")
    return [
        to_units(view.available, "available"),
        spent,
        _time(view.updated_at, "updated_at"),
        read_at,
    ]


def _text(item: object) -> str:
    return item.decode("ascii") if isinstance(item, bytes) else str(item)


def _totals(reply: Sequence[object]) -> LedgerTotals:
    available, held, unreflected, external = (from_units(_text(x)) for x in reply)
    return LedgerTotals(available, held, unreflected, external)


def _lost(key: str) -> LedgerDataLostError:
    return LedgerDataLostError(
        f"the Redis ledger lost the holds and charges of session {key} (Redis restarted "
        "without its data, failed over to a replica that missed writes, or was flushed), so "
        "what was spent is unknown; charges on this session are blocked in every process. "
        "To recover, check the session's spending on the payment service, then call "
        "RedisLedger.reopen(payment_manager_arn, payment_session_id): the guards then start "
        "a fresh book from the server's current reading"
    )


def _cluster_retries() -> dict[str, Any]:
    # One retry after a connection error (the topology may have changed). redis-py 5.x and
    # later take a Retry object (and deprecate the count); 4.x knows only the count.
    if "retry" in inspect.signature(redis.RedisCluster.__init__).parameters:
        return {"retry": Retry(NoBackoff(), 1)}
    return {"cluster_error_retry_attempts": 1}  # pragma: no cover - redis-py 4.x


def _unavailable(exc: Exception) -> LedgerUnavailableError:
    return LedgerUnavailableError(
        f"the Redis ledger is unavailable ({type(exc).__name__}: {exc}); charges are "
        "blocked until it answers again"
    )


def _hold_info(hold_id: str, record: str, deadline: object, now: float) -> HoldInfo:
    fields = record.split(" ", 4)
    amount, kind = from_units(fields[0]), _KINDS[fields[1]]
    if len(fields) < 5:  # written before 0.3: no creation time, lease or tool
        age, tool = 0.0, None
    else:
        age, tool = now - float(fields[2]), fields[4] or None
    left = 0.0 if deadline is None else max(0.0, float(_text(deadline)) - now)
    return HoldInfo(hold_id, amount, kind, tool, max(0.0, age), left)


class _Seen(NamedTuple):
    gen: str  # the book's generation
    ver: int  # the newest version of it this ledger saw
    sent: float  # time.monotonic() when the call that saw it was sent


class RedisLedger:
    """Holds and charges kept in Redis and shared by every process that uses the same keys.

    Every method is one atomic Lua script per session key. All keys of a session share the hash
    tag ``{key}``, so the ledger works on Redis Cluster. Build it with :meth:`from_url`, or pass
    a ``redis.Redis``/``redis.RedisCluster`` client (then configure its timeouts; retries are
    safe, every operation being idempotent per hold id, but delay failing closed).

    If Redis loses a session's book, every method raises :class:`LedgerDataLostError` for that
    session until :meth:`reopen` (see the module docstring).

    Args:
        client: A redis-py client (``decode_responses`` may be either).
        prefix: Start of every key, e.g. ``spendguard:{<session key>}:holds``.
        key_ttl: If set, seconds after the last write when a session's keys expire. Leave it
            None unless it exceeds the session's life: expired keys forget charges. A book
            that expired is not reported lost.

    Raises:
        InvalidArgumentError: ``key_ttl`` is not a positive number, or ``prefix`` is empty.
    """

    def __init__(
        self,
        client: redis.Redis | redis.RedisCluster,
        *,
        prefix: str = "spendguard",
        key_ttl: float | None = None,
    ) -> None:
        if key_ttl is not None:
            check_seconds("key_ttl", key_ttl)
        check_text("prefix", prefix)
        self._client = client
        self._prefix = prefix
        self._ttl_ms = "0" if key_ttl is None else str(max(1, math.ceil(key_ttl * 1000)))
        self._key_ttl = key_ttl
        self._seen: dict[str, _Seen] = {}
        self._seen_lock = threading.Lock()
        self._reopen = client.register_script(REOPEN)
        self._reserve = client.register_script(RESERVE)
        self._commit = client.register_script(COMMIT)
        self._release = client.register_script(RELEASE)
        self._totals = client.register_script(TOTALS)
        self._holds = client.register_script(HOLDS)
        self._settle_stuck = client.register_script(SETTLE_STUCK)
        self._admit = client.register_script(ADMIT)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        timeout: float = 1.0,
        prefix: str = "spendguard",
        key_ttl: float | None = None,
        cluster: bool = False,
        **options: Any,
    ) -> RedisLedger:
        """Connect to ``url`` with fail-closed settings.

        Args:
            url: The Redis URL: ``redis://[[user]:password@]host:port/db``, or ``rediss://``
                for TLS (ElastiCache and MemoryDB with encryption in transit).
            timeout: Seconds to wait for a connection or a reply before the call fails with
                :class:`LedgerUnavailableError`.
            prefix: See :class:`RedisLedger`.
            key_ttl: See :class:`RedisLedger`.
            cluster: ``url`` names a node of a Redis Cluster (cluster mode enabled): use
                redis-py's ``RedisCluster``, which finds the other nodes itself and retries
                a command once after a connection error (the ledger's operations are
                idempotent, so a script run twice changes nothing more).
            options: More keyword arguments for redis-py's ``from_url`` (e.g.
                ``ssl_cert_reqs="required"``, ``ssl_ca_certs=...``, ``username=``,
                ``password=``).

        Returns:
            A ledger whose client gives up after ``timeout``.

        Raises:
            LedgerUnavailableError: ``cluster`` is set and no node of the cluster answered.
        """
        options = {"socket_timeout": timeout, "socket_connect_timeout": timeout, **options}
        client: redis.Redis | redis.RedisCluster
        if cluster:
            try:  # finds the cluster's nodes at once
                client = redis.RedisCluster.from_url(url, **{**_cluster_retries(), **options})
            except _FAILURES as exc:
                raise _unavailable(exc) from exc
        else:
            client = redis.Redis.from_url(url, **{"retry": Retry(NoBackoff(), 0), **options})
        return cls(client, prefix=prefix, key_ttl=key_ttl)

    def keys(self, key: str) -> list[str]:
        """The Redis keys of session ``key``, all in one hash slot: book, holds, deadlines,
        pending, lost (the LOST marker), retired (generations retired by :meth:`reopen`),
        settled and forget (how recently settled holds ended), frozen (see :meth:`set_frozen`).
        """
        return [f"{self._prefix}:{{{key}}}:{suffix}" for suffix in _SUFFIXES]

    def reopen(self, payment_manager_arn: str, payment_session_id: str) -> bool:
        """Reopen a session closed by :class:`LedgerDataLostError`, once an operator checked it.

        After reopening, the guards start a fresh book from the server's current reading (or
        carry on from what Redis still holds of the book); money that moved while the book was
        lost is whatever the server shows. Holds that were open then are forgotten, and
        ``"external"`` charges recorded only in the lost book are no longer deducted.

        Args:
            payment_manager_arn: The session's payment manager ARN, as given to the guard.
            payment_session_id: The session's id, as given to the guard.

        Returns:
            Whether the session was closed.

        Raises:
            LedgerUnavailableError: Redis could not be reached or did not answer in time.
        """
        key = f"{payment_manager_arn}/{payment_session_id}"  # SpendGuard's ledger key
        with self._seen_lock:
            seen = self._seen.get(key)
        args = ["" if seen is None else seen.gen, "0", secrets.token_hex(8), self._ttl_ms]
        closed = self._call(self._reopen, key, args)
        with self._seen_lock:
            self._seen.pop(key, None)
        return int(closed) == 1

    def _call(self, script: Script, key: str, args: list[str]) -> Any:
        try:
            return script(keys=self.keys(key), args=args)
        except _FAILURES as exc:
            raise _unavailable(exc) from exc

    def _run(self, script: Script, key: str, args: Sequence[str]) -> list[Any]:
        sent = time.monotonic()
        gen, ver = self._expected(key, sent)
        reply = self._call(script, key, [gen, ver, secrets.token_hex(8), self._ttl_ms, *args])
        if int(reply[0]) == 0:
            raise _lost(key)
        self._remember(key, _text(reply[1]), int(reply[2]), sent)
        return list(reply[3:])

    def _expected(self, key: str, now: float) -> tuple[str, str]:
        with self._seen_lock:
            seen = self._seen.get(key)
        if seen is None or (self._key_ttl is not None and now - seen.sent >= self._key_ttl):
            # Never written from here, or so long ago that the keys may simply have expired.
            return "", "0"
        return seen.gen, str(seen.ver)

    def _remember(self, key: str, gen: str, ver: int, sent: float) -> None:
        if not gen:
            return
        with self._seen_lock:
            seen = self._seen.get(key)
            if seen is not None and seen.gen == gen:
                ver, sent = max(ver, seen.ver), max(sent, seen.sent)
            self._seen[key] = _Seen(gen, ver, sent)

    def reserve(
        self,
        key: str,
        hold_id: str,
        amount: Decimal,
        view: ServerView,
        settlement: Settlement,
        lease_seconds: float,
        now: float,
        *,
        tool: str | None = None,
    ) -> tuple[bool, LedgerTotals]:
        """See :meth:`spendguard._ledger.Ledger.reserve`.

        The hold's deadline is Redis ``TIME`` plus ``lease_seconds``; ``now`` is not used.

        Raises:
            InvalidArgumentError: ``lease_seconds`` is negative or not finite.
            InvalidAmountError: An amount is negative or has more than 18 decimal places.
            SessionFrozenError: An operator froze the session.
            LedgerUnavailableError: Redis could not be reached or did not answer in time.
            LedgerDataLostError: Redis lost this session's book; see :meth:`reopen`.
        """
        check_settlement(settlement)
        args = [
            hold_id,
            _amount(amount, "hold amount"),
            *_view_args(view),
            _CODES[settlement],
            _duration(lease_seconds, "lease_seconds"),
            "" if tool is None else tool,
        ]
        reply = self._run(self._reserve, key, args)
        if int(reply[0]) == -1:
            raise _frozen(key)
        return int(reply[0]) == 1, _totals(reply[1:])

    def admit(
        self,
        key: str,
        hold_id: str,
        amount: Decimal,
        view: ServerView,
        settlement: Settlement,
        lease_seconds: float,
        now: float,
        limits: Limits,
        *,
        probe: bool = False,
    ) -> Admission:
        """See :meth:`spendguard._ledger.PolicyLedger.admit`: one script checks the session,
        the tool's cap and the windows, and holds.

        Windows run on Redis ``TIME`` (``now`` is not used), so every process measures them
        on one clock.

        Raises:
            The same errors as :meth:`reserve`.
        """
        check_settlement(settlement)
        args = [
            hold_id,
            _amount(amount, "hold amount"),
            *_view_args(view),
            _CODES[settlement],
            _duration(lease_seconds, "lease_seconds"),
            "" if limits.tool is None else limits.tool,
            "1" if probe else "0",
            "" if limits.cap is None else _amount(limits.cap, "cap"),
            repr(float(limits.horizon)),
            str(len(limits.windows)),
        ]
        for window in limits.windows:
            args += [
                repr(float(window.seconds)),
                "" if window.amount is None else _amount(window.amount, "window amount"),
                "" if window.calls is None else str(window.calls),
                "" if window.tool is None else window.tool,
            ]
        args.append(str(len(limits.marks)))
        for mark in limits.marks:
            args += [mark.name, "s" if mark.kind == "session" else "t", _amount(mark.at, "mark")]
        reply = self._run(self._admit, key, args)
        granted = int(reply[0])
        if granted == -1:
            raise _frozen(key)
        rule, index = _text(reply[1]) or None, int(reply[3])
        return Admission(
            granted == 1,
            _totals(reply[4:8]),
            rule,
            from_units(_text(reply[2])),
            None if index < 0 else index,
            tuple(_text(name) for name in reply[8:]),
        )

    def commit(
        self, key: str, hold_id: str, actual: Decimal, evidence_time: float, now: float
    ) -> bool:
        """See :meth:`spendguard._ledger.Ledger.commit`.

        Raises:
            InvalidAmountError: ``actual`` is negative, too precise, or more than was held
                (the hold stays open).
            LedgerUnavailableError: Redis could not be reached or did not answer in time.
            LedgerDataLostError: Redis lost this session's book; see :meth:`reopen`.
        """
        args = [
            hold_id,
            _amount(actual, "commit amount"),
            _time(evidence_time, "evidence_time"),
        ]
        reply = self._run(self._commit, key, args)
        if int(reply[0]) == -1:
            held = from_units(_text(reply[1]))
            raise InvalidAmountError(f"cannot commit {actual}: the hold is {held}", value=actual)
        return int(reply[0]) == 1

    def release(self, key: str, hold_id: str, now: float) -> bool:
        """See :meth:`spendguard._ledger.Ledger.release`.

        Raises:
            LedgerUnavailableError: Redis could not be reached or did not answer in time.
            LedgerDataLostError: Redis lost this session's book; see :meth:`reopen`.
        """
        reply = self._run(self._release, key, [hold_id])
        return int(reply[0]) == 1

    def totals(self, key: str, view: ServerView | None, now: float) -> LedgerTotals:
        """See :meth:`spendguard._ledger.Ledger.totals`.

        Raises:
            LedgerUnavailableError: Redis could not be reached or did not answer in time.
            LedgerDataLostError: Redis lost this session's book; see :meth:`reopen`.
        """
        view_args = ["", "", "", "", "0"] if view is None else [*_view_args(view), "1"]
        reply = self._run(self._totals, key, view_args)
        return _totals(reply)

    # -- operator controls ----------------------------------------------------------------

    def holds(self, key: str, now: float) -> list[HoldInfo]:
        """See :meth:`spendguard._ledger.OperatorLedger.holds`; ages and leases follow Redis
        ``TIME`` (``now`` is not used).

        Raises:
            LedgerUnavailableError: Redis could not be reached or did not answer in time.
            LedgerDataLostError: Redis lost this session's book; see :meth:`reopen`.
        """
        reply = self._run(self._holds, key, [])
        clock = float(_text(reply[0]))
        found = [
            _hold_info(_text(reply[i]), _text(reply[i + 1]), reply[i + 2], clock)
            for i in range(1, len(reply), 3)
        ]
        return sorted(found, key=lambda info: (-info.age, info.hold_id))

    def settle_stuck(self, key: str, hold_id: str, charge: bool, now: float) -> HoldInfo | None:
        """See :meth:`spendguard._ledger.OperatorLedger.settle_stuck`.

        Raises:
            LedgerUnavailableError: Redis could not be reached or did not answer in time.
            LedgerDataLostError: Redis lost this session's book; see :meth:`reopen`.
        """
        reply = self._run(self._settle_stuck, key, [hold_id, "1" if charge else "0"])
        if int(reply[0]) == 0:
            return None
        return _hold_info(hold_id, _text(reply[2]), reply[3], float(_text(reply[1])))

    def set_frozen(self, key: str, frozen: bool) -> bool:
        """See :meth:`spendguard._ledger.OperatorLedger.set_frozen`.

        Raises:
            LedgerUnavailableError: Redis could not be reached or did not answer in time.
        """
        name = self.keys(key)[8]
        try:
            if frozen:
                return bool(self._client.set(name, "1", nx=True))
            return bool(self._client.delete(name))
        except _FAILURES as exc:
            raise _unavailable(exc) from exc

    def is_frozen(self, key: str) -> bool:
        """See :meth:`spendguard._ledger.OperatorLedger.is_frozen`.

        Raises:
            LedgerUnavailableError: Redis could not be reached or did not answer in time.
        """
        try:
            return bool(self._client.exists(self.keys(key)[8]))
        except _FAILURES as exc:
            raise _unavailable(exc) from exc

    def __repr__(self) -> str:
        return f"RedisLedger(prefix={self._prefix!r})"
