"""Types that appear in spendguard's public signatures, for annotations in your own code."""

from spendguard._hold import HoldState, ReleaseOn, Reservation
from spendguard._money import Amount
from spendguard._session import PaymentSessionClient

__all__ = ["Amount", "HoldState", "PaymentSessionClient", "ReleaseOn", "Reservation"]
