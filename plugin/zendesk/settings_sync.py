"""Thresholds an admin sets in the CareRoute Zendesk app reach the service.

Zendesk tells a server nothing when an app's settings change, so the service reads them: `GET
/api/v2/apps/installations.json`, picks the CareRoute installation, maps its settings
(manifests/zendesk/manifest.json: concern_threshold, high_threshold, imminent_threshold,
trained_group_id, tag_prefix, auto_reply) onto the tenant's config and, when something differs,
`registry.update(…, actor="zendesk-app-settings")`. The directory the worker reads is updated
by the registry, so the next ticket uses the new values.

`SettingsSync` does this every `settings_sync_seconds` for every enabled Zendesk tenant, and
first reloads the registry so changes made by `careroute tenants …` in another process arrive
too. `POST /api/v1/zendesk/{tenant}/settings/sync` (handlers/onboarding.py) runs it on demand.
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from ..config import TenantConfig
from ..errors import CareRouteError, ConfigError
from ..logging import get_logger
from ..registry import TenantRegistry, settings_diff
from ..vendors import ClientContext
from .client import ZendeskClient

if TYPE_CHECKING:
    from ..service import Service
    from ..tenants import TenantDirectory
    from ..worker import VendorClients

log = get_logger("careroute.settings_sync")

INSTALLATIONS = "/api/v2/apps/installations.json"
APP_NAME = "CareRoute"
ACTOR = "zendesk-app-settings"
THRESHOLD_SETTINGS = {"concern_threshold": "concern", "high_threshold": "high",
                      "imminent_threshold": "imminent"}


def find_installation(installations: Iterable[Any], tenant: TenantConfig) -> dict[str, Any] | None:
    """Our installation: the marketplace app id when the tenant has one, else the installation
    whose `tenant_id` setting names this tenant, else the only one named CareRoute that names no
    tenant. Enabled ones only."""
    candidates = [i for i in installations if isinstance(i, dict) and i.get("enabled", True)
                  and isinstance(i.get("settings"), dict)]
    if tenant.marketplace is not None:
        by_app = [i for i in candidates if str(i.get("app_id")) == tenant.marketplace.app_id]
        if by_app:
            return by_app[0]
    by_tenant = [i for i in candidates if str(i["settings"].get("tenant_id") or "").strip()
                 == tenant.id]
    if by_tenant:
        return by_tenant[0]
    # By name only when the installation names no tenant (one naming another tenant is not ours).
    by_name = [i for i in candidates if not str(i["settings"].get("tenant_id") or "").strip()
               and APP_NAME in (i["settings"].get("name"), i["settings"].get("title"))]
    return by_name[0] if len(by_name) == 1 else None


def _number(name: str, value: Any, tenant: TenantConfig) -> float | None:
    """Zendesk returns number settings as numbers or strings; blank means "not set"."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise ConfigError(f"tenant {tenant.id!r}: app setting {name}: must be a number")
    return number


def changes_from_settings(settings: Mapping[str, Any], tenant: TenantConfig) -> dict[str, Any]:
    """The app's settings → registry changes (keys the settings do not hold are left alone)."""
    changes: dict[str, Any] = {}
    thresholds = {}
    for name, tier in THRESHOLD_SETTINGS.items():
        value = _number(name, settings.get(name), tenant)
        if value is not None:
            thresholds[tier] = value
    if thresholds:
        changes["screening"] = thresholds
    if "trained_group_id" in settings:
        group = _number("trained_group_id", settings["trained_group_id"], tenant)
        if group is not None and (group <= 0 or not group.is_integer()):
            raise ConfigError(f"tenant {tenant.id!r}: app setting trained_group_id: must be a "
                              "group id")
        changes["trained_group_id"] = int(group) if group is not None else None
    prefix = settings.get("tag_prefix")
    if isinstance(prefix, str) and prefix.strip():
        changes["tag_prefix"] = prefix.strip()
    if "auto_reply" in settings:
        raw = settings["auto_reply"]
        enabled = raw if isinstance(raw, bool) else str(raw).strip().lower() in ("true", "1")
        changes["auto_reply"] = {"enabled": enabled}
        changes["actions"] = {"imminent": {"auto_reply": enabled}}
    return changes


async def read_app_settings(tenant: TenantConfig, context: ClientContext) -> dict[str, Any] | None:
    client = ZendeskClient(tenant, context)
    try:
        body = await client.request_json("GET", INSTALLATIONS)
    finally:
        await client.aclose()
    installations = body.get("installations") if isinstance(body, dict) else None
    installation = find_installation(installations or [], tenant)
    return dict(installation["settings"]) if installation else None


async def sync_tenant(tenant: TenantConfig, registry: TenantRegistry,
                      context: ClientContext) -> list[str]:
    """Read the app's settings for one tenant and store what differs. Returns the names of the
    changed keys ([] when none, or when the app is not installed)."""
    settings = await read_app_settings(tenant, context)
    if settings is None:
        return []
    changes = changes_from_settings(settings, tenant)
    if not changes:
        return []
    current = await registry.get(tenant.id) or tenant
    updated = await registry.update(tenant.id, changes, actor=ACTOR)
    changed = settings_diff(current, updated)
    if changed:
        log.info("app_settings_synced", tenant_id=tenant.id, keys=changed)
    return changed


class SettingsSync:
    """Runs `sync_tenant` for every enabled Zendesk tenant every `interval_seconds`."""

    def __init__(self, registry: TenantRegistry, *, tenants: "TenantDirectory",
                 clients: "VendorClients", interval_seconds: float,
                 timeout_seconds: float = 15.0) -> None:
        self.registry = registry
        self.tenants = tenants
        self.clients = clients
        self.interval_seconds = interval_seconds
        self.timeout_seconds = timeout_seconds
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def for_service(cls, service: "Service", registry: TenantRegistry) -> "SettingsSync":
        return cls(registry, tenants=service.tenants, clients=service.clients,
                   interval_seconds=service.settings.settings_sync_seconds,
                   timeout_seconds=service.settings.vendor_timeout_seconds)

    def context(self, tenant: TenantConfig) -> ClientContext:
        return ClientContext(budget=self.clients.budget(tenant),
                             token_store=self.clients.token_store,
                             timeout_seconds=self.timeout_seconds)

    async def run_once(self) -> dict[str, list[str]]:
        """One round: reload the registry, then sync each Zendesk tenant; one tenant's failure
        never stops the others. Returns {tenant id: changed keys} for the tenants that changed."""
        if self.registry.directory is not None:
            await self.registry.load_into()
        changed: dict[str, list[str]] = {}
        for tenant in self.tenants:
            if tenant.vendor != "zendesk" or not tenant.enabled:
                continue
            try:
                keys = await sync_tenant(tenant, self.registry, self.context(tenant))
            except CareRouteError as exc:
                log.warning("app_settings_sync_failed", tenant_id=tenant.id, reason=exc.reason)
                continue
            if keys:
                changed[tenant.id] = keys
        return changed

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception as exc:  # noqa: BLE001 — the schedule must never die
                log.warning("app_settings_sync_round_failed", error_type=type(exc).__name__)
            await asyncio.sleep(self.interval_seconds)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="careroute-settings-sync")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
