"""Helpers for the onboarding tests: the service app (create_app + the onboarding and sidebar
routes) on 127.0.0.1 with a tenant registry, next to a Zendesk sandbox."""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator

import httpx
from aiohttp.test_utils import TestServer

from plugin.config import ServiceSettings, TenantConfig, tenant_from_dict
from plugin.handlers.http import create_app
from plugin.registry import TenantRegistry, generate_key
from plugin.service import Service
from plugin.tenants import TenantDirectory
from plugin.zendesk.webhook import sign

REGISTRATION_TOKEN = "registration-token-for-tests-0001"
ADMIN_TOKEN = "tenant-admin-token-for-tests-0002"


@dataclass
class RunningService:
    service: Service
    registry: TenantRegistry
    server: TestServer
    http: httpx.AsyncClient

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")


@contextlib.asynccontextmanager
async def running_service(data_dir: Path, *, tenants: list[TenantConfig] = (),
                          run_worker: bool = True, **settings: Any
                          ) -> AsyncIterator[RunningService]:
    values: dict[str, Any] = {"data_dir": data_dir, "worker_concurrency": 2,
                              "retry_base_seconds": 0.05, "retry_max_seconds": 0.1,
                              "secret_key": generate_key(),
                              "registration_token": REGISTRATION_TOKEN}
    values.update(settings)
    directory = TenantDirectory(tenants)
    service = Service(ServiceSettings(**values), directory)
    app = create_app(service, manage_service=False)  # with the sidebar API and onboarding routes
    registry = service.registry
    server = TestServer(app, host="127.0.0.1")
    await service.start(run_worker=run_worker)
    # Tests drive settings sync themselves (on demand or with their own SettingsSync).
    await service.settings_sync.stop()
    await server.start_server()
    # The OAuth redirect and provisioning need the service's own address, known only now.
    service.settings.public_url = str(server.make_url("")).rstrip("/")
    http = httpx.AsyncClient(base_url=service.settings.public_url, timeout=10)
    try:
        yield RunningService(service, registry, server, http)
    finally:
        await http.aclose()
        await server.close()
        await service.stop()


def zendesk_tenant(base_url: str, tenant_id: str = "acme", **extra: Any) -> TenantConfig:
    return tenant_from_dict({
        "id": tenant_id, "vendor": "zendesk", "subdomain": tenant_id, "base_url": base_url,
        "webhook_secret": f"zd-webhook-secret-{tenant_id}-0123456789",
        "admin_token": ADMIN_TOKEN,
        "auth": {"kind": "api_token", "email": "agent@sandbox.test", "token": "sandbox-token"},
        **extra})


def signed_delivery(tenant: TenantConfig, ticket_id: int | str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"event": "created", "ticket_id": str(ticket_id),
                       "requester_locale": "en-GB"}).encode()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return body, {"Content-Type": "application/json",
                  "X-Zendesk-Webhook-Signature": sign(tenant.webhook_secret.get_secret_value(),
                                                      stamp, body),
                  "X-Zendesk-Webhook-Signature-Timestamp": stamp,
                  "X-Zendesk-Webhook-Invocation-Id": f"inv-{ticket_id}-{time.monotonic_ns()}"}


def bearer(token: str = ADMIN_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
