"""Onboarding over real HTTP on 127.0.0.1: the Zendesk OAuth install against the Zendesk sandbox,
and the Freshworks app's install / uninstall / settings calls (manifests/freshdesk/server/server.js)."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from onboarding_support import ADMIN_TOKEN, REGISTRATION_TOKEN, bearer, running_service
from plugin.handlers.onboarding import OAuthState
from plugin.sandbox.zendesk_routes import SANDBOX_APPS
from zendesk_support import running_sandbox

WEBHOOK_SECRET = "fd-webhook-secret-from-the-app-0001"
TENANT_TOKEN = "fd-tenant-token-from-the-app-000001"
API_KEY = "fd-api-key-PANGOLIN-7731"


@pytest.fixture
async def sandbox():
    async with running_sandbox() as sandbox:
        yield sandbox


@pytest.fixture
async def oauth_service(tmp_path, sandbox):
    async with running_service(tmp_path / "data", run_worker=False,
                               zendesk_oauth_client_id="sandbox-client",
                               zendesk_oauth_client_secret="sandbox-secret",
                               zendesk_oauth_base_url=sandbox.url) as running:
        yield running


async def start_install(running, subdomain="acme") -> httpx.Response:
    start = await running.http.get("/oauth/zendesk/start", params={"subdomain": subdomain})
    assert start.status_code == 302
    return start


async def test_oauth_install_end_to_end(oauth_service, sandbox):
    running = oauth_service
    start = await start_install(running)
    location = start.headers["location"]
    assert location.startswith(f"{sandbox.url}/oauth/authorizations/new?")
    query = parse_qs(urlsplit(location).query)
    assert query["response_type"] == ["code"] and query["client_id"] == ["sandbox-client"]
    assert query["scope"] == ["read write"]
    assert query["redirect_uri"] == [f"{running.url}/oauth/zendesk/callback"]

    async with httpx.AsyncClient(timeout=10) as browser:
        consent = await browser.get(location)  # the sandbox's consent screen answers at once
    assert consent.status_code == 302
    callback = consent.headers["location"]
    assert callback.startswith(f"{running.url}/oauth/zendesk/callback?")
    done = await running.http.get(callback)  # the client still holds the nonce cookie
    assert done.status_code == 200 and "CareRoute is connected" in done.text

    tenant = await running.registry.get("acme")
    assert tenant is not None and tenant.vendor == "zendesk" and tenant.subdomain == "acme"
    assert tenant.auth.kind == "oauth" and tenant.auth.refresh_token is not None
    assert tenant.auth.access_token.get_secret_value() in sandbox.state.access_tokens
    assert sandbox.state.token_grants[0] == "authorization_code"
    assert running.service.tenants.get("acme") == tenant  # live without a restart
    # Provisioning ran with the new tokens and the tenant holds the webhook's signing secret.
    hooks = [h for h in sandbox.state.webhooks.values() if h["name"] == "CareRoute (acme)"]
    assert len(hooks) == 1 and hooks[0]["endpoint"] == f"{running.url}/webhooks/zendesk/acme"
    assert tenant.webhook_secret.get_secret_value() == sandbox.state.webhook_secrets[
        str(hooks[0]["id"])]
    assert {t["title"] for t in sandbox.state.triggers.values()} >= {
        "CareRoute: screen new tickets", "CareRoute: screen requester replies"}
    # The page shows no secret.
    for secret in (tenant.webhook_secret, tenant.admin_token, tenant.auth.access_token,
                   tenant.auth.refresh_token):
        assert secret.get_secret_value() not in done.text
    assert [c["actor"] for c in await running.registry.changes("acme")] == \
        ["zendesk-oauth", "zendesk-oauth"]

    # The same callback cannot be used twice.
    again = await running.http.get(callback)
    assert again.status_code == 400


async def test_bad_state_is_refused(oauth_service, sandbox):
    running = oauth_service
    start = await start_install(running)
    async with httpx.AsyncClient(timeout=10) as browser:
        callback = (await browser.get(start.headers["location"])).headers["location"]
    code_and_state = parse_qs(urlsplit(callback).query)
    state = code_and_state["state"][0]
    tampered = state[:-2] + ("AA" if not state.endswith("AA") else "BB")
    reply = await running.http.get("/oauth/zendesk/callback",
                                   params={"code": code_and_state["code"][0], "state": tampered})
    assert reply.status_code == 400 and "expired" in reply.text
    # A valid state from another browser (no nonce cookie) is refused too.
    async with httpx.AsyncClient(base_url=running.url, timeout=10) as stranger:
        reply = await stranger.get(callback)
    assert reply.status_code == 400
    assert await running.registry.get("acme") is None
    assert sandbox.state.token_grants == []


def test_state_expires_and_binds_the_nonce():
    states = OAuthState("k" * 44, ttl=60)
    issued = states.issue("acme", "nonce-1", now=1000.0)
    assert states.accept(issued, "nonce-2", now=1001.0) is None
    assert states.accept(issued, "nonce-1", now=1061.0) is None  # expired
    assert states.accept(issued, "nonce-1", now=1001.0) == "acme"
    assert states.accept(issued, "nonce-1", now=1002.0) is None  # used once
    assert OAuthState("another-key").accept(states.issue("acme", "n", now=time.time()), "n") is None


async def test_denied_authorization_shows_a_friendly_page(oauth_service, sandbox):
    running = oauth_service
    sandbox.app[SANDBOX_APPS].approve = False
    start = await start_install(running)
    async with httpx.AsyncClient(timeout=10) as browser:
        callback = (await browser.get(start.headers["location"])).headers["location"]
    assert "error=access_denied" in callback
    reply = await running.http.get(callback)
    assert reply.status_code == 200 and "was not connected" in reply.text
    assert await running.registry.get("acme") is None


async def test_start_refuses_a_bad_subdomain(oauth_service):
    reply = await oauth_service.http.get("/oauth/zendesk/start",
                                         params={"subdomain": "<b>acme</b>.evil"})
    assert reply.status_code == 400 and "<b>acme" not in reply.text


# ---------------------------------------------------------------- Freshworks app


def install_body(**changes):
    body = {"domain": "globex.freshdesk.com", "api_key": API_KEY, "webhook_secret": WEBHOOK_SECRET,
            "thresholds": {"concern": 0.3, "high": 0.55, "imminent": 0.8},
            "trained_group_id": 42, "tag_prefix": "globex_cr", "tenant_token": TENANT_TOKEN}
    body.update(changes)
    return body


@pytest.fixture
async def service(tmp_path):
    async with running_service(tmp_path / "data", run_worker=False) as running:
        yield running


async def test_freshdesk_install_registers_the_tenant(service):
    reply = await service.http.post("/api/v1/freshdesk/globex/install", json=install_body(),
                                    headers=bearer(REGISTRATION_TOKEN))
    assert reply.status_code == 201, reply.text
    tenant = service.service.tenants.get("globex")
    assert tenant.vendor == "freshdesk" and tenant.domain == "globex.freshdesk.com"
    assert tenant.auth.key.get_secret_value() == API_KEY
    assert tenant.admin_token.get_secret_value() == TENANT_TOKEN
    assert tenant.webhook_secret.get_secret_value() == WEBHOOK_SECRET
    assert (tenant.screening.concern, tenant.screening.high, tenant.screening.imminent) == \
        (0.3, 0.55, 0.8)
    assert tenant.trained_group_id == 42 and tenant.tag_prefix == "globex_cr"
    assert await service.registry.get("globex") == tenant
    for secret in (API_KEY, WEBHOOK_SECRET, TENANT_TOKEN):
        assert secret not in reply.text
    # The app's ticket-create handler can now forward tickets with its webhook secret.
    forwarded = await service.http.post("/webhooks/freshdesk/globex",
                                        json={"ticket_id": "17", "event": "created"},
                                        headers={"X-CareRoute-Token": WEBHOOK_SECRET})
    assert forwarded.status_code == 202

    # afterAppUpdate / a repeat install of the same account is an update.
    again = await service.http.post("/api/v1/freshdesk/globex/install",
                                    json=install_body(tag_prefix="careroute"),
                                    headers=bearer(REGISTRATION_TOKEN))
    assert again.status_code == 200
    assert service.service.tenants.get("globex").tag_prefix == "careroute"
    # Another Freshdesk account cannot take the id.
    taken = await service.http.post("/api/v1/freshdesk/globex/install",
                                    json=install_body(domain="initech.freshdesk.com"),
                                    headers=bearer(REGISTRATION_TOKEN))
    assert taken.status_code == 409


@pytest.mark.parametrize("token", [None, "wrong-token", TENANT_TOKEN])
async def test_freshdesk_install_needs_the_registration_token(service, token):
    headers = bearer(token) if token else {}
    reply = await service.http.post("/api/v1/freshdesk/globex/install", json=install_body(),
                                    headers=headers)
    assert reply.status_code == 401 and reply.json() == {"error": "unauthorized"}
    assert service.service.tenants.get("globex") is None


@pytest.mark.parametrize("changes, reason", [
    ({"domain": "globex.example.com"}, "domain"),
    ({"api_key": ""}, "api_key"),
    ({"webhook_secret": "short"}, "webhook_secret"),
    ({"thresholds": {"concern": 0.5, "high": 0.4, "imminent": 0.9}}, "screening"),
    ({"thresholds": {"concern": "low"}}, "thresholds"),
    ({"trained_group_id": "abc"}, "trained_group_id"),
    ({"tag_prefix": "Not A Prefix"}, "tag_prefix"),
    ({"surprise": 1}, "unknown field"),
])
async def test_freshdesk_install_explains_bad_bodies(service, changes, reason):
    reply = await service.http.post("/api/v1/freshdesk/globex/install",
                                    json=install_body(**changes),
                                    headers=bearer(REGISTRATION_TOKEN))
    assert reply.status_code == 400 and reason in reply.json()["error"]
    assert "Not A Prefix" not in reply.text and "abc" not in reply.text
    assert service.service.tenants.get("globex") is None


async def test_freshdesk_settings_and_uninstall(service):
    await service.http.post("/api/v1/freshdesk/globex/install", json=install_body(),
                            headers=bearer(REGISTRATION_TOKEN))
    settings = {"thresholds": {"concern": 0.2, "high": 0.4, "imminent": 0.9},
                "trained_group_id": None, "tag_prefix": "globex_cr"}
    reply = await service.http.put("/api/v1/freshdesk/globex/settings", json=settings,
                                   headers=bearer(TENANT_TOKEN))
    assert reply.status_code == 200
    assert set(reply.json()["changed"]) == {"screening.concern", "screening.high",
                                            "screening.imminent", "trained_group_id"}
    tenant = service.service.tenants.get("globex")
    assert tenant.screening.high == 0.4 and tenant.trained_group_id is None
    changes = await service.registry.changes("globex", limit=1)
    assert changes[0]["actor"] == "freshdesk-app-settings"

    bad = await service.http.put("/api/v1/freshdesk/globex/settings",
                                 json={"thresholds": {"high": 0.1}}, headers=bearer(TENANT_TOKEN))
    assert bad.status_code == 400 and "screening" in bad.json()["error"]
    refused = await service.http.put("/api/v1/freshdesk/globex/settings", json=settings,
                                     headers=bearer(REGISTRATION_TOKEN))
    assert refused.status_code == 401
    wrong_vendor = await service.http.put("/api/v1/zendesk/globex/settings", json=settings,
                                          headers=bearer(TENANT_TOKEN))
    assert wrong_vendor.status_code == 401

    gone = await service.http.post("/api/v1/freshdesk/globex/uninstall", json={},
                                   headers=bearer(TENANT_TOKEN))
    assert gone.status_code == 200
    assert service.service.tenants.get("globex").enabled is False
    assert (await service.registry.get("globex")).enabled is False
    refused = await service.http.post("/webhooks/freshdesk/globex",
                                      json={"ticket_id": "18", "event": "created"},
                                      headers={"X-CareRoute-Token": WEBHOOK_SECRET})
    assert refused.status_code == 404
    # Installing again turns it back on.
    back = await service.http.post("/api/v1/freshdesk/globex/install", json=install_body(),
                                   headers=bearer(REGISTRATION_TOKEN))
    assert back.status_code == 200 and service.service.tenants.get("globex").enabled


async def test_settings_switch_auto_reply_for_a_zendesk_tenant(tmp_path, sandbox):
    from onboarding_support import zendesk_tenant

    async with running_service(tmp_path / "data", run_worker=False,
                               tenants=[zendesk_tenant(sandbox.url)]) as running:
        reply = await running.http.put("/api/v1/zendesk/acme/settings",
                                       json={"auto_reply": True}, headers=bearer(ADMIN_TOKEN))
        assert reply.status_code == 200
        tenant = running.service.tenants.get("acme")
        assert tenant.auto_reply.enabled and tenant.actions.imminent.auto_reply
        empty = await running.http.put("/api/v1/zendesk/acme/settings", json={},
                                       headers=bearer(ADMIN_TOKEN))
        assert empty.status_code == 400
