"""How long a fetched session stays fresh, and the single-flight cache that holds it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from cachetools import TLRUCache

from spendguard._session import SessionSnapshot

__all__ = ["Freshness", "SessionCache"]


@dataclass(frozen=True, slots=True)
class Freshness:
    """Freshness rules for the cached payment session.

    A snapshot's lifetime is ``fraction`` of its age (the time since the server last changed
    the available amount), the heuristic freshness of RFC 9111 section 4.2.2 with ``updatedAt``
    as Last-Modified: a session nobody has spent from for ten minutes is unlikely to change in
    the next minute, one spent from a second ago may change any moment. The lifetime is
    clamped to ``[min_ttl, max_ttl]`` and never runs past the session's expiry minus
    ``expiry_margin``.

    Staleness is safe for the guard's own spending (holds and local commits are subtracted
    from what the server reports); it only hides spending by others that bypass this guard's
    ledger, for at most ``max_ttl`` seconds.

    Attributes:
        fraction: Share of the snapshot's age it stays fresh (default 10 %).
        min_ttl: Floor in seconds (default 1 s): one read serves a burst of calls.
        max_ttl: Ceiling in seconds (default 30 s): bounds how long outside spending is unseen.
        expiry_margin: Seconds before expiry at which charges stop (default 30 s), so a call
            admitted just before expiry still has time to complete and settle.
        skew_tolerance: Seconds of clock uncertainty allowed when matching local commits to
            server update times (default 2 s: the ``Date`` header has 1 s resolution).
    """

    fraction: float = 0.1
    min_ttl: float = 1.0
    max_ttl: float = 30.0
    expiry_margin: float = 30.0
    skew_tolerance: float = 2.0

    def __post_init__(self) -> None:
        for name in ("fraction", "min_ttl", "max_ttl", "expiry_margin", "skew_tolerance"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not (0 <= value < float("inf"))
            ):
                raise ValueError(f"Freshness.{name} must be a finite number >= 0, got {value!r}")
        if self.min_ttl > self.max_ttl:
            raise ValueError("Freshness.min_ttl must not exceed max_ttl")

    def ttl(self, snapshot: SessionSnapshot, now: float) -> float:
        """Seconds from ``now`` (local clock) that ``snapshot`` stays fresh."""
        server_now = now + snapshot.skew
        age = max(0.0, server_now - snapshot.last_update.timestamp())
        ttl = min(max(self.fraction * age, self.min_ttl), self.max_ttl)
        until_expiry = snapshot.expires_at.timestamp() - self.expiry_margin - server_now
        # An expired session cannot come back: keep it for min_ttl rather than refetching.
        return min(ttl, until_expiry) if until_expiry > 0 else self.min_ttl


_KEY = "session"


class SessionCache:
    """One session's snapshot in a cachetools TLRUCache, with single-flight refills.

    Monotonic: a fetched snapshot whose server update time is older than the newest one seen
    never replaces it (a lagging replica cannot roll the budget back).
    """

    def __init__(self, freshness: Freshness, clock: Callable[[], float]) -> None:
        self._freshness = freshness
        self._lock = threading.Lock()
        self._fill_lock = threading.Lock()
        self._clock = clock
        self._newest: SessionSnapshot | None = None
        self._fast: tuple[SessionSnapshot | None, float] = (None, 0.0)
        self._cache: TLRUCache[str, SessionSnapshot] = TLRUCache(
            maxsize=1, ttu=self._ttu, timer=clock
        )

    def _ttu(self, _key: str, snapshot: SessionSnapshot, now: float) -> float:
        return now + self._freshness.ttl(snapshot, now)

    def get(self) -> SessionSnapshot | None:
        """The fresh snapshot, or None when a fetch is due."""
        # Lock-free fast path: one atomic read of what the last put() computed for the TLRU
        # entry; the locked cache lookup decides whenever that is not clearly fresh.
        snapshot, until = self._fast
        if snapshot is not None and self._clock() < until:
            return snapshot
        with self._lock:
            return self._cache.get(_KEY)

    def get_or_fill(self, fetch: Callable[[], SessionSnapshot]) -> SessionSnapshot:
        """The fresh snapshot, fetching it once however many callers miss together."""
        cached = self.get()
        if cached is not None:
            return cached
        with self._fill_lock:
            cached = self.get()
            if cached is not None:
                return cached
            return self.put(fetch())

    def put(self, snapshot: SessionSnapshot) -> SessionSnapshot:
        """Install ``snapshot`` unless an already seen one is newer; return the one kept."""
        with self._lock:
            newest = self._newest
            if newest is not None and _older(snapshot, newest):
                snapshot = newest
            self._newest = snapshot
            self._cache[_KEY] = snapshot
            self._fast = (snapshot, self._ttu(_KEY, snapshot, self._clock()))
            return snapshot

    @property
    def newest(self) -> SessionSnapshot | None:
        """The newest snapshot ever seen, fresh or not."""
        return self._newest

    def fresh_until(self) -> float | None:
        """Local time at which the cached snapshot goes stale, None if none is fresh."""
        with self._lock:
            return self._fast[1] if _KEY in self._cache else None


def _older(candidate: SessionSnapshot, newest: SessionSnapshot) -> bool:
    if candidate.last_update != newest.last_update:
        return candidate.last_update < newest.last_update
    # Same update time: keep the more conservative reading.
    return candidate.available > newest.available
