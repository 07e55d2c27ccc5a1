"""Onboarding: Zendesk OAuth install, Freshworks app install/uninstall, app settings.

    GET  /oauth/zendesk/start?subdomain=acme      → 302 to Zendesk's consent screen
    GET  /oauth/zendesk/callback?code=…&state=…   → tokens, tenant, provisioning, "connected" page
    POST /api/v1/freshdesk/{tenant}/install       Bearer <registration_token>   (server.js)
    POST /api/v1/freshdesk/{tenant}/uninstall     Bearer <tenant admin token>
    PUT  /api/v1/{vendor}/{tenant}/settings       Bearer <tenant admin token>
    POST /api/v1/zendesk/{tenant}/settings/sync   Bearer <tenant admin token>

The OAuth `state` is signed (HMAC-SHA256), expires after ten minutes, binds the subdomain and a
nonce that must also come back in an HttpOnly cookie set at the start (so a callback cannot be
replayed into another browser), and is accepted once. Tokens are compared in constant time;
refusals say nothing more than 401; replies never echo what was sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import re
import secrets
import time
from typing import Any, Mapping
from urllib.parse import urlencode

import httpx
from aiohttp import web

from ..config import TenantConfig, tenant_from_dict
from ..errors import CareRouteError, ConfigError
from ..logging import get_logger
from ..registry import TenantRegistry, new_secret, settings_diff
from ..service import Service
from ..vendors import ClientContext, OAuthTokens
from ..zendesk.provision import provision
from ..zendesk.responses import parse_oauth_tokens
from ..zendesk.settings_sync import sync_tenant
from .api import bearer_token, authorized_tenant, token_matches, unauthorized
from .guard import guarded

log = get_logger("careroute.onboarding")

STATE_TTL_SECONDS = 600
NONCE_COOKIE = "careroute_oauth_nonce"
SUBDOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
FRESHDESK_DOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}\.freshdesk\.com$")
SETTINGS_FIELDS = frozenset({"thresholds", "trained_group_id", "tag_prefix", "auto_reply"})
INSTALL_FIELDS = SETTINGS_FIELDS | {"domain", "api_key", "webhook_secret", "tenant_token"}
MIN_SECRET_CHARS = 16


# ------------------------------------------------------------------ OAuth state


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class OAuthState:
    """Signed, time-limited, single-use `state` values binding a subdomain and a nonce."""

    def __init__(self, secret_key: str | None, *, ttl: float = STATE_TTL_SECONDS) -> None:
        # Without a configured key the states only live as long as this process (development).
        seed = secret_key.encode("utf-8") if secret_key else secrets.token_bytes(32)
        self._key = hashlib.sha256(b"careroute-oauth-state\0" + seed).digest()
        self._ttl = ttl
        self._used: dict[str, float] = {}

    def issue(self, subdomain: str, nonce: str, *, now: float | None = None) -> str:
        payload = _b64(json.dumps({"s": subdomain, "n": nonce,
                                   "e": int((now or time.time()) + self._ttl)}).encode())
        return f"{payload}.{_b64(hmac.new(self._key, payload.encode(), 'sha256').digest())}"

    def accept(self, state: str, nonce: str | None, *, now: float | None = None) -> str | None:
        """The subdomain of a valid, unexpired, unused state whose nonce matches; else None."""
        now = now or time.time()
        payload, _, signature = state.partition(".")
        expected = _b64(hmac.new(self._key, payload.encode(), "sha256").digest())
        if not signature or not hmac.compare_digest(signature, expected):
            return None
        try:
            data = json.loads(_unb64(payload))
        except ValueError:
            return None
        if not isinstance(data, dict) or float(data.get("e", 0)) < now \
                or not token_matches(nonce, str(data.get("n", ""))) or data["n"] in self._used:
            return None
        self._used = {n: e for n, e in self._used.items() if e >= now}
        self._used[data["n"]] = float(data["e"])
        subdomain = data.get("s")
        return subdomain if isinstance(subdomain, str) and SUBDOMAIN.match(subdomain) else None


# ------------------------------------------------------------------ pages and replies


def page(title: str, message: str, status: int = 200) -> web.Response:
    body = (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>"
            f"{html.escape(title)}</title></head><body style=\"font-family:sans-serif;"
            f"max-width:40em;margin:3em auto\"><h1>{html.escape(title)}</h1>"
            f"<p>{html.escape(message)}</p></body></html>")
    return web.Response(text=body, status=status, content_type="text/html",
                        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


def bad_request(reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=400)


async def json_object(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        return bad_request("body must be a JSON object")
    return body if isinstance(body, dict) else bad_request("body must be a JSON object")


def settings_changes(body: Mapping[str, Any]) -> dict[str, Any] | str:
    """App settings (server.js `settingsFrom`, plus `auto_reply`) → registry changes, or the
    reason they are unusable."""
    changes: dict[str, Any] = {}
    if "thresholds" in body:
        thresholds = body["thresholds"]
        if not isinstance(thresholds, dict) or set(thresholds) - {"concern", "high", "imminent"} \
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                           for v in thresholds.values()):
            return "thresholds must be an object of numbers: concern, high, imminent"
        changes["screening"] = dict(thresholds)
    if "trained_group_id" in body:
        group = body["trained_group_id"]
        if group is not None and (isinstance(group, bool) or not isinstance(group, int)
                                  or group <= 0):
            return "trained_group_id must be a positive whole number or null"
        changes["trained_group_id"] = group
    if "tag_prefix" in body:
        if not isinstance(body["tag_prefix"], str):
            return "tag_prefix must be a string"
        changes["tag_prefix"] = body["tag_prefix"].strip()
    if "auto_reply" in body:
        if not isinstance(body["auto_reply"], bool):
            return "auto_reply must be true or false"
        changes["auto_reply"] = {"enabled": body["auto_reply"]}
        changes["actions"] = {"imminent": {"auto_reply": body["auto_reply"]}}
    return changes


def client_context(service: Service, tenant: TenantConfig) -> ClientContext:
    return ClientContext(budget=service.clients.budget(tenant),
                         token_store=service.clients.token_store,
                         timeout_seconds=service.settings.vendor_timeout_seconds)


# ------------------------------------------------------------------ routes


def setup_onboarding(app: web.Application, service: Service, registry: TenantRegistry) -> None:
    settings = service.settings
    secret_key = settings.secret_key.get_secret_value() if settings.secret_key else None
    states = OAuthState(secret_key)
    # Marketplace headers for server-side calls (zendesk.md §4), once ServiceSettings has them.
    marketplace = {key: getattr(settings, f"zendesk_marketplace_{key}", None)
                   for key in ("name", "organization_id", "app_id")}
    marketplace = marketplace if all(marketplace.values()) else None

    def oauth_base(subdomain: str) -> str:
        return (settings.zendesk_oauth_base_url or f"https://{subdomain}.zendesk.com").rstrip("/")

    def redirect_uri() -> str:
        return f"{(settings.public_url or '').rstrip('/')}/oauth/zendesk/callback"

    def oauth_configured() -> bool:
        return bool(settings.public_url and settings.zendesk_oauth_client_id
                    and settings.zendesk_oauth_client_secret)

    async def oauth_start(request: web.Request) -> web.Response:
        if not oauth_configured():
            return page("CareRoute is not set up for Zendesk installs",
                        "The operator has not configured the Zendesk OAuth client yet.", 503)
        subdomain = request.query.get("subdomain", "").strip().lower()
        if not SUBDOMAIN.match(subdomain):
            return page("Check the Zendesk subdomain",
                        "Give the subdomain of your Zendesk account: for "
                        "https://acme.zendesk.com it is acme.", 400)
        nonce = secrets.token_urlsafe(24)
        query = urlencode({"response_type": "code", "client_id": settings.zendesk_oauth_client_id,
                           "redirect_uri": redirect_uri(), "scope": "read write",
                           "state": states.issue(subdomain, nonce)}, safe="")
        response = web.Response(status=302, headers={
            "Location": f"{oauth_base(subdomain)}/oauth/authorizations/new?{query}",
            "Cache-Control": "no-store"})
        response.set_cookie(NONCE_COOKIE, nonce, max_age=STATE_TTL_SECONDS, httponly=True,
                            samesite="Lax", path="/oauth/zendesk/",
                            secure=(settings.public_url or "").startswith("https://"))
        return response

    async def oauth_callback(request: web.Request) -> web.Response:
        subdomain = states.accept(request.query.get("state", ""), request.cookies.get(NONCE_COOKIE))
        if subdomain is None:
            return page("This link has expired",
                        "Start the installation again from the CareRoute listing.", 400)
        if "error" in request.query or not request.query.get("code"):
            return page("CareRoute was not connected",
                        "Zendesk did not grant access, so nothing was changed. You can start "
                        "the installation again at any time.")
        try:
            tenant = await connect_zendesk(subdomain, request.query["code"])
        except CareRouteError as exc:
            log.warning("oauth_install_failed", tenant_id=subdomain, reason=exc.reason)
            return page("CareRoute could not finish connecting",
                        "Zendesk accepted the request but setting up the account failed. "
                        "Try again in a few minutes or contact your CareRoute operator.", 502)
        log.info("oauth_install_done", tenant_id=tenant.id)
        response = page("CareRoute is connected",
                        f"Zendesk account {subdomain} is connected: new tickets are screened from "
                        f"now on. In the CareRoute app settings use the tenant ID {tenant.id} and "
                        "the tenant token your CareRoute operator gives you.")
        response.del_cookie(NONCE_COOKIE, path="/oauth/zendesk/")
        return response

    async def exchange_code(subdomain: str, code: str) -> tuple[str, str | None, float | None]:
        grant = {"grant_type": "authorization_code", "code": code,
                 "client_id": settings.zendesk_oauth_client_id,
                 "client_secret": settings.zendesk_oauth_client_secret.get_secret_value(),  # type: ignore[union-attr]
                 "redirect_uri": redirect_uri(), "scope": "read write"}
        try:
            async with httpx.AsyncClient(timeout=settings.vendor_timeout_seconds) as http:
                response = await http.post(f"{oauth_base(subdomain)}/oauth/tokens", json=grant)
        except httpx.HTTPError:
            raise CareRouteError("zendesk token endpoint unreachable") from None
        if response.status_code != 200:
            raise CareRouteError(f"zendesk refused the authorization code ({response.status_code})")
        try:
            return parse_oauth_tokens(response.json())
        except ValueError:
            raise CareRouteError("zendesk token response unreadable") from None

    async def connect_zendesk(subdomain: str, code: str) -> TenantConfig:
        access, refresh, expires_in = await exchange_code(subdomain, code)
        expires_at = time.time() + expires_in if expires_in else None
        auth = {"kind": "oauth", "access_token": access, "refresh_token": refresh,
                "client_id": settings.zendesk_oauth_client_id,
                "client_secret": settings.zendesk_oauth_client_secret.get_secret_value(),  # type: ignore[union-attr]
                "expires_at": expires_at}
        existing = await registry.get(subdomain) or service.tenants.get(subdomain)
        if existing is not None and existing.vendor != "zendesk":
            raise ConfigError(f"tenant {subdomain!r}: id: already used by a freshdesk tenant")
        if existing is None:
            raw = {"id": subdomain, "vendor": "zendesk", "subdomain": subdomain,
                   "webhook_secret": new_secret(), "admin_token": new_secret(), "auth": auth}
            if settings.zendesk_oauth_base_url:
                raw["base_url"] = settings.zendesk_oauth_base_url
            if marketplace:
                raw["marketplace"] = marketplace
            tenant = await registry.add(tenant_from_dict(raw, environ={}), actor="zendesk-oauth")
        else:  # a re-install: new tokens, settings kept
            tenant = await registry.update(subdomain, {"auth": auth, "enabled": True},
                                           actor="zendesk-oauth")
        # Tokens rotated earlier live in the token store and would win over the new ones.
        await service.clients.token_store.save(tenant.id, OAuthTokens(access, refresh, expires_at))
        result = await provision(tenant, settings.public_url or "",
                                 context=client_context(service, tenant))
        if result.webhook_secret:
            tenant = await registry.update(tenant.id, {"webhook_secret": result.webhook_secret},
                                           actor="zendesk-oauth")
        return tenant

    # -------------------------------------------------------------- Freshworks app

    async def freshdesk_install(request: web.Request) -> web.Response:
        expected = settings.registration_token.get_secret_value() \
            if settings.registration_token else None
        if not token_matches(bearer_token(request), expected):
            raise unauthorized()
        tenant_id = request.match_info["tenant_id"]
        body = await json_object(request)
        if isinstance(body, web.Response):
            return body
        if set(body) - INSTALL_FIELDS:
            return bad_request("unknown field in body")
        domain = str(body.get("domain") or "").strip().lower()
        domain = domain.removeprefix("https://").removeprefix("http://").rstrip("/")
        if not FRESHDESK_DOMAIN.match(domain):
            return bad_request("domain must be a *.freshdesk.com host")
        for name in ("api_key", "webhook_secret", "tenant_token"):
            value = body.get(name)
            if not isinstance(value, str) or len(value.strip()) < (
                    1 if name == "api_key" else MIN_SECRET_CHARS):
                return bad_request(f"{name} is missing or too short")
        changes = settings_changes(body)
        if isinstance(changes, str):
            return bad_request(changes)
        secrets_part = {"domain": domain, "auth": {"kind": "api_key", "key": body["api_key"]},
                        "webhook_secret": body["webhook_secret"],
                        "admin_token": body["tenant_token"], "enabled": True}
        existing = await registry.get(tenant_id) or service.tenants.get(tenant_id)
        try:
            if existing is None:
                raw = {"id": tenant_id, "vendor": "freshdesk", **secrets_part, **changes}
                await registry.add(tenant_from_dict(raw, environ={}), actor="freshdesk-install")
            elif existing.vendor != "freshdesk" or existing.domain != domain:
                return web.json_response({"error": "tenant id already registered"}, status=409)
            else:  # afterAppUpdate / a repeat install: an update, not a conflict
                await registry.update(tenant_id, {**secrets_part, **changes},
                                      actor="freshdesk-install")
        except ConfigError as exc:
            return bad_request(exc.reason)
        log.info("freshdesk_installed", tenant_id=tenant_id, new=existing is None)
        return web.json_response({"installed": True, "tenant_id": tenant_id},
                                 status=201 if existing is None else 200)

    async def freshdesk_uninstall(request: web.Request) -> web.Response:
        tenant = authorized_tenant(request, service, allow_disabled=True)
        if tenant.enabled:
            await registry.disable(tenant.id, actor="freshdesk-uninstall")
        log.info("freshdesk_uninstalled", tenant_id=tenant.id)
        return web.json_response({"uninstalled": True})

    async def update_settings(request: web.Request) -> web.Response:
        tenant = authorized_tenant(request, service, allow_disabled=True)
        body = await json_object(request)
        if isinstance(body, web.Response):
            return body
        if not body or set(body) - SETTINGS_FIELDS:
            return bad_request("body must hold only thresholds, trained_group_id, tag_prefix, "
                               "auto_reply")
        changes = settings_changes(body)
        if isinstance(changes, str):
            return bad_request(changes)
        try:
            updated = await registry.update(tenant.id, changes,
                                            actor=f"{tenant.vendor}-app-settings")
        except ConfigError as exc:
            return bad_request(exc.reason)
        return web.json_response({"updated": True, "changed": settings_diff(tenant, updated)})

    async def sync_settings(request: web.Request) -> web.Response:
        tenant = authorized_tenant(request, service)
        try:
            changed = await sync_tenant(tenant, registry, client_context(service, tenant))
        except ConfigError as exc:
            return bad_request(exc.reason)
        except CareRouteError as exc:
            log.warning("settings_sync_failed", tenant_id=tenant.id, reason=exc.reason)
            return web.json_response({"error": "zendesk unavailable"}, status=502)
        return web.json_response({"synced": True, "changed": changed})

    router = app.router
    router.add_get("/oauth/zendesk/start", guarded(oauth_start))
    router.add_get("/oauth/zendesk/callback", guarded(oauth_callback))
    router.add_post("/api/v1/freshdesk/{tenant_id}/install", guarded(freshdesk_install))
    router.add_post("/api/v1/{vendor:freshdesk}/{tenant_id}/uninstall",
                    guarded(freshdesk_uninstall))
    router.add_put("/api/v1/{vendor:zendesk|freshdesk}/{tenant_id}/settings",
                   guarded(update_settings))
    router.add_post("/api/v1/{vendor:zendesk}/{tenant_id}/settings/sync", guarded(sync_settings))
