"""One CareRoute process: store, queue, audit, tenants, vendor clients and workers, wired up.

`handlers/http.py` puts an HTTP face on it; the demo and tests start it in-process.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Awaitable

from .audit import AuditLog
from .config import ServiceSettings
from .ingest import Delivery, Reply, receive
from .logging import get_logger
from .metrics import Metrics
from .model import TicketRef
from .queue import EnqueueResult, JobQueue
from .registry import TenantRegistry
from .store import Store
from .tenants import SqliteTokenStore, TenantDirectory
from .vendors import client_factory
from .worker import Pipeline, VendorClients, Worker, default_pipeline
from .zendesk.settings_sync import SettingsSync

log = get_logger("careroute.service")

DEDUPE_RETENTION_SECONDS = 3 * 86400  # longer than any vendor's redelivery window
MAINTENANCE_INTERVAL_SECONDS = 2.0
PURGE_INTERVAL_SECONDS = 3600.0


class Service:
    def __init__(self, settings: ServiceSettings, tenants: TenantDirectory, *,
                 pipeline: Pipeline | None = None,
                 factory_for=client_factory, insecure_dev: bool = False) -> None:
        self.settings = settings
        self.tenants = tenants
        self.metrics = Metrics()
        self.store = Store(Path(settings.data_dir) / "careroute.sqlite3")
        self.queue = JobQueue(
            self.store, lease_seconds=settings.lease_seconds, max_attempts=settings.max_attempts,
            retry_base_seconds=settings.retry_base_seconds,
            retry_max_seconds=settings.retry_max_seconds, group_commit_ms=settings.group_commit_ms)
        self.audit = AuditLog(self.store)
        self.clients = VendorClients(token_store=SqliteTokenStore(self.store), metrics=self.metrics,
                                     timeout_seconds=settings.vendor_timeout_seconds,
                                     factory_for=factory_for)
        key = settings.secret_key.get_secret_value() if settings.secret_key else None
        # Marketplace installs, the admin page and `careroute tenants` keep tenants here; changes
        # reach `tenants` (the directory every request and job reads) at once.
        self.registry = TenantRegistry(self.store, secret_key=key, directory=tenants,
                                       insecure_dev=insecure_dev)
        self.worker = Worker(queue=self.queue, tenants=tenants, clients=self.clients,
                             audit=self.audit, pipeline=pipeline or default_pipeline(),
                             metrics=self.metrics, concurrency=settings.worker_concurrency,
                             tenant_share=settings.worker_tenant_share)
        self._job_counts: dict[str, int] = {}
        self.metrics.watch_jobs(lambda: self._job_counts)
        self.settings_sync = SettingsSync.for_service(self, self.registry)
        self._maintenance: asyncio.Task[None] | None = None
        self.started_at = time.time()

    async def start(self, *, run_worker: bool = True) -> None:
        await self.store.open(exclusive=True)
        tenants_file = self.settings.tenants_file
        await self.registry.load_into(
            file_modified_at=Path(tenants_file).stat().st_mtime
            if tenants_file and Path(tenants_file).exists() else None)
        recovered = await self.queue.recover()
        self._job_counts = await self.queue.counts()
        log.info("service_started", tenants=len(self.tenants), recovered_leases=recovered,
                 jobs=self._job_counts)
        if run_worker:
            self.worker.start()
            self.settings_sync.start()
        self._maintenance = asyncio.create_task(self._maintain())

    async def stop(self) -> None:
        await self.settings_sync.stop()
        if self._maintenance is not None:
            self._maintenance.cancel()
            await asyncio.gather(self._maintenance, return_exceptions=True)
        await self.worker.stop(self.settings.shutdown_grace_seconds)
        await self.clients.aclose()
        await self.store.close()
        log.info("service_stopped")

    # Both hand back the coroutine rather than awaiting it: one frame less for every webhook to
    # suspend through and resume from while its batch commits.
    def enqueue(self, ref: TicketRef, received_at: float) -> Awaitable[EnqueueResult]:
        return self.queue.enqueue(ref, received_at=received_at)

    def receive(self, delivery: Delivery) -> Awaitable[Reply]:
        return receive(delivery, tenants=self.tenants.get, enqueue=self.enqueue,
                       body_limit=self.settings.body_limit_bytes, metrics=self.metrics)

    async def ready(self) -> bool:
        try:
            await self.store.run(lambda conn: conn.execute("SELECT 1").fetchone())
        except Exception:  # noqa: BLE001 — readiness is a yes/no
            return False
        return True

    async def _maintain(self) -> None:
        last_purge = 0.0
        while True:
            try:
                self._job_counts = await self.queue.counts()
                if time.monotonic() - last_purge > PURGE_INTERVAL_SECONDS:
                    await self.queue.purge_finished(DEDUPE_RETENTION_SECONDS)
                    last_purge = time.monotonic()
            except Exception as exc:  # noqa: BLE001 — maintenance must never die
                log.warning("maintenance_failed", error_type=type(exc).__name__)
            await asyncio.sleep(MAINTENANCE_INTERVAL_SECONDS)
