"""The worker's lease loop with a stand-in queue: stopping hands unfinished jobs back, and an
idle worker does not spin while the only work belongs to a tenant at its share of the workers.
(The fairness it buys is proven end to end in tests/integration/test_vendor_faults.py.)"""

from __future__ import annotations

import asyncio
import itertools
import time

from plugin.config import tenant_from_dict
from plugin.model import TicketRef
from plugin.queue import Job
from plugin.tenants import TenantDirectory
from plugin.worker import Worker


def _tenant(tenant_id: str, *, enabled: bool = True):
    return tenant_from_dict({"id": tenant_id, "vendor": "zendesk", "subdomain": tenant_id,
                             "webhook_secret": "loop-secret-123", "enabled": enabled,
                             "auth": {"kind": "api_token", "email": "a@b.c", "token": "t"}})


class EndlessQueue:
    """Every lease gets a new job of tenant "busy" unless it is excluded; counts the calls."""

    def __init__(self) -> None:
        self.ready = asyncio.Event()
        self.leases = 0
        self.released: list[str] = []
        self._ids = itertools.count(1)

    async def lease(self, *, exclude_tenants=()):
        self.leases += 1
        if "busy" in set(exclude_tenants):
            return None
        n = next(self._ids)
        ref = TicketRef(vendor="zendesk", tenant_id="busy", ticket_id=str(n), delivery_id=f"d{n}")
        return Job(f"job-{n}", ref, 1, 1, time.time())

    async def next_ready_in(self, *, exclude_tenants=()):
        # Jobs of "busy" are due now; nobody else has any.
        return None if "busy" in set(exclude_tenants) else 0.0

    async def release(self, job_id: str) -> None:
        self.released.append(job_id)


class NoLimits:
    def blocked_tenants(self) -> set[str]:
        return set()

    def next_unblock_in(self) -> None:
        return None


def _worker(queue: EndlessQueue, tenants: list, concurrency: int = 4) -> Worker:
    worker = Worker(queue=queue, tenants=TenantDirectory(tenants), clients=NoLimits(),  # type: ignore[arg-type]
                    audit=None, pipeline=None, concurrency=concurrency,  # type: ignore[arg-type]
                    idle_poll_seconds=0.25, crisis_load=object())  # type: ignore[arg-type]

    async def hang(job: Job) -> None:  # a helpdesk that never answers
        await asyncio.Event().wait()

    worker.process = hang  # type: ignore[method-assign]
    return worker


async def test_stopping_hands_unfinished_jobs_back():
    queue = EndlessQueue()
    worker = _worker(queue, [_tenant("busy")], concurrency=3)
    worker.start()
    await asyncio.sleep(0.05)
    await worker.stop(grace_seconds=0.05)
    assert sorted(queue.released) == ["job-1", "job-2", "job-3"]


async def test_an_idle_worker_waits_while_the_busy_tenant_is_at_its_share():
    queue = EndlessQueue()
    worker = _worker(queue, [_tenant("busy"), _tenant("quiet")], concurrency=4)
    assert worker.tenant_limit() == 3
    worker.start()
    await asyncio.sleep(0.6)
    leases = queue.leases
    await worker.stop(grace_seconds=0.01)
    # 3 leases that got jobs, then the 4th worker polls every 0.25 s: a handful, not hundreds.
    assert 4 <= leases <= 10, leases


async def test_a_disabled_tenant_does_not_shrink_the_share():
    worker = _worker(EndlessQueue(), [_tenant("busy"), _tenant("gone", enabled=False)])
    assert worker.tenant_limit() == 4


def test_a_rate_limited_tenant_is_waited_for_until_its_block_ends():
    from plugin.worker import VendorClients

    clients = VendorClients(token_store=None)  # type: ignore[arg-type]
    assert clients.next_unblock_in() is None
    clients.budget(_tenant("busy")).block(2.0)
    clients.budget(_tenant("quiet")).block(0.5)
    wait = clients.next_unblock_in()
    assert wait is not None and 0.4 < wait <= 0.5
    assert clients.blocked_tenants() == {"busy", "quiet"}
