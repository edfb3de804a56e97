"""The Redis ledger, for several processes or replicas spending from one payment session.

>>> from spendguard.redis_ledger import RedisLedger
>>> ledger = RedisLedger.from_url("redis://localhost:6379/0")
>>> guard = SpendGuard(payment_manager_arn, payment_session_id, ledger=ledger)

Needs the ``redis`` extra: ``pip install "spendguard[redis]"``. Importing ``spendguard`` alone
never imports redis.
"""

from spendguard._redis_ledger import DECIMALS, RedisLedger

__all__ = ["DECIMALS", "RedisLedger"]
