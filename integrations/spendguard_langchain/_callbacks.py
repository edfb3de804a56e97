"""The callback form: a LangChain callback handler that reserves before every priced tool runs."""

from __future__ import annotations

import threading
from typing import Any
from uuid import UUID

from spendguard import Hold, Settlement, SpendGuard
from spendguard.pricing import Blocked, admit
from spendguard_langchain._common import INSTALL_HINT, Prices, as_pricing, settle

try:
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.messages import ToolMessage
except ImportError as exc:  # pragma: no cover - exercised in a subprocess-free import test
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
        self._holds: dict[UUID, Hold] = {}
        self._lock = threading.Lock()

    @property
    def open_holds(self) -> int:
        """How many tool calls hold budget right now (started, not yet ended)."""
        with self._lock:
            return len(self._holds)

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
        with self._lock:
            if run_id in self._holds:  # the same handler reached twice for one run
                return
        name = str(serialized.get("name") or kwargs.get("name") or "")
        arguments = inputs if inputs is not None else input_str
        outcome = admit(self._guard, self._pricing, name, arguments, settlement=self._settlement)
        if isinstance(outcome, Blocked):
            raise outcome.error
        if outcome is not None:
            with self._lock:
                self._holds[run_id] = outcome

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Commit the call's hold; release it if the tool reported an error result."""
        if hold := self._pop(run_id):
            failed = isinstance(output, ToolMessage) and output.status == "error"
            settle(hold, failed=failed)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Release the call's hold: the tool raised."""
        if hold := self._pop(run_id):
            settle(hold, failed=True)

    def _pop(self, run_id: UUID) -> Hold | None:
        with self._lock:
            return self._holds.pop(run_id, None)
