"""The callback form: a LangChain callback handler that reserves before every priced tool runs."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any
from uuid import UUID

from spendguard import Hold, Settlement, SpendGuard
from spendguard.pricing import Blocked, admit, settle
from spendguard_langchain._common import INSTALL_HINT, Prices, as_pricing

try:
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.messages import ToolMessage
except ImportError as exc:  # tested by test_install_hint.py
    raise ImportError(INSTALL_HINT) from exc

__all__ = ["SpendGuardCallbackHandler"]


class SpendGuardCallbackHandler(BaseCallbackHandler):
    """Reserve budget in ``on_tool_start``; commit on ``on_tool_end``, release on ``on_tool_error``.

    The handler raises from ``on_tool_start`` when a call is not admitted, so the tool never
    runs: the error is the core's (``BudgetExceededError``, ``PricingError``,
    ``SessionError``...). It is a *synchronous* handler with ``raise_error = True`` on purpose:
    LangChain swallows exceptions of handlers without ``raise_error`` and, whatever the flag,
    of an ``AsyncCallbackHandler`` when a sync tool runs. Under ``ainvoke`` LangChain awaits this
    handler in a worker thread, so the exception still reaches the caller and the session read
    does not block the event loop.

    Inside ``create_agent`` a raising callback aborts the whole agent run. When the model should
    instead be told and carry on, use :class:`~spendguard_langchain.SpendLimitMiddleware`.

    Example:
        ```python
        handler = SpendGuardCallbackHandler(guard, prices={"buy_report": "2.50"})
        search_tool.invoke({"query": "..."}, config={"callbacks": [handler]})
        ```

    Args:
        guard: The guard whose payment session pays for the tools.
        prices: Tool name -> price rule, or a ready :class:`~spendguard.pricing.Pricing`.
            Tools without a rule are free (unless the Pricing is strict).
        settlement: Passed to every reservation; None uses the guard's default.
    """

    raise_error: bool = True
    run_inline: bool = False

    def __init__(
        self, guard: SpendGuard, prices: Prices, *, settlement: Settlement | None = None
    ) -> None:
        super().__init__()
        self._guard = guard
        self._pricing = as_pricing(prices)
        self._settlement = settlement

    @property
    def open_holds(self) -> int:
        """How many tool calls hold budget through this handler right now."""
        return _RUNS.count(self)

    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Price the call and reserve its cost; raise to stop a call that is not admitted.

        Raises:
            SpendGuardError: The call was not admitted (budget, pricing, session); the tool
                does not run and no hold is left behind.
        """
        name = str(serialized.get("name") or kwargs.get("name") or "")
        arguments = inputs if inputs is not None else input_str
        outcome = admit(self._guard, self._pricing, name, arguments, settlement=self._settlement)
        if isinstance(outcome, Blocked):
            # The tool will not run and on_tool_error will not fire: release what other
            # spendguard handlers (a second guard) already hold for this run.
            for hold in _RUNS.block(run_id):
                settle(hold, ran=False)
            raise outcome.error
        if outcome is not None and not _RUNS.add(run_id, self, outcome):
            settle(outcome, ran=False)  # another handler blocked this run meanwhile

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Commit the call's hold; release it if the tool reported an error result."""
        if hold := _RUNS.take(run_id, self):
            failed = isinstance(output, ToolMessage) and output.status == "error"
            settle(hold, ran=not failed)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Release the call's hold: the tool raised."""
        if hold := _RUNS.take(run_id, self):
            settle(hold, ran=False)


class _OpenRuns:
    """Open holds of every handler in the process, by tool run; remembers runs blocked."""

    _BLOCKED_KEPT = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holds: dict[UUID, dict[SpendGuardCallbackHandler, Hold]] = {}
        self._blocked: OrderedDict[UUID, None] = OrderedDict()

    def add(self, run_id: UUID, owner: SpendGuardCallbackHandler, hold: Hold) -> bool:
        with self._lock:
            if run_id in self._blocked:
                return False
            by_owner = self._holds.setdefault(run_id, {})
            if owner in by_owner:  # the same handler reached twice for one run
                return False
            by_owner[owner] = hold
            return True

    def take(self, run_id: UUID, owner: SpendGuardCallbackHandler) -> Hold | None:
        with self._lock:
            by_owner = self._holds.get(run_id, {})
            hold = by_owner.pop(owner, None)
            if not by_owner:
                self._holds.pop(run_id, None)
            return hold

    def block(self, run_id: UUID) -> list[Hold]:
        with self._lock:
            self._blocked[run_id] = None
            while len(self._blocked) > self._BLOCKED_KEPT:
                self._blocked.popitem(last=False)
            return list(self._holds.pop(run_id, {}).values())

    def count(self, owner: SpendGuardCallbackHandler) -> int:
        with self._lock:
            return sum(owner in by_owner for by_owner in self._holds.values())


_RUNS = _OpenRuns()
