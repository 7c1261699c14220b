"""A per-user token bucket: each user may send a burst, then a steady trickle; floods are refused.

Hand-written on purpose: it is a few lines, must answer "allowed now?" without waiting (the
async limiters on PyPI queue callers instead), and keys on the Telegram user id.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    """Holds up to `capacity` tokens, refilled at `rate` tokens per second."""

    capacity: float
    rate: float
    tokens: float = -1.0
    stamp: float = 0.0

    def refill(self, now: float) -> None:
        """Add the tokens earned since the last look, up to capacity."""
        if self.tokens < 0:
            self.tokens, self.stamp = self.capacity, now
            return
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self, now: float, cost: float = 1.0) -> bool:
        """Spend `cost` tokens if there are enough."""
        self.refill(now)
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False

    def wait_s(self, cost: float = 1.0) -> float:
        """Seconds until `cost` tokens will be there (after the last refill)."""
        missing = cost - self.tokens
        return 0.0 if missing <= 0 else missing / self.rate if self.rate > 0 else float("inf")


@dataclass
class Decision:
    """The answer for one request: allowed or not, whether to tell the user, and when to retry."""

    allowed: bool
    notify: bool = False
    retry_after_s: float = 0.0


@dataclass
class PerUserRateLimiter:
    """One bucket per user id; the first refusal of a run is flagged so the user is told once."""

    burst: int = 10
    per_minute: float = 10.0
    clock: Callable[[], float] = time.monotonic
    max_users: int = 100_000
    _buckets: dict[int, TokenBucket] = field(default_factory=dict)
    _told: set[int] = field(default_factory=set)

    def check(self, user_id: int, cost: float = 1.0) -> Decision:
        """Spend a token of `user_id`'s bucket, or refuse (and say whether to notify them)."""
        now = self.clock()
        bucket = self._buckets.get(user_id)
        if bucket is None:
            self._forget_idle(now)
            bucket = self._buckets[user_id] = TokenBucket(self.burst, self.per_minute / 60.0)
        if bucket.take(now, cost):
            self._told.discard(user_id)
            return Decision(True)
        notify = user_id not in self._told
        self._told.add(user_id)
        return Decision(False, notify=notify, retry_after_s=bucket.wait_s(cost))

    def _forget_idle(self, now: float) -> None:
        """Drop full buckets when too many users are tracked (a full bucket equals a new one)."""
        if len(self._buckets) < self.max_users:
            return
        for uid, bucket in list(self._buckets.items()):
            bucket.refill(now)
            if bucket.tokens >= bucket.capacity:
                del self._buckets[uid]
                self._told.discard(uid)
