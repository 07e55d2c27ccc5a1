"""The tenants the service knows, and the runtime state kept per tenant (rotated OAuth tokens).

Self-hosting reads a tenants file (DESIGN.md). `TenantDirectory` is the one lookup the rest of
the service uses, so the registry in the store (marketplace installs) can plug in beside it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterable, Iterator

from .config import TenantConfig, load_tenants, secret_values
from .logging import redactor
from .store import Store
from .vendors import OAuthTokens


class TenantDirectory:
    def __init__(self, tenants: Iterable[TenantConfig] = ()) -> None:
        self._tenants: dict[str, TenantConfig] = {}
        for tenant in tenants:
            self.put(tenant)

    @classmethod
    def from_file(cls, path: Path) -> "TenantDirectory":
        return cls(load_tenants(path).values())

    def put(self, tenant: TenantConfig) -> None:
        """Add or replace a tenant; its secrets are registered with the log redactor first."""
        redactor.add_secrets(secret_values(tenant))
        self._tenants[tenant.id] = tenant

    def remove(self, tenant_id: str) -> None:
        self._tenants.pop(tenant_id, None)

    def get(self, tenant_id: str) -> TenantConfig | None:
        return self._tenants.get(tenant_id)

    __call__ = get

    def __iter__(self) -> Iterator[TenantConfig]:
        return iter(list(self._tenants.values()))

    def __len__(self) -> int:
        return len(self._tenants)


class SqliteTokenStore:
    """plugin.vendors.TokenStore on the embedded store: rotated tokens survive restarts."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def load(self, tenant_id: str) -> OAuthTokens | None:
        row = await self.store.run(lambda conn: conn.execute(
            "SELECT access_token, refresh_token, expires_at FROM oauth_tokens WHERE tenant_id = ?",
            (tenant_id,)).fetchone())
        if row is None:
            return None
        return OAuthTokens(access_token=row[0], refresh_token=row[1], expires_at=row[2])

    async def save(self, tenant_id: str, tokens: OAuthTokens) -> None:
        redactor.add_secrets([tokens.access_token, tokens.refresh_token or ""])
        now = time.time()
        await self.store.run(lambda conn: conn.execute(
            "INSERT INTO oauth_tokens (tenant_id, access_token, refresh_token, expires_at, updated_at)"
            " VALUES (?,?,?,?,?) ON CONFLICT(tenant_id) DO UPDATE SET access_token=excluded.access_token,"
            " refresh_token=excluded.refresh_token, expires_at=excluded.expires_at,"
            " updated_at=excluded.updated_at",
            (tenant_id, tokens.access_token, tokens.refresh_token, tokens.expires_at, now)))
