"""The tool gate: one object every framework adapter stands on.

An adapter translates its framework's "before tool" and "after tool" events into
:meth:`ToolGate.admit` (or :meth:`ToolGate.aadmit`) and :meth:`ToolGate.settle`, and nothing
else. The gate prices the call, holds its cost, remembers the hold under a key the adapter
chooses, and settles it by the rule every adapter shares:

* a call that did not run is released;
* a call that ran is committed, also when it raised: a paid API may take the money and then
  fail. Only an error that says nothing was spent releases it (a
  :class:`~spendguard.NothingSpentError`, or a type of ``release_on``).

The guard is fixed, or found per call: give the gate a *resolver* instead, a callable of the
framework's run context (the adapter passes it) that returns the guard of this run's payment
session, typically from a :class:`~spendguard.pool.GuardPool`. A priced call whose resolver
raises, returns None or returns something else than a guard is blocked with a
:class:`~spendguard.GuardResolutionError` (rule ``"session_unresolved"``); calls without a
price never ask it. Each hold remembers its guard, so a call settles against the guard that
admitted it.

Keys are never a model-supplied id alone: model servers repeat or blank tool call ids. Use
:func:`call_key` to key by the identity of a framework object that lives exactly as long as
one call (a ``tool_use`` dict, a tool context), or a key the framework itself generates per
run (a LangChain ``run_id``).
"""

from __future__ import annotations

import functools
import itertools
import secrets
import threading
from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any
from uuid import UUID

from spendguard._checks import check_release_on, check_settlement
from spendguard._emit import CALL_KEY
from spendguard._errors import GuardResolutionError, InvalidArgumentError
from spendguard._guard import SpendGuard
from spendguard.pricing import Blocked, PriceRule, Pricing, _unguarded, aadmit, admit, settle

if TYPE_CHECKING:
    from spendguard._hold import Hold, ReleaseOn
    from spendguard._ledger import Settlement

__all__ = [
    "CallKey",
    "GuardResolutionError",
    "GuardResolver",
    "OnBlocked",
    "ToolGate",
    "call_key",
]

#: Called with every :class:`~spendguard.pricing.Blocked` call, e.g. to log or count it.
OnBlocked = Callable[[Blocked], object]
#: Returns the guard of a call from its framework's run context (what each adapter documents).
GuardResolver = Callable[[Any], SpendGuard]


class CallKey:
    """A key that is the identity of one framework object: equal only for that same object.

    Holds a reference to the object, so its ``id`` cannot be reused while the key lives.
    """

    __slots__ = ("_obj",)

    def __init__(self, obj: object) -> None:
        self._obj = obj

    def __hash__(self) -> int:
        return id(self._obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CallKey) and other._obj is self._obj

    def __repr__(self) -> str:
        return f"CallKey({type(self._obj).__name__} at {id(self._obj):#x})"


def call_key(obj: object) -> CallKey:
    """Key a call by the identity of ``obj``, an object that lives as long as the call."""
    return CallKey(obj)


