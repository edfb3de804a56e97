"""The callback form: a LangChain callback handler that holds before every priced tool runs."""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from spendguard import Hold, Settlement, SpendGuard
from spendguard.gate import GuardResolver, OnBlocked, ToolGate
from spendguard.types import ReleaseOn
from spendguard_langchain._common import INSTALL_HINT, Prices, pricing_argument

try:
    from langchain_core.callbacks import BaseCallbackHandler
except ImportError as exc:  # tested by test_install_hint.py
    raise ImportError(INSTALL_HINT) from exc

__all__ = ["SpendGuardCallbackHandler"]


class SpendGuardCallbackHandler(BaseCallbackHandler):
    """Hold in ``on_tool_start``; settle in ``on_tool_end`` / ``on_tool_error``.

    A call that is not admitted raises the core's error (``BudgetExceededError``,
    ``PricingError``...) from ``on_tool_start``, so the tool never runs. The handler is sync
    with ``raise_error = True`` because LangChain swallows other handlers' exceptions; under
    ``ainvoke`` it runs in a worker thread. Inside ``create_agent`` a raise aborts the whole
    run: use :class:`~spendguard_langchain.SpendLimitMiddleware` there. A call that ran is
    committed, also when it raised or answered an error ``ToolMessage``, unless the error says
    nothing was spent (``NothingSpentError``, a ``release_on`` type). Holds are keyed by
    LangChain's ``run_id``, never by a model's tool call id.

    One handler serving many users resolves the guard per call: pass a resolver of the run's
    metadata (the ``metadata`` of the run's config, e.g. ``tool.invoke(args,
    config={"metadata": {"session_id": ...}})``; under LangGraph it also carries the
    ``configurable`` values such as ``thread_id``), a dict, empty when the run has none. A
    resolver that raises or returns no guard blocks the call (rule ``"session_unresolved"``).

    Args:
        guard: The guard whose payment session pays for the tools, or a resolver: a callable
            of the run's metadata dict returning the guard.
        pricing: Price rules by tool name, a :class:`~spendguard.pricing.Pricing` or a mapping.
        settlement: How committed charges settle, default the guard's.
        release_on: Exception types that, raised by a tool, mean it spent nothing.
        on_blocked: Called with each :class:`~spendguard.pricing.Blocked` call.
        prices: Deprecated alias of ``pricing``.
    """

    raise_error: bool = True
    run_inline: bool = False

    def __init__(
        self,
        guard: SpendGuard | GuardResolver,
        pricing: Prices | None = None,
        *,
        settlement: Settlement | None = None,
        release_on: ReleaseOn = (),
        on_blocked: OnBlocked | None = None,
        prices: Prices | None = None,
    ) -> None:
        super().__init__()
        self._gate = ToolGate(
            guard,
            pricing_argument(pricing, prices),
            settlement=settlement,
            release_on=release_on,
            on_blocked=on_blocked,
        )
        with _LOCK:
            _GATES.add(self._gate)

    @property
    def open_holds(self) -> Mapping[str, Hold]:
        """Holds of tool runs in flight, by hold id (a snapshot; falsy when none)."""
        return self._gate.open_holds

    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        inputs: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Price the call and hold its cost; raise the core's error to stop it."""
        name = str(serialized.get("name") or kwargs.get("name") or "")
        arguments = inputs if inputs is not None else input_str
        blocked = self._gate.admit(run_id, name, arguments, dict(metadata or {}))
        if blocked is not None:
            _block(run_id)
            raise blocked.error
        if _blocked(run_id):  # another spendguard handler stopped this run meanwhile
            self._gate.settle(run_id, ran=False)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Commit: the tool ran (an error ``ToolMessage`` too: it may have spent)."""
        self._gate.settle(run_id, ran=True)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Commit, unless ``error`` says nothing was spent."""
        self._gate.settle(run_id, ran=True, error=error)


# A run one handler blocks never reaches on_tool_end/on_tool_error, and under ainvoke the
# handlers' on_tool_start run concurrently: the blocker releases what the others hold, and
# remembers the run for those still admitting.
_GATES: weakref.WeakSet[ToolGate] = weakref.WeakSet()
_BLOCKED: OrderedDict[UUID, None] = OrderedDict()
_BLOCKED_KEPT = 4096
_LOCK = threading.Lock()


def _block(run_id: UUID) -> None:
    with _LOCK:
        _BLOCKED[run_id] = None
        while len(_BLOCKED) > _BLOCKED_KEPT:
            _BLOCKED.popitem(last=False)
        gates = list(_GATES)
    for gate in gates:
        gate.settle(run_id, ran=False)


def _blocked(run_id: UUID) -> bool:
    with _LOCK:
        return run_id in _BLOCKED
