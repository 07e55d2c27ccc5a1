"""Zendesk app settings reach the service: read from the sandbox's installations API, stored in the
registry, and the next ticket's tier follows the new thresholds."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from onboarding_support import ADMIN_TOKEN, bearer, running_service, signed_delivery, zendesk_tenant
from plugin.config import tenant_from_dict
from plugin.errors import ConfigError
from plugin.screening import screen
from plugin.zendesk.settings_sync import SettingsSync, changes_from_settings, find_installation
from zendesk_support import customer_ticket, running_sandbox

# Scores as a concern at the default thresholds (0.35 / 0.60 / 0.85).
CONCERN_TEXT = "I feel so hopeless about everything lately"
APP_SETTINGS = {"name": "CareRoute", "title": "CareRoute", "service_url": "https://cr.example",
                "tenant_id": "acme", "tenant_token": ADMIN_TOKEN, "concern_threshold": 0.35,
                "high_threshold": 0.6, "imminent_threshold": 0.85, "trained_group_id": None,
                "tag_prefix": "careroute", "auto_reply": False}


@pytest.fixture
async def running(tmp_path):
    async with running_sandbox() as sandbox:
        tenant = zendesk_tenant(sandbox.url)
        async with running_service(tmp_path / "data", tenants=[tenant],
                                   settings_sync_seconds=0.2) as service:
            yield service, sandbox, tenant


async def install_app(sandbox, **settings) -> int:
    async with httpx.AsyncClient(base_url=sandbox.url, auth=("agent@sandbox.test/token",
                                                             "sandbox-token")) as admin:
        other = await admin.post("/api/v2/apps/installations.json", json={
            "app_id": 1111, "settings": {"name": "Another app", "title": "Another app"}})
        assert other.status_code == 201
        reply = await admin.post("/api/v2/apps/installations.json", json={
            "app_id": 2222, "settings": {**APP_SETTINGS, **settings}})
        assert reply.status_code == 201
        assert "tenant_token" not in reply.json()["settings"]  # secure settings stay hidden
        return reply.json()["id"]


async def change_app_settings(sandbox, installation_id: int, **settings) -> None:
    async with httpx.AsyncClient(base_url=sandbox.url, auth=("agent@sandbox.test/token",
                                                             "sandbox-token")) as admin:
        reply = await admin.put(f"/api/v2/apps/installations/{installation_id}.json",
                                json={"settings": settings})
        assert reply.status_code == 200


async def tier_of_new_ticket(service, sandbox, tenant, text: str) -> str:
    ticket_id = customer_ticket(sandbox.state, text)
    body, headers = signed_delivery(tenant, ticket_id)
    assert (await service.http.post("/webhooks/zendesk/acme", content=body,
                                    headers=headers)).status_code == 202
    assert await service.service.worker.drain(10)
    return (await service.service.audit.latest_for_ticket("acme", str(ticket_id)))["tier"]


async def test_on_demand_sync_moves_thresholds_and_the_next_ticket_follows(running):
    service, sandbox, tenant = running
    assert 0.35 <= screen(CONCERN_TEXT).score < 0.6
    installation = await install_app(sandbox)
    assert await tier_of_new_ticket(service, sandbox, tenant, CONCERN_TEXT) == "concern"

    await change_app_settings(sandbox, installation, concern_threshold="0.2",
                              high_threshold=0.4, trained_group_id="360000000002")
    reply = await service.http.post("/api/v1/zendesk/acme/settings/sync", headers=bearer())
    assert reply.status_code == 200
    assert sorted(reply.json()["changed"]) == ["screening.concern", "screening.high",
                                               "trained_group_id"]
    changes = await service.registry.changes("acme", limit=1)
    assert changes[0]["actor"] == "zendesk-app-settings"
    assert (await service.registry.get("acme")).screening.high == 0.4

    ticket_tier = await tier_of_new_ticket(service, sandbox, tenant, CONCERN_TEXT)
    assert ticket_tier == "high"
    routed = [t for t in sandbox.state.tickets.values() if t.group_id == 360000000002]
    assert len(routed) == 1  # the new trained group took effect too

    # Nothing differs now: no change, no audit row.
    again = await service.http.post("/api/v1/zendesk/acme/settings/sync", headers=bearer())
    assert again.json()["changed"] == []
    assert len(await service.registry.changes("acme")) == 1


async def test_sync_needs_the_tenant_token(running):
    service, _, _ = running
    reply = await service.http.post("/api/v1/zendesk/acme/settings/sync",
                                    headers=bearer("not-the-token"))
    assert reply.status_code == 401


async def test_invalid_app_settings_are_refused_and_change_nothing(running):
    service, sandbox, _ = running
    await install_app(sandbox, high_threshold=0.2)
    reply = await service.http.post("/api/v1/zendesk/acme/settings/sync", headers=bearer())
    assert reply.status_code == 400 and "'acme'" in reply.json()["error"]
    assert service.service.tenants.get("acme").screening.high == 0.6


async def test_the_schedule_syncs_every_zendesk_tenant(running):
    service, sandbox, _ = running
    installation = await install_app(sandbox)
    sync = SettingsSync.for_service(service.service, service.registry)
    sync.start()
    try:
        await change_app_settings(sandbox, installation, imminent_threshold=0.95,
                                  auto_reply=True)
        for _ in range(50):
            tenant = service.service.tenants.get("acme")
            if tenant.screening.imminent == 0.95:
                break
            await asyncio.sleep(0.1)
        assert tenant.screening.imminent == 0.95
        assert tenant.auto_reply.enabled and tenant.actions.imminent.auto_reply
    finally:
        await sync.stop()


async def test_the_schedule_picks_up_registry_changes_from_another_process(running):
    service, _, _ = running
    await service.registry.update("acme", {"tag_prefix": "acme_cr"}, actor="admin")
    # Another process (`careroute tenants update`) writes the store behind this service's back.
    other = type(service.registry)(service.service.store,
                                   secret_key=service.service.settings.secret_key
                                   .get_secret_value())
    await other.update("acme", {"screening.concern": 0.3}, actor="cli")
    assert service.service.tenants.get("acme").screening.concern == 0.35
    await SettingsSync.for_service(service.service, service.registry).run_once()
    assert service.service.tenants.get("acme").screening.concern == 0.3


def test_find_installation_and_mapping():
    tenant = tenant_from_dict({"id": "acme", "vendor": "zendesk", "subdomain": "acme",
                               "webhook_secret": "s" * 20,
                               "auth": {"kind": "api_token", "email": "a@b.c", "token": "t"}})
    ours = {"id": 2, "app_id": 9, "enabled": True, "settings": {"name": "Renamed",
                                                                "tenant_id": "acme"}}
    others = [{"id": 1, "app_id": 8, "enabled": True, "settings": {"name": "CareRoute",
                                                                   "tenant_id": "zeta"}},
              {"id": 3, "app_id": 9, "enabled": False, "settings": {"tenant_id": "acme"}}]
    assert find_installation([*others, ours], tenant) is ours
    assert find_installation(others, tenant) is None
    assert changes_from_settings({"concern_threshold": "", "high_threshold": "0.5",
                                  "tag_prefix": " ", "auto_reply": "true"}, tenant) == {
        "screening": {"high": 0.5}, "auto_reply": {"enabled": True},
        "actions": {"imminent": {"auto_reply": True}}}
    with pytest.raises(ConfigError, match="'acme'.*high_threshold"):
        changes_from_settings({"high_threshold": "lots"}, tenant)
    with pytest.raises(ConfigError, match="trained_group_id"):
        changes_from_settings({"trained_group_id": 1.5}, tenant)
