"""A ledger shared through Redis, for many processes spending from one payment session.

:class:`RedisLedger` implements the :class:`~spendguard._ledger.Ledger` protocol with the same
rules as :class:`~spendguard._ledger.InMemoryLedger` (check and hold, commit, leases,
reconciliation); each method is one Lua script, so one atomic round trip, and reconciliation
runs inside the script against the state every process shares.

Money is exact. Lua numbers are doubles, so amounts never travel as numbers: an amount is
stored as a decimal string of integer units of ``10**-18`` (the finest amount :class:`Money`
accepts) and the scripts add, subtract and compare those strings digit-group by digit-group.
There is no upper bound and no rounding; an amount that is not a whole number of units (more
than 18 decimal places), negative or not finite is refused with :class:`InvalidAmountError`
before Redis is asked, so the state is unchanged.

Times (view times, lease deadlines, evidence times) are the floats the guard passes, sent as
``repr`` text so Redis and Lua parse the very same double Python compared. Leases use the
caller's ``now``, not Redis ``TIME``: both ledgers then follow one clock the guard injects, and
clock skew between hosts can only move a lapse earlier or later. A lapsed hold becomes an
external charge of its full amount (it may have been spent), so an early lapse over-counts and
never lets a process overspend.

Failures close: any Redis error (refused, reset, timed out, read-only replica, ...) raises
:class:`LedgerUnavailableError` chained to it, and the next call simply tries again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal, DecimalException
from typing import Any

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.commands.core import Script
    from redis.exceptions import RedisError
    from redis.retry import Retry
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        'RedisLedger needs the redis package; install it with: pip install "spendguard[redis]"'
    ) from exc

from spendguard._errors import InvalidAmountError, LedgerUnavailableError
from spendguard._ledger import LedgerTotals, ServerView, Settlement
from spendguard._money import CONTEXT

__all__ = ["DECIMALS", "RedisLedger"]

#: Decimal places the ledger stores exactly (one unit is ``10**-DECIMALS``).
DECIMALS = 18
_UNIT = 10**DECIMALS
_KINDS: dict[str, str] = {"session": "s", "external": "e"}
_SUFFIXES = ("book", "holds", "deadlines", "pending")


# -- Lua ----------------------------------------------------------------------------------------
# KEYS: 1 book (hash: avail, at, base, held, unref, ext), 2 holds (hash id -> "units s|e"),
# 3 deadlines (zset id -> lease deadline), 4 pending (list of "units evidence_time", commit order).
# Amounts are signed decimal strings of integer units; "0" is never written "-0".
LIBRARY = r"""
local BASE = 1e15
local function strip(s)
  s = string.gsub(s, '^0+', '')
  if s == '' then return '0' end
  return s
end
local function digits(s, last)
  if last < 1 then return 0 end
  return tonumber(string.sub(s, math.max(last - 14, 1), last))
end
local function ucmp(a, b)
  if #a ~= #b then return #a < #b and -1 or 1 end
  if a == b then return 0 end
  return a < b and -1 or 1
