"""The sidebar API over real HTTP: a real ticket in the Zendesk sandbox goes through the service
(real screening, policy and client), then the app's request reads the assessment back."""

from __future__ import annotations

import time

import pytest

from onboarding_support import ADMIN_TOKEN, bearer, running_service, signed_delivery, zendesk_tenant
from plugin.handlers.api import assessment_view
from zendesk_support import customer_ticket, running_sandbox

CANARY = "CANARY-5d1e amber tramline kestrel"
CRISIS_TEXT = f"I do not want to be alive anymore and I cannot go on. {CANARY}"


@pytest.fixture
async def running(tmp_path):
    async with running_sandbox() as sandbox:
        tenant = zendesk_tenant(sandbox.url, agent_language="de", default_country="GB")
        other = zendesk_tenant(sandbox.url, "other", admin_token="other-tenant-admin-token-0003")
        async with running_service(tmp_path / "data", tenants=[tenant, other]) as service:
            yield service, sandbox, tenant


async def screened_ticket(service, sandbox, tenant, text: str) -> int:
    ticket_id = customer_ticket(sandbox.state, text, locale="en-GB", time_zone="London")
    body, headers = signed_delivery(tenant, ticket_id)
    reply = await service.http.post(f"/webhooks/zendesk/{tenant.id}", content=body,
                                    headers=headers)
    assert reply.status_code == 202
    assert await service.service.worker.drain(10)
    return ticket_id


async def test_assessment_shape_and_no_ticket_text(running):
    service, sandbox, tenant = running
    ticket_id = await screened_ticket(service, sandbox, tenant, CRISIS_TEXT)
    reply = await service.http.get(f"/api/v1/zendesk/acme/tickets/{ticket_id}/assessment",
                                   headers=bearer())
    assert reply.status_code == 200
    assert reply.headers["cache-control"] == "no-store"
    data = reply.json()
    assert set(data) == {"ticket_id", "tier", "score", "rule_ids", "categories",
                         "category_labels", "flags", "language", "decided_at", "resources",
                         "emergency_number", "suggested_reply_html", "actions"}
    assert data["ticket_id"] == str(ticket_id) and data["tier"] == "high"
    assert 0.6 <= data["score"] <= 1
    assert data["rule_ids"] and all(r.startswith("en.") for r in data["rule_ids"])
    assert len(data["category_labels"]) == len(data["categories"]) >= 1
    assert data["category_labels"] != data["categories"]  # plain words, in German
    assert data["language"] == "en"
    assert time.time() - 60 < _parse(data["decided_at"]) <= time.time() + 1
    assert data["decided_at"].endswith("Z")
    # Resources of the requester's country (GB) and an English reply with them.
    assert data["emergency_number"] == "999"
    assert data["resources"] and {"service", "phone", "sms", "chat_url", "url", "hours"} == \
        set(data["resources"][0])
    assert data["resources"][0]["service"] in data["suggested_reply_html"]
    assert data["suggested_reply_html"].startswith("<")
    assert data["actions"]
    assert CANARY not in reply.text and "alive" not in reply.text


def _parse(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


async def test_unscreened_ticket_is_404_no_assessment(running):
    service, _, _ = running
    reply = await service.http.get("/api/v1/zendesk/acme/tickets/999/assessment",
                                   headers=bearer())
    assert reply.status_code == 404 and reply.json() == {"error": "no assessment"}


@pytest.mark.parametrize("path, headers", [
    ("/api/v1/zendesk/acme/tickets/{id}/assessment", {}),
    ("/api/v1/zendesk/acme/tickets/{id}/assessment", {"Authorization": "Bearer nope"}),
    ("/api/v1/zendesk/acme/tickets/{id}/assessment", {"Authorization": f"Basic {ADMIN_TOKEN}"}),
    # another tenant's token, a wrong vendor, an unknown tenant: all the same 401
    ("/api/v1/zendesk/acme/tickets/{id}/assessment",
     {"Authorization": "Bearer other-tenant-admin-token-0003"}),
    ("/api/v1/freshdesk/acme/tickets/{id}/assessment", {"Authorization": f"Bearer {ADMIN_TOKEN}"}),
    ("/api/v1/zendesk/nobody/tickets/{id}/assessment", {"Authorization": f"Bearer {ADMIN_TOKEN}"}),
])
async def test_refusals_are_a_bare_401(running, path, headers):
    service, sandbox, tenant = running
    ticket_id = await screened_ticket(service, sandbox, tenant, CRISIS_TEXT)
    reply = await service.http.get(path.format(id=ticket_id), headers=headers)
    assert reply.status_code == 401 and reply.json() == {"error": "unauthorized"}


async def test_tier_none_shows_no_resources_or_reply(running):
    service, sandbox, tenant = running
    ticket_id = await screened_ticket(service, sandbox, tenant, "Where is my parcel? " + CANARY)
    data = (await service.http.get(f"/api/v1/zendesk/acme/tickets/{ticket_id}/assessment",
                                   headers=bearer())).json()
    assert data["tier"] == "none"
    assert data["resources"] == [] and data["suggested_reply_html"] is None
    assert data["emergency_number"] is None


def test_view_uses_the_third_party_reply_and_the_tenant_default_country():
    tenant = zendesk_tenant("http://127.0.0.1:9", default_country="DE")
    record = {"ticket_id": "7", "tier": "high", "score": 0.71, "rule_ids": ["de.x"],
              "categories": ["third_party"], "flags": ["third_party"], "language": "de",
              "decided_at": 0.0, "actions": ["note"], "country": None}
    view = assessment_view(record, tenant)
    personal = assessment_view({**record, "flags": []}, tenant)
    assert view["suggested_reply_html"] != personal["suggested_reply_html"]
    assert view["emergency_number"] == "112"
    assert view["decided_at"] == "1970-01-01T00:00:00Z"
    assert view["category_labels"] == ["worry about someone else"]
