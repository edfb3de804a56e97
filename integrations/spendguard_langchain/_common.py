"""What both LangChain adapters share: the install hint, pricing input and settling a hold."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from spendguard import Hold, SpendGuardError
from spendguard.pricing import PriceRule, Pricing

__all__ = ["INSTALL_HINT", "Prices", "as_pricing", "settle"]

INSTALL_HINT = (
    'spendguard_langchain needs LangChain: pip install "spendguard[langchain]" '
    "(langchain-core and langchain 1.x)"
)

Prices = Pricing | Mapping[str, PriceRule]
"""A :class:`~spendguard.pricing.Pricing` or the rules to build one (tool name -> price)."""

_log = logging.getLogger("spendguard_langchain")


def as_pricing(prices: Prices) -> Pricing:
    """Return ``prices`` as a :class:`~spendguard.pricing.Pricing`."""
    return prices if isinstance(prices, Pricing) else Pricing(prices)


def settle(hold: Hold, *, failed: bool) -> None:
    """Commit the hold of a call that finished, release the one of a call that failed.

    A failure to settle is logged, not raised: the tool has already run, and a hold that is
    neither committed nor released lapses into a charge of its full amount (fail closed).
    """
    try:
        if failed:
            hold.release()
        else:
            hold.commit()
    except SpendGuardError:
        _log.warning("could not settle hold %s; it will lapse as spent", hold.id, exc_info=True)
