"""LangChain integration for spendguard: a callback handler and an agent middleware.

Pick the middleware (:class:`SpendLimitMiddleware`) for ``create_agent`` agents: a blocked call
becomes an error ``ToolMessage`` the model can act on. Pick the callback handler
(:class:`SpendGuardCallbackHandler`) for tools run outside ``create_agent`` (chains, LangGraph
graphs, direct ``tool.invoke``): a blocked call raises and the tool never runs.

Install with ``pip install "spendguard[langchain]"``.
"""

from spendguard_langchain._callbacks import SpendGuardCallbackHandler
from spendguard_langchain._middleware import ExitBehavior, SpendLimitMiddleware

__all__ = ["ExitBehavior", "SpendGuardCallbackHandler", "SpendLimitMiddleware"]
