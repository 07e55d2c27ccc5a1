"""Zendesk credentials: OAuth bearer tokens with refresh, or API-token basic auth.

OAuth: tokens saved in the TokenStore supersede the tenants file (they rotate). A refresh happens
when the access token's `expires_at` has passed, or after a 401 `invalid_token`. Only one refresh
runs at a time per tenant (per event loop); a caller that waited for someone else's refresh uses
its result instead of refreshing again — refresh tokens rotate, so a second refresh with the old
one would fail.

API tokens (`{email}/token:{token}`) are retired by Zendesk on 2027-04-30; keep them for private
installs only.
"""

from __future__ import annotations

import asyncio
import base64
import time
import weakref
from typing import Awaitable, Callable

from ..config import ApiTokenAuth, OAuthAuth, TenantConfig
from ..errors import ConfigError, PermanentVendorError
from ..vendors import OAuthTokens, TokenStore

# Refresh this long before the stated expiry, so a token does not lapse mid-request.
EXPIRY_MARGIN_SECONDS = 30.0

# (event loop) → tenant id → lock. Locks belong to one loop; tests run many loops.
_REFRESH_LOCKS: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]]" = (
    weakref.WeakKeyDictionary())


def refresh_lock(tenant_id: str) -> asyncio.Lock:
    locks = _REFRESH_LOCKS.setdefault(asyncio.get_running_loop(), {})
    return locks.setdefault(tenant_id, asyncio.Lock())


# (grant body) → (access token, refresh token, expires_in)
TokenRequester = Callable[[dict[str, str]], Awaitable[tuple[str, str | None, float | None]]]


class ApiTokenCredentials:
    def __init__(self, auth: ApiTokenAuth) -> None:
        raw = f"{auth.email}/token:{auth.token.get_secret_value()}".encode("utf-8")
        self._header = "Basic " + base64.b64encode(raw).decode("ascii")

    can_refresh = False

    async def header(self) -> str:
        return self._header

    async def refresh_after_rejection(self, rejected_header: str) -> bool:
        return False


class OAuthCredentials:
    def __init__(self, tenant: TenantConfig, auth: OAuthAuth, store: TokenStore,
                 request_tokens: TokenRequester, clock: Callable[[], float] = time.time) -> None:
        self._tenant_id = tenant.id
        self._auth = auth
        self._store = store
        self._request_tokens = request_tokens
        self._clock = clock
        self._tokens: OAuthTokens | None = None

    can_refresh = True

    async def _current(self) -> OAuthTokens:
        stored = await self._store.load(self._tenant_id)
        if stored is not None:
            self._tokens = stored
        elif self._tokens is None:
            refresh = self._auth.refresh_token
            self._tokens = OAuthTokens(
                access_token=self._auth.access_token.get_secret_value(),
                refresh_token=refresh.get_secret_value() if refresh else None,
                expires_at=self._auth.expires_at)
        return self._tokens

    def _expired(self, tokens: OAuthTokens) -> bool:
        return tokens.expires_at is not None and self._clock() >= tokens.expires_at - EXPIRY_MARGIN_SECONDS

    async def header(self) -> str:
        tokens = await self._current()
        if self._expired(tokens) and tokens.refresh_token:
            tokens = await self._refresh(stale_access_token=tokens.access_token)
        return f"Bearer {tokens.access_token}"

    async def refresh_after_rejection(self, rejected_header: str) -> bool:
        """After a 401 invalid_token: refresh (unless someone already did). True → retry."""
        tokens = await self._current()
        if not tokens.refresh_token:
            return False
        await self._refresh(stale_access_token=rejected_header.removeprefix("Bearer "))
        return True

    async def _refresh(self, *, stale_access_token: str) -> OAuthTokens:
        async with refresh_lock(self._tenant_id):
            tokens = await self._current()
            if tokens.access_token != stale_access_token and not self._expired(tokens):
                return tokens  # another task refreshed while we waited
            if not tokens.refresh_token:
                raise PermanentVendorError("zendesk access token expired and no refresh token")
            access, refresh, expires_in = await self._request_tokens({
                "grant_type": "refresh_token",
                "refresh_token": tokens.refresh_token,
                "client_id": self._auth.client_id,
                "client_secret": self._auth.client_secret.get_secret_value(),
            })
            fresh = OAuthTokens(
                access_token=access,
                refresh_token=refresh or tokens.refresh_token,
                expires_at=self._clock() + expires_in if expires_in else None)
            await self._store.save(self._tenant_id, fresh)
            self._tokens = fresh
            return fresh


Credentials = ApiTokenCredentials | OAuthCredentials


def credentials_for(tenant: TenantConfig, store: TokenStore,
                    request_tokens: TokenRequester) -> Credentials:
    auth = tenant.auth
    if isinstance(auth, OAuthAuth):
        return OAuthCredentials(tenant, auth, store, request_tokens)
    if isinstance(auth, ApiTokenAuth):
        return ApiTokenCredentials(auth)
    raise ConfigError(f"tenant {tenant.id!r}: auth: zendesk needs oauth or api_token")