class ToolGate:
    """Admits tool calls against a guard and settles them; the core of every adapter.

    Args:
        guard: The guard of the payment session the tools spend from, or a resolver: a
            callable of the run context given to :meth:`admit` returning the guard.
        pricing: Price rules by tool name: a :class:`~spendguard.pricing.Pricing` or a plain
            mapping of tool name to rule. Tools without a rule are free unless strict.
        settlement: How committed charges settle, default the guard's.
        release_on: Exception types that, raised by a tool, mean it spent nothing.
        on_blocked: Called with each blocked call (after the call is refused).

    Raises:
        InvalidAmountError: A fixed price in ``pricing`` is not a valid amount.
        InvalidArgumentError: ``guard``, ``pricing``, ``release_on`` or ``on_blocked`` is of
            the wrong kind.
    """

    def __init__(
        self,
        guard: SpendGuard | GuardResolver,
        pricing: Pricing | Mapping[str, PriceRule],
        *,
        settlement: Settlement | None = None,
        release_on: ReleaseOn = (),
        on_blocked: OnBlocked | None = None,
    ) -> None:
        if not isinstance(guard, SpendGuard) and not callable(guard):
            raise InvalidArgumentError(
                f"guard must be a SpendGuard or a callable returning one, got {guard!r}",
                argument="guard",
            )
        #: The fixed guard, or None when a resolver finds it per call.
        self.guard: SpendGuard | None = guard if isinstance(guard, SpendGuard) else None
        #: The resolver, or None when the guard is fixed.
        self.resolver: GuardResolver | None = None if isinstance(guard, SpendGuard) else guard
        self.pricing = as_pricing(pricing)
        self.settlement = None if settlement is None else check_settlement(settlement)
        self.release_on = check_release_on(release_on)
        if on_blocked is not None and not callable(on_blocked):
            raise InvalidArgumentError(
                f"on_blocked must be callable, got {on_blocked!r}", argument="on_blocked"
            )
        self._on_blocked = on_blocked
        self._lock = threading.Lock()
        self._holds: dict[Hashable, Hold] = {}

    @property
    def open_holds(self) -> Mapping[str, Hold]:
        """Holds of calls in flight, by hold id (a snapshot; empty, so falsy, when none)."""
        with self._lock:
            return {hold.id: hold for hold in self._holds.values()}

    def held(self, key: Hashable) -> Hold | None:
        """The hold of the call ``key``, if it holds one."""
        with self._lock:
            return self._holds.get(key)

    def resolve(self, tool_name: str, context: object = None) -> SpendGuard | Blocked | None:
        """The guard that pays for a call of ``tool_name`` in the run ``context``.

        Returns:
            The fixed guard, or the resolver's; None for a call without a price rule (it holds
            nothing, so it needs no guard); a :class:`~spendguard.pricing.Blocked` (rule
            ``"session_unresolved"``) when the resolver raised or did not return a guard.
        """
        if self.resolver is None:
            return self.guard
        if tool_name not in self.pricing and not self.pricing.strict:
            return None
        try:
            guard = self.resolver(context)
        except Exception as exc:
            error = GuardResolutionError(
                f"the guard resolver failed for tool {tool_name!r}: {type(exc).__name__}: {exc}"
            )
            error.__cause__ = exc
        else:
            if isinstance(guard, SpendGuard):
                return guard
            error = GuardResolutionError(
                f"the guard resolver returned {type(guard).__name__}, not a SpendGuard, "
                f"for tool {tool_name!r}"
            )
        outcome = _unguarded(tool_name, error)
        if self._on_blocked is not None:
            self._on_blocked(outcome)
        return outcome

    def admit(
        self,
        key: Hashable,
        tool_name: str,
        arguments: Mapping[str, object] | str,
        context: object = None,
    ) -> Blocked | None:
        """Price the call ``key`` and hold its cost.

        A call already holding under ``key`` is admitted again without a second hold.

        Args:
            key: The call's key, see :func:`call_key`.
            tool_name: The tool about to run.
            arguments: Its arguments (mapping or raw JSON string).
            context: The framework's run context, passed to the resolver (if any).

        Returns:
            A :class:`~spendguard.pricing.Blocked` when the call must not run, else None
            (admitted; free calls hold nothing).
        """
        if self.held(key) is not None:
            return None
        guard = self.resolve(tool_name, context)
        if guard is None or isinstance(guard, Blocked):
            return guard
        token = CALL_KEY.set(_key_text(key))
        try:
            outcome = admit(
                guard,
                self.pricing,
                tool_name,
                arguments,
                settlement=self.settlement,
                release_on=self.release_on,
            )
        finally:
            CALL_KEY.reset(token)
        return self._record(key, outcome)

    async def aadmit(
        self,
        key: Hashable,
        tool_name: str,
        arguments: Mapping[str, object] | str,
        context: object = None,
    ) -> Blocked | None:
        """Async :meth:`admit`; the session is read in a worker thread when stale.

        The resolver is called on the event loop: it must not block (a
        :meth:`~spendguard.pool.GuardPool.get` never does I/O).
        """
        if self.held(key) is not None:
            return None
        guard = self.resolve(tool_name, context)
        if guard is None or isinstance(guard, Blocked):
            return guard
        token = CALL_KEY.set(_key_text(key))
        try:
            outcome = await aadmit(
                guard,
                self.pricing,
                tool_name,
                arguments,
                settlement=self.settlement,
                release_on=self.release_on,
            )
        finally:
            CALL_KEY.reset(token)
        return self._record(key, outcome)

    def adopt(self, key: Hashable, hold: Hold) -> None:
        """Settle ``hold``, taken outside :meth:`admit` (e.g. by an approval), as the call ``key``.

        The gate settles it by its rules when :meth:`settle` is called with ``key``. If the
        call already holds under ``key``, ``hold`` is released: one call holds once.
        """
        self._record(key, hold)

    def _record(self, key: Hashable, outcome: Hold | Blocked | None) -> Blocked | None:
        if isinstance(outcome, Blocked):
            if self._on_blocked is not None:
                self._on_blocked(outcome)
            return outcome
        if outcome is not None:
            with self._lock:
                duplicate = key in self._holds
                if not duplicate:
                    self._holds[key] = outcome
            if duplicate:  # another admit of the same call won the race
                settle(outcome, ran=False)
        return None

    def settle(self, key: Hashable, *, ran: bool, error: BaseException | None = None) -> None:
        """Settle the call ``key``: see the module rules. Never raises; unknown keys are ignored.

        Args:
            key: The key given to :meth:`admit`.
            ran: Whether the tool ran (and so may have spent).
            error: The exception the tool raised, if any.
        """
        with self._lock:
            hold = self._holds.pop(key, None)
        if hold is not None:
            settle(hold, ran=ran, error=error)

    async def asettle(
        self, key: Hashable, *, ran: bool, error: BaseException | None = None
    ) -> None:
        """Async :meth:`settle`: a shared ledger's round trip runs in a worker thread."""
        with self._lock:
            hold = self._holds.pop(key, None)
        if hold is not None:
            await hold._guard._offload(functools.partial(settle, hold, ran=ran, error=error))

    def __repr__(self) -> str:
        source = self.guard if self.guard is not None else self.resolver
        return f"ToolGate({source!r}, open_holds={len(self._holds)})"


_CALL_PREFIX = secrets.token_hex(4)
_CALLS = itertools.count(1)


def _key_text(key: Hashable) -> str:
    """The call key of decision records: the adapter's key when it is text or a run id, else
    one made per admission (identity keys have no stable text)."""
    if isinstance(key, (str, UUID, int)):
        return str(key)
    return f"call-{_CALL_PREFIX}-{next(_CALLS)}"


def as_pricing(pricing: object) -> Pricing:
    """A :class:`~spendguard.pricing.Pricing` from a Pricing or a mapping of rules.

    Raises:
        InvalidArgumentError: ``pricing`` is neither.
    """
    if isinstance(pricing, Pricing):
        return pricing
    if isinstance(pricing, Mapping):
        return Pricing(pricing)
    raise InvalidArgumentError(
        f"pricing must be a Pricing or a mapping of tool name to price, got {type(pricing)!r}",
        argument="pricing",
    )