end
local function uadd(a, b)
  local out, carry, i, n = {}, 0, 0, math.max(#a, #b)
  while i < n or carry > 0 do
    local s = digits(a, #a - i) + digits(b, #b - i) + carry
    if s >= BASE then s, carry = s - BASE, 1 else carry = 0 end
    table.insert(out, 1, string.format('%015.0f', s))
    i = i + 15
  end
  return strip(table.concat(out))
end
local function usub(a, b)
  local out, borrow, i = {}, 0, 0
  while i < #a do
    local s = digits(a, #a - i) - digits(b, #b - i) - borrow
    if s < 0 then s, borrow = s + BASE, 1 else borrow = 0 end
    table.insert(out, 1, string.format('%015.0f', s))
    i = i + 15
  end
  return strip(table.concat(out))
end
local function split(x)
  if string.sub(x, 1, 1) == '-' then return true, string.sub(x, 2) end
  return false, x
end
local function join(neg, m)
  if neg and m ~= '0' then return '-' .. m end
  return m
end
local function add(a, b)
  local na, ma = split(a)
  local nb, mb = split(b)
  if na == nb then return join(na, uadd(ma, mb)) end
  if ucmp(ma, mb) >= 0 then return join(na, usub(ma, mb)) end
  return join(nb, usub(mb, ma))
end
local function sub(a, b)
  local nb, mb = split(b)
  return add(a, join(not nb, mb))
end
local function cmp(a, b)
  local na, ma = split(a)
  local nb, mb = split(b)
  if na ~= nb then return na and -1 or 1 end
  local c = ucmp(ma, mb)
  if na then return -c end
  return c
end
local function load_book()
  local f = redis.call('HMGET', KEYS[1], 'avail', 'at', 'base', 'held', 'unref', 'ext')
  if not f[1] then return nil end
  return {avail = f[1], at = f[2], base = f[3] or nil, held = f[4], unref = f[5], ext = f[6]}
end
local function new_book(avail, spent, at)
  local book = {avail = avail, at = at, held = '0', unref = '0', ext = '0'}
  if spent ~= '' then book.base = spent end
  return book
end
local function save(book, ttl)
  redis.call('HSET', KEYS[1], 'avail', book.avail, 'at', book.at, 'held', book.held,
             'unref', book.unref, 'ext', book.ext)
  if book.base then redis.call('HSET', KEYS[1], 'base', book.base) end
  if ttl ~= '0' then
    for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ttl) end
  end
end
local function reconcile(book, spent, u)
  local dropped, n, done = '0', 0, false
  while not done do
    local batch = redis.call('LRANGE', KEYS[4], n, n + 99)
    done = #batch < 100
    for _, entry in ipairs(batch) do
      local space = string.find(entry, ' ', 1, true)
      local total = add(dropped, string.sub(entry, 1, space - 1))
      if tonumber(string.sub(entry, space + 1)) > u or cmp(add(book.base, total), spent) > 0 then
        done = true
        break
      end
      dropped, n = total, n + 1
    end
  end
  if n > 0 then
    redis.call('LTRIM', KEYS[4], n, -1)
    book.base = add(book.base, dropped)
    book.unref = sub(book.unref, dropped)
  end
end
local function observe(book, avail, spent, at)
  local u, cur = tonumber(at), tonumber(book.at)
  if u <= cur then
    if u == cur and cmp(avail, book.avail) < 0 then book.avail, book.at = avail, at end
    return
  end
  book.avail, book.at = avail, at
  if spent == '' then return end
  if not book.base then
    book.base = spent
    return
  end
  reconcile(book, spent, u)
end
local function lapse(book, now)
  local ids = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
  for _, id in ipairs(ids) do
    local amount = string.sub(redis.call('HGET', KEYS[2], id), 1, -3)
    book.held, book.ext = sub(book.held, amount), add(book.ext, amount)
    redis.call('HDEL', KEYS[2], id)
  end
  if #ids > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now) end
end
local function figures(book)
  return {book.avail, book.held, book.unref, book.ext}
end
"""

# ARGV: hold_id, amount, avail, spent ('' = unknown), at, kind (s|e), deadline, now, ttl_ms
_RESERVE_BODY = r"""
local book = load_book()
if book then observe(book, ARGV[3], ARGV[4], ARGV[5])
else book = new_book(ARGV[3], ARGV[4], ARGV[5]) end
lapse(book, ARGV[8])
local before, granted = figures(book), 0
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then
  local room = sub(book.avail, add(add(book.held, book.unref), book.ext))
  if cmp(room, '0') < 0 then room = '0' end
  if cmp(ARGV[2], room) <= 0 then
    granted = 1
    redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. ' ' .. ARGV[6])
    redis.call('ZADD', KEYS[3], ARGV[7], ARGV[1])
    book.held = add(book.held, ARGV[2])
  end
end
save(book, ARGV[9])
table.insert(before, 1, granted)
return before
"""

# ARGV: hold_id, actual, evidence_time, now, ttl_ms -> {1} done, {0} unknown, {-1, held} too much
_COMMIT_BODY = r"""
local book = load_book()
if not book then return {0} end
lapse(book, ARGV[4])
local hold, result = redis.call('HGET', KEYS[2], ARGV[1]), {0}
if hold then
  local amount, kind = string.sub(hold, 1, -3), string.sub(hold, -1)
  if cmp(ARGV[2], amount) > 0 then
    result = {-1, amount}
  else
    redis.call('HDEL', KEYS[2], ARGV[1])
    redis.call('ZREM', KEYS[3], ARGV[1])
    book.held = sub(book.held, amount)
    if kind == 'e' then
      book.ext = add(book.ext, ARGV[2])
    elseif ARGV[2] ~= '0' then
      redis.call('RPUSH', KEYS[4], ARGV[2] .. ' ' .. ARGV[3])
      book.unref = add(book.unref, ARGV[2])
    end
    result = {1}
  end
end
save(book, ARGV[5])
return result
"""

# ARGV: hold_id, now, ttl_ms -> {1} released, {0} unknown
_RELEASE_BODY = r"""
local book = load_book()
if not book then return {0} end
lapse(book, ARGV[2])
local hold, result = redis.call('HGET', KEYS[2], ARGV[1]), {0}
if hold then
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
  book.held = sub(book.held, string.sub(hold, 1, -3))
  result = {1}
end
save(book, ARGV[3])
return result
"""

# ARGV: avail, spent, at, has_view (0|1), now, ttl_ms
_TOTALS_BODY = r"""
local book = load_book()
if not book then
  if ARGV[4] == '0' then return {'0', '0', '0', '0'} end
  book = new_book(ARGV[1], ARGV[2], ARGV[3])
elseif ARGV[4] == '1' then
  observe(book, ARGV[1], ARGV[2], ARGV[3])
end
lapse(book, ARGV[5])
save(book, ARGV[6])
return figures(book)
"""
RESERVE, COMMIT, RELEASE, TOTALS = (
    LIBRARY + body for body in (_RESERVE_BODY, _COMMIT_BODY, _RELEASE_BODY, _TOTALS_BODY)
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
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{what} must be a finite number of epoch seconds, got {value!r}")
    return repr(number)


def _view_args(view: ServerView) -> list[str]:
    spent = "" if view.spent is None else to_units(view.spent, "spent")
    return [
        to_units(view.available, "available"),
        spent,
        _time(view.updated_at, "updated_at"),
    ]


def _text(item: object) -> str:
    return item.decode("ascii") if isinstance(item, bytes) else str(item)


def _totals(reply: Sequence[object]) -> LedgerTotals:
    available, held, unreflected, external = (from_units(_text(x)) for x in reply)
    return LedgerTotals(available, held, unreflected, external)


class RedisLedger:
    """Holds and charges kept in Redis and shared by every process that uses the same keys.

    Every method is one atomic Lua script per session key. All keys of a session share the hash
    tag ``{key}``, so the ledger works on Redis Cluster. Build it with :meth:`from_url`, or pass
    a ``redis.Redis``/``redis.RedisCluster`` client (then configure its timeouts, and disable
    its retries: a script retried after a lost reply may run twice).

    Args:
        client: A redis-py client (``decode_responses`` may be either).
        prefix: Start of every key, e.g. ``spendguard:{<session key>}:holds``.
        key_ttl: If set, seconds after the last write when a session's keys expire. Leave it
            None unless it exceeds the session's life: expired keys forget charges.

    Raises:
        ValueError: ``key_ttl`` is not a positive number.
    """

    def __init__(
        self,
        client: redis.Redis | redis.RedisCluster,
        *,
        prefix: str = "spendguard",
        key_ttl: float | None = None,
    ) -> None:
        if key_ttl is not None and not (
            isinstance(key_ttl, (int, float)) and 0 < key_ttl < math.inf
        ):
            raise ValueError(f"key_ttl must be a positive number of seconds, got {key_ttl!r}")
        self._client = client
        self._prefix = prefix
        self._ttl_ms = "0" if key_ttl is None else str(max(1, math.ceil(key_ttl * 1000)))
        self._reserve = client.register_script(RESERVE)
        self._commit = client.register_script(COMMIT)
        self._release = client.register_script(RELEASE)
        self._totals = client.register_script(TOTALS)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        timeout: float = 1.0,
        prefix: str = "spendguard",
        key_ttl: float | None = None,
    ) -> RedisLedger:
        """Connect to ``url`` (``redis://host:port/db``) with fail-closed settings.

        Args:
            url: The Redis URL.
            timeout: Seconds to wait for a connection or a reply before the call fails with
                :class:`LedgerUnavailableError`.
            prefix: See :class:`RedisLedger`.
            key_ttl: See :class:`RedisLedger`.

        Returns:
            A ledger whose client never retries on its own (no script runs twice).
        """
        client = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        return cls(client, prefix=prefix, key_ttl=key_ttl)

    def keys(self, key: str) -> list[str]:
        """The Redis keys of session ``key``: book, holds, deadlines, pending (one hash slot)."""
        return [f"{self._prefix}:{{{key}}}:{suffix}" for suffix in _SUFFIXES]

    def _run(self, script: Script, key: str, args: Sequence[str]) -> list[Any]:
        try:
            reply = script(keys=self.keys(key), args=list(args))
        except RedisError as exc:
            raise LedgerUnavailableError(
                f"the Redis ledger is unavailable ({type(exc).__name__}: {exc}); charges are "
                "blocked until it answers again"
            ) from exc
        return list(reply)

    def reserve(
        self,
        key: str,
        hold_id: str,
        amount: Decimal,
        view: ServerView,
        settlement: Settlement,
        lease_seconds: float,
        now: float,
    ) -> tuple[bool, LedgerTotals]:
        """See :meth:`spendguard._ledger.Ledger.reserve`.

        Raises:
            InvalidAmountError: An amount is negative or has more than 18 decimal places.
            LedgerUnavailableError: Redis could not be reached or did not answer in time.
        """
        if settlement not in _KINDS:
            raise ValueError(f"settlement must be 'session' or 'external', got {settlement!r}")
        args = [
            hold_id,
            _amount(amount, "hold amount"),
            *_view_args(view),
            _KINDS[settlement],
            _time(now + lease_seconds, "lease deadline"),
            _time(now, "now"),
            self._ttl_ms,
        ]
        reply = self._run(self._reserve, key, args)
        return int(reply[0]) == 1, _totals(reply[1:])

    def commit(
        self, key: str, hold_id: str, actual: Decimal, evidence_time: float, now: float
    ) -> bool:
        """See :meth:`spendguard._ledger.Ledger.commit`.

        Raises:
            InvalidAmountError: ``actual`` is negative, too precise, or more than was held
                (the hold stays open).
            LedgerUnavailableError: Redis could not be reached or did not answer in time.
        """
        args = [
            hold_id,
            _amount(actual, "commit amount"),
            _time(evidence_time, "evidence_time"),
            _time(now, "now"),
            self._ttl_ms,
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
        """
        reply = self._run(self._release, key, [hold_id, _time(now, "now"), self._ttl_ms])
        return int(reply[0]) == 1

    def totals(self, key: str, view: ServerView | None, now: float) -> LedgerTotals:
        """See :meth:`spendguard._ledger.Ledger.totals`.

        Raises:
            LedgerUnavailableError: Redis could not be reached or did not answer in time.
        """
        view_args = ["", "", "", "0"] if view is None else [*_view_args(view), "1"]
        reply = self._run(self._totals, key, [*view_args, _time(now, "now"), self._ttl_ms])
        return _totals(reply)

    def __repr__(self) -> str:
        return f"RedisLedger(prefix={self._prefix!r})"
