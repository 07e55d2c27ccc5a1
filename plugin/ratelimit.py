"""Per-tenant vendor budget: a token bucket plus what the vendor says (remaining, Retry-After).

Clients call `await budget.acquire()` before each request and `budget.observe(info)` after it.
The worker asks `blocked_for()` so it does not lease a tenant's jobs while that tenant is
waiting out a Retry-After — a tenant in trouble never holds a worker the others could use.
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable

from .model import RateLimitInfo


class RateBudget:
    def __init__(self, per_minute: float, *, headroom: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        self.per_minute = float(per_minute)
        self.headroom = headroom
        self._clock = clock
        self._tokens = max(1.0, self.per_minute / 6)  # allow a short burst (10 s worth)
        self._capacity = self._tokens
        self._updated = clock()
        self._blocked_until = 0.0
        self._lock = asyncio.Lock()
        self.last_info: RateLimitInfo | None = None

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self._capacity, self._tokens + elapsed * self.per_minute / 60.0)
        self._updated = now

    def blocked_for(self) -> float:
        """Seconds until the vendor allows this tenant's next request (0 → now)."""
        return max(0.0, self._blocked_until - self._clock())

    def block(self, seconds: float) -> None:
        """Send nothing for `seconds` (Retry-After)."""
        self._blocked_until = max(self._blocked_until, self._clock() + max(0.0, seconds))

    def observe(self, info: RateLimitInfo) -> None:
        self.last_info = info
        if info.retry_after is not None:
            self.block(info.retry_after)
            return
        if info.remaining is not None and info.limit:
            # Keep `headroom` of the vendor's window for others (e.g. Freshdesk's own webhooks).
            reserve = info.limit * self.headroom
            if info.remaining <= reserve:
                self.block(info.reset_seconds if info.reset_seconds is not None else 60.0)

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                wait = self._blocked_until - now
                if wait <= 0:
                    self._refill(now)
                    if self._tokens >= 1.0:
                        self._tokens -= 1.0
                        return
                    wait = (1.0 - self._tokens) * 60.0 / self.per_minute
                await asyncio.sleep(wait)
