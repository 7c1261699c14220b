"""The per-user token bucket: a burst, then a trickle; one notice per flood; users independent."""
from __future__ import annotations

from clients.bot.ratelimit import PerUserRateLimiter


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refusal_with_a_single_notice():
    """After `burst` requests the user is refused; only the first refusal asks to notify them."""
    limiter = PerUserRateLimiter(burst=3, per_minute=6, clock=Clock())
    decisions = [limiter.check(1) for _ in range(7)]
    assert [d.allowed for d in decisions] == [True] * 3 + [False] * 4
    assert [d.notify for d in decisions[3:]] == [True, False, False, False]
    assert 9.0 <= decisions[3].retry_after_s <= 10.0  # 6 per minute: one token every 10 s


def test_tokens_come_back_with_time_and_the_notice_resets():
    """Waiting earns tokens at the configured rate; a new flood is announced again."""
    clock = Clock()
    limiter = PerUserRateLimiter(burst=2, per_minute=60, clock=clock)
    assert limiter.check(1).allowed and limiter.check(1).allowed
    assert not limiter.check(1).allowed
    clock.now += 1.0
    assert limiter.check(1).allowed
    refused = limiter.check(1)
    assert not refused.allowed and refused.notify
    clock.now += 100.0
    assert [limiter.check(1).allowed for _ in range(3)] == [True, True, False]


def test_one_users_flood_leaves_others_alone():
    """A flood from one id never spends another id's tokens."""
    limiter = PerUserRateLimiter(burst=2, per_minute=1, clock=Clock())
    for _ in range(50):
        limiter.check(666)
    assert all(limiter.check(7).allowed for _ in range(2))
    assert not limiter.check(666).allowed


def test_memory_stays_bounded_under_many_ids():
    """Full (idle) buckets are forgotten once max_users ids are tracked."""
    clock = Clock()
    limiter = PerUserRateLimiter(burst=2, per_minute=60, clock=clock, max_users=100)
    for uid in range(1000):
        limiter.check(uid)
        clock.now += 2.0  # earlier users refill meanwhile
    assert len(limiter._buckets) <= 100
