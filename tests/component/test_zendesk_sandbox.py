"""The Zendesk sandbox: behaves like Zendesk for the calls CareRoute makes, and sends signed webhooks
that CareRoute's own verifier accepts."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from plugin.sandbox.zendesk import TRAINED_GROUP_ID
from plugin.zendesk.provision import COMMENT_BODY, CREATED_BODY
from plugin.zendesk.webhook import parse, verify
from tests.zendesk_support import AGENT_EMAIL, customer_ticket, running_receiver, running_sandbox

BASIC = httpx.BasicAuth(f"{AGENT_EMAIL}/token", "sandbox-token")


def api(url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, auth=BASIC, timeout=5)


async def make_webhook(http: httpx.AsyncClient, endpoint: str, subscriptions: list[str]) -> tuple[str, str]:
    created = await http.post("/api/v2/webhooks", json={"webhook": {
        "name": "CareRoute (acme)", "status": "active", "endpoint": endpoint,
        "http_method": "POST", "request_format": "json", "subscriptions": subscriptions}})
    assert created.status_code == 201
    webhook_id = created.json()["webhook"]["id"]
    secret = (await http.get(f"/api/v2/webhooks/{webhook_id}/signing_secret")).json()
    return webhook_id, secret["signing_secret"]["secret"]


async def new_ticket(http: httpx.AsyncClient, text: str = "I feel so alone lately.") -> int:
    response = await http.post("/api/v2/tickets", json={"ticket": {
        "subject": "Question", "comment": {"body": text},
        "requester": {"name": "Ana", "email": "ana@example.com", "locale": "es",
                      "time_zone": "Madrid"}, "tags": ["web"]}})
    assert response.status_code == 201
    return response.json()["ticket"]["id"]


# ------------------------------------------------------------------ outgoing webhooks


async def test_trigger_webhooks_are_signed_and_parse_with_our_code() -> None:
    async with running_receiver() as receiver, running_sandbox() as sandbox:
        async with api(sandbox.url) as http:
            webhook_id, secret = await make_webhook(
                http, f"{receiver.url}/webhooks/zendesk/acme", ["conditional_ticket_events"])
            for title, update_type, body in (("new", "Create", CREATED_BODY),
                                             ("replies", "Change", COMMENT_BODY)):
                conditions = [{"field": "update_type", "operator": "is", "value": update_type}]
                if update_type == "Change":
                    conditions += [{"field": "role", "operator": "is", "value": "end_user"},
                                   {"field": "comment_is_public", "operator": "is", "value": "true"}]
                made = await http.post("/api/v2/triggers", json={"trigger": {
                    "title": title, "conditions": {"all": conditions},
                    "actions": [{"field": "notification_webhook", "value": [webhook_id, body]}]}})
                assert made.status_code == 201
            ticket_id = await new_ticket(http)
            # An agent's own update must not fire the requester trigger.
            await http.put(f"/api/v2/tickets/{ticket_id}", json={"ticket": {"priority": "high"}})
            await http.post(f"/_sandbox/tickets/{ticket_id}/requester_comment",
                            json={"body": "still here"})
            await sandbox.state.sender.drain()
    assert len(receiver.received) == 2
    refs = []
    for delivery in receiver.received:
        headers = delivery["headers"]
        assert headers["user-agent"] == "Zendesk Webhook"
        assert headers["x-zendesk-webhook-id"] == webhook_id
        assert headers["x-zendesk-webhook-signature-timestamp"].endswith("Z")
        verify(headers, delivery["raw"], secret, time.time())
        refs.append(parse(delivery["raw"], tenant_id="acme", headers=headers))
    assert [(r.event, r.ticket_id) for r in refs] == [("created", str(ticket_id)), ("comment", str(ticket_id))]
    assert refs[0].hints["requester_locale"] == "es" and refs[0].hints["via"] == "Web Service"


async def test_event_webhooks_and_trigger_route_dedupe_to_one_job() -> None:
    async with running_receiver() as receiver, running_sandbox() as sandbox:
        async with api(sandbox.url) as http:
            _, event_secret = await make_webhook(http, f"{receiver.url}/webhooks/zendesk/acme", [
                "zen:event-type:ticket.created", "zen:event-type:ticket.comment_added"])
            trigger_hook, trigger_secret = await make_webhook(
                http, f"{receiver.url}/webhooks/zendesk/acme", ["conditional_ticket_events"])
            await http.post("/api/v2/triggers", json={"trigger": {
                "title": "new", "conditions": {"all": [
                    {"field": "update_type", "operator": "is", "value": "Create"}]},
                "actions": [{"field": "notification_webhook", "value": [trigger_hook, CREATED_BODY]}]}})
            ticket_id = await new_ticket(http)
            await sandbox.state.sender.drain()
    refs = []
    for delivery in receiver.received:
        secret = trigger_secret if delivery["headers"]["x-zendesk-webhook-id"] == trigger_hook else event_secret
        verify(delivery["headers"], delivery["raw"], secret, time.time())
        refs.append(parse(delivery["raw"], tenant_id="acme", headers=delivery["headers"]))
    kinds = sorted(r.event for r in refs)
    assert kinds == ["comment", "created", "created"]
    created_keys = {r.dedupe_key for r in refs if r.event == "created"}
    assert created_keys == {f"zendesk:acme:{ticket_id}:created"}
    event_body = json.loads(next(d["raw"] for d in receiver.received if b"zen:event-type" in d["raw"]))
    assert event_body["detail"]["id"] == str(ticket_id) and event_body["detail"]["status"] == "NEW"


async def test_direct_target_without_provisioning() -> None:
    async with running_receiver() as receiver:
        target = f"{receiver.url}/webhooks/zendesk/acme"
        async with running_sandbox(webhook_target=target, webhook_secret="direct-secret") as sandbox:
            ticket_id = customer_ticket(sandbox.state, "hello")
            sandbox.state.requester_comment(sandbox.state.tickets[ticket_id], "again")
            await sandbox.state.sender.drain()
    assert len(receiver.received) == 2
    for delivery in receiver.received:
        verify(delivery["headers"], delivery["raw"], "direct-secret", time.time())
    events = [parse(d["raw"], tenant_id="acme", headers=d["headers"]).event for d in receiver.received]
    assert events == ["created", "comment"]


@pytest.mark.parametrize("answers, attempts", [
    ([409, 409, 202], 3),  # 409 is retried (up to 3 times)
    ([409, 409, 409, 409, 409], 4),
    ([500, 202], 1),  # a 500 is not retried
    ([503, 202], 1),  # 503 without Retry-After is not retried
    ([401, 202], 1),
])
async def test_delivery_retries_follow_zendesk(answers, attempts) -> None:
    async with running_receiver(answers) as receiver:
        target = f"{receiver.url}/webhooks/zendesk/acme"
        async with running_sandbox(webhook_target=target, webhook_secret="s") as sandbox:
            customer_ticket(sandbox.state, "hello")
            await sandbox.state.sender.drain()
            log = sandbox.state.sender.attempts
    assert len(receiver.received) == attempts == len(log)
    invocation_ids = {d["headers"]["x-zendesk-webhook-invocation-id"] for d in receiver.received}
    assert len(invocation_ids) == 1  # one invocation, several attempts


async def test_timeouts_are_retried_five_times() -> None:
    async with running_sandbox(webhook_target="http://127.0.0.1:9/unreachable", webhook_secret="s",
                               webhook_timeout=0.05) as sandbox:
        sandbox.state.sender.timeout = 0.05

        async def never_answers(url, body, headers):
            return "timeout", None

        sandbox.state.sender._post = never_answers  # type: ignore[method-assign]
        customer_ticket(sandbox.state, "hello")
        await sandbox.state.sender.drain()
        assert len(sandbox.state.sender.attempts) == 6


# ------------------------------------------------------------------ tickets, tags, errors


async def test_tag_verbs_and_ticket_put_semantics() -> None:
    async with running_sandbox() as sandbox, api(sandbox.url) as http:
        ticket_id = await new_ticket(http)
        path = f"/api/v2/tickets/{ticket_id}"
        added = await http.put(f"{path}/tags", json={"tags": ["a", "b"]})
        assert added.status_code == 200 and added.json()["tags"] == ["web", "a", "b"]
        replaced = await http.post(f"{path}/tags", json={"tags": ["only"]})
        assert replaced.status_code == 201 and replaced.json()["tags"] == ["only"]
        updated = await http.put(path, json={"ticket": {"tags": ["x"], "additional_tags": ["y"]}})
        assert updated.json()["ticket"]["tags"] == ["x"]
        warn = updated.headers["x-zendesk-api-warn"]
        assert '"ticket.additional_tags"' in warn and "unpermitted_keys" in warn
        clean = await http.put(path, json={"ticket": {"priority": "low"}})
        assert "x-zendesk-api-warn" not in clean.headers


async def test_safe_update_closed_and_missing_bodies() -> None:
    async with running_sandbox() as sandbox, api(sandbox.url) as http:
        ticket_id = await new_ticket(http)
        path = f"/api/v2/tickets/{ticket_id}"
        stamp = (await http.get(path)).json()["ticket"]["updated_at"]
        ok = await http.put(path, json={"ticket": {"priority": "high", "safe_update": True,
                                                   "updated_stamp": stamp}})
        assert ok.status_code == 200 and ok.json()["ticket"]["updated_at"] != stamp
        stale = await http.put(path, json={"ticket": {"priority": "urgent", "safe_update": False,
                                                      "updated_stamp": stamp}})
        assert stale.status_code == 409  # false behaves like true
        missing = await http.put("/api/v2/tickets/999999", json={"ticket": {"priority": "low"}})
        assert missing.json() == {"error": "RecordNotFound", "description": "Not found"}
        await http.post(f"/_sandbox/tickets/{ticket_id}/close")
        closed = await http.put(path, json={"ticket": {"priority": "low"}})
        assert closed.status_code == 422
        assert closed.json()["details"]["status"][0]["description"] == "Status closed prevents ticket update"
        bad_group = await http.post("/api/v2/tickets", json={"ticket": {
            "comment": {"body": "x"}, "group_id": 1}})
        assert bad_group.status_code == 422 and bad_group.json()["error"] == "RecordInvalid"


async def test_auth_failures_use_zendesk_bodies() -> None:
    async with running_sandbox() as sandbox:
        async with httpx.AsyncClient(base_url=sandbox.url) as anonymous:
            nobody = await anonymous.get("/api/v2/tickets/1")
            bearer = await anonymous.get("/api/v2/tickets/1", headers={"Authorization": "Bearer nope"})
            wrong = await anonymous.get("/api/v2/tickets/1",
                                        auth=httpx.BasicAuth(f"{AGENT_EMAIL}/token", "wrong"))
    assert nobody.status_code == wrong.status_code == bearer.status_code == 401
    assert nobody.json() == {"error": "Couldn't authenticate you"}
    assert bearer.json()["error"] == "invalid_token"


async def test_oauth_codes_refresh_rotation_and_expiry() -> None:
    async with running_sandbox(token_ttl=1) as sandbox:
        async with httpx.AsyncClient(base_url=sandbox.url) as http:
            client = {"client_id": "sandbox-client", "client_secret": "sandbox-secret"}
            code = sandbox.state.issue_code()
            first = await http.post("/oauth/tokens", json={"grant_type": "authorization_code",
                                                           "code": code, **client})
            reused = await http.post("/oauth/tokens", json={"grant_type": "authorization_code",
                                                            "code": code, **client})
            tokens = first.json()
            works = await http.get("/api/v2/groups",
                                   headers={"Authorization": f"Bearer {tokens['access_token']}"})
            rotated = await http.post("/oauth/tokens", data={
                "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], **client})
            replayed = await http.post("/oauth/tokens", json={
                "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], **client})
            wrong_client = await http.post("/oauth/tokens", json={
                "grant_type": "client_credentials", "client_id": "x", "client_secret": "y"})
            sandbox.state.access_tokens[tokens["access_token"]] = time.time() - 1
            expired = await http.get("/api/v2/groups",
                                     headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert first.status_code == 200 and tokens["expires_in"] == 1
    assert reused.status_code == 400 and works.status_code == 200
    assert rotated.status_code == 200 and rotated.json()["refresh_token"] != tokens["refresh_token"]
    assert replayed.status_code == 400 and wrong_client.status_code == 401
    assert expired.status_code == 401 and expired.json()["error"] == "invalid_token"


async def test_account_rate_limit_headers_and_429() -> None:
    async with running_sandbox(account_rate_per_minute=3) as sandbox, api(sandbox.url) as http:
        answers = [await http.get("/api/v2/groups") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[0].headers["ratelimit-limit"] == "3" and answers[0].headers["x-rate-limit-remaining"] == "2"
    assert 1 <= int(answers[3].headers["retry-after"]) <= 60


async def test_per_ticket_update_limit_is_html_429() -> None:
    async with running_sandbox(per_ticket_updates=2) as sandbox, api(sandbox.url) as http:
        ticket_id = await new_ticket(http)
        answers = [await http.put(f"/api/v2/tickets/{ticket_id}", json={"ticket": {"priority": p}})
                   for p in ("low", "normal", "high")]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[0].headers["zendesk-ratelimit-per-ticket-updates"].startswith("total=2; remaining=1;")
    assert answers[2].headers["content-type"].startswith("text/html")
    assert int(answers[2].headers["retry-after"]) > 60


async def test_users_comments_and_macro_apply() -> None:
    async with running_sandbox() as sandbox, api(sandbox.url) as http:
        user = (await http.post("/api/v2/users", json={"user": {
            "name": "Lea", "email": "lea@example.com", "locale": "de", "time_zone": "Berlin"}})).json()["user"]
        shown = (await http.get(f"/api/v2/users/{user['id']}")).json()["user"]
        assert (shown["locale"], shown["time_zone"], shown["iana_time_zone"]) == ("de", "Berlin", "Europe/Berlin")
        ticket_id = await new_ticket(http)
        for n in range(3):
            await http.put(f"/api/v2/tickets/{ticket_id}", json={"ticket": {
                "comment": {"html_body": f"<p>note {n}</p>", "public": False}}})
        page = (await http.get(f"/api/v2/tickets/{ticket_id}/comments",
                               params={"page[size]": 2})).json()
        assert len(page["comments"]) == 2 and page["meta"]["has_more"] is True
        rest = (await http.get(page["links"]["next"])).json()
        assert [c["plain_body"] for c in rest["comments"]] == ["note 1", "note 2"]
        assert rest["meta"]["has_more"] is False and rest["comments"][0]["public"] is False
        macro = (await http.post("/api/v2/macros", json={"macro": {"title": "Reply", "actions": [
            {"field": "comment_value_html", "value": "<p>We are here.</p>"},
            {"field": "group_id", "value": str(TRAINED_GROUP_ID)}]}})).json()["macro"]
        result = (await http.get(f"/api/v2/tickets/{ticket_id}/macros/{macro['id']}/apply")).json()
        unchanged = (await http.get(f"/api/v2/tickets/{ticket_id}")).json()["ticket"]
    after = result["result"]["ticket"]
    assert after["group_id"] == TRAINED_GROUP_ID and after["comment"]["public"] is True
    assert after["comment"]["html_body"] == "<p>We are here.</p>"
    assert unchanged["group_id"] is None  # applying a macro through the API changes nothing


async def test_request_log_and_fault_knobs_come_from_common() -> None:
    async with running_sandbox() as sandbox, api(sandbox.url) as http:
        await http.put("/_sandbox/faults", json={"error_rate": 1.0})
        failed = await http.get("/api/v2/groups")
        await http.put("/_sandbox/faults", json={"error_rate": 0.0})
        log = (await http.get("/_sandbox/requests")).json()
    assert failed.status_code == 503
    assert [(e["method"], e["path"], e["status"]) for e in log] == [("GET", "/api/v2/groups", 503)]
