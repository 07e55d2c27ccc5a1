"""Provisioning against the sandbox: creates, is idempotent, dry-run writes nothing, 403 → manual."""

from __future__ import annotations

from plugin.freshdesk.provision import RULES, provision
from plugin.freshdesk.webhook import CREATE_BODY
from plugin.sandbox.freshdesk import AGENT_KEY
from tests.freshdesk_support import SECRET, context, running_receiver, running_sandbox, tenant

REPLIES = {"en": "<p>Thank you for writing to us.</p>", "de": "<p>Danke für Ihre Nachricht.</p>"}


def writes(box) -> list[tuple[str, str]]:
    return [(e.method, e.path) for e in box.state.log.entries if e.method != "GET"]


async def test_provision_creates_rules_and_replies_then_changes_nothing():
    async with running_sandbox() as box:
        first = await provision(tenant(box.url), "https://careroute.example", context=context(),
                                reply_texts=REPLIES)
        after_first = writes(box)
        box.state.log.clear()
        second = await provision(tenant(box.url), "https://careroute.example/",
                                 context=context(), reply_texts=REPLIES)
        rules = [r for kind in (1, 4) for r in box.state.rules[kind].values()]
        canned = sorted(c["title"] for c in box.state.canned.values())
        second_writes = writes(box)
    assert sorted(r["name"] for r in rules) == sorted(spec.name for spec in RULES)
    create_rule = next(r for r in rules if r["automation_type_id"] == 1)
    action = create_rule["actions"][0]
    assert action["url"] == "https://careroute.example/webhooks/freshdesk/acme"
    assert action["auth_header"] == {"username": "careroute", "password": SECRET}
    assert action["content"] == CREATE_BODY
    assert canned == ["CareRoute reply (de)", "CareRoute reply (en)"]
    assert len(after_first) == 3 + 1 + 2  # three rules, the folder, two replies
    assert first.manual_steps == [] and second.manual_steps == []
    assert second_writes == []
    assert all("up to date" in s or "exists" in s for s in second.steps)
    assert not any(SECRET in line for line in first.steps + second.steps)


async def test_changed_settings_update_in_place():
    async with running_sandbox() as box:
        await provision(tenant(box.url), "https://old.example", context=context(),
                        reply_texts=REPLIES)
        box.state.log.clear()
        result = await provision(tenant(box.url), "https://new.example", context=context(),
                                 reply_texts={**REPLIES, "en": "<p>Thank you, truly.</p>"})
        methods = sorted(m for m, _ in writes(box))
        urls = {r["actions"][0]["url"] for kind in (1, 4) for r in box.state.rules[kind].values()}
    assert methods == ["PUT"] * 4  # three rules and one reply, nothing created twice
    assert urls == {"https://new.example/webhooks/freshdesk/acme"}
    assert sum(s.endswith(": updated") for s in result.steps) == 4  # 3 rules + the en reply


async def test_dry_run_writes_nothing():
    async with running_sandbox() as box:
        result = await provision(tenant(box.url), "https://careroute.example", dry_run=True,
                                 context=context(), reply_texts=REPLIES)
        assert writes(box) == []
        assert box.state.rules[1] == {} and box.state.canned == {}
    assert result.steps[0] == "dry run: nothing is written"
    assert sum("would create" in s for s in result.steps) == 3 + 1 + 2


async def test_agent_key_gets_exact_manual_steps_without_the_secret():
    async with running_sandbox() as box:
        result = await provision(tenant(box.url, key=AGENT_KEY), "https://careroute.example",
                                 context=context(), reply_texts=REPLIES)
        assert writes(box) == []
    manual = "\n".join(result.manual_steps)
    assert CREATE_BODY in manual
    assert "https://careroute.example/webhooks/freshdesk/acme" in manual
    assert "Thank you for writing to us." in manual and "CareRoute reply (de)" in manual
    assert SECRET not in manual and not any(SECRET in s for s in result.steps)
    assert sum("the API refused" in s for s in result.steps) == 4


async def test_provisioned_rule_reaches_the_service_with_basic_auth():
    async with running_receiver() as receiver, running_sandbox() as box:
        service = receiver.url.removesuffix("/webhooks/freshdesk/acme")
        await provision(tenant(box.url), service, context=context(), reply_texts={})
        ticket = await box.ticket("<div>hello</div>", source=3)
        await box.customer_reply(ticket["id"], "<div>one more thing</div>")
        await box.state.idle()
        auth = {d.auth for d in box.state.deliveries}
    refs = [e["ref"] for e in receiver.received]
    assert [(r.event, r.ticket_id) for r in refs] == [("created", str(ticket["id"])),
                                                      ("comment", str(ticket["id"]))]
    assert refs[0].hints["source"] == "Phone"
    assert auth == {"basic"}


async def test_default_reply_texts_come_from_the_resources_templates():
    from plugin.resources import LANGUAGES

    async with running_sandbox() as box:
        result = await provision(tenant(box.url, default_country="DE"),
                                 "https://careroute.example", context=context())
        by_title = {c["title"]: c for c in box.state.canned.values()}
    assert sorted(by_title) == sorted(f"CareRoute reply ({lang})" for lang in LANGUAGES)
    assert all(c["content_html"].strip() for c in by_title.values())
    assert "112" in by_title["CareRoute reply (de)"]["content_html"]  # Germany's emergency number
    assert result.manual_steps == []


async def wait_for(condition, timeout: float = 15.0) -> None:
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_end_to_end_through_the_service_with_429s_and_redelivery(tmp_path):
    """Provisioned rule → CareRoute's HTTP service → worker → this client → the sandbox."""
    import httpx
    from aiohttp.test_utils import TestServer

    from plugin.config import ServiceSettings
    from plugin.handlers.http import create_app
    from plugin.service import Service
    from plugin.tenants import TenantDirectory

    async with running_sandbox() as box:
        account = tenant(box.url, trained_group_id=2)
        service = Service(ServiceSettings(data_dir=tmp_path, retry_base_seconds=0.1,
                                          shutdown_grace_seconds=0.5),
                          TenantDirectory([account]))
        server = TestServer(create_app(service), host="127.0.0.1")
        await server.start_server()
        try:
            await provision(account, str(server.make_url("")), context=context(),
                            reply_texts={})
            box.state.faults.update({"rate_limit_rate": 1.0, "retry_after": 1})
            crisis = box.state.create_ticket({
                "subject": "Cancel my plan", "email": "a@example.com", "tags": ["billing"],
                "description": "<div>I can't do this anymore. I want to end my life tonight.</div>"})
            ordinary = box.state.create_ticket({
                "subject": "Parcel", "email": "b@example.com",
                "description": "<div>My parcel is late again, this update is killing me.</div>"})
            await wait_for(lambda: any(e.status == 429 for e in box.state.log.entries))
            box.state.faults.update({"rate_limit_rate": 0.0})  # the window opens again
            await wait_for(lambda: box.private_notes(crisis["id"]))
            await box.state.idle()
            # Freshdesk's retry of the same delivery arrives after the work is done
            first = next(d for d in box.state.deliveries if d.rule.endswith("new tickets"))
            async with httpx.AsyncClient() as http:
                again = await http.post(first.url, content=first.body.encode(), headers={
                    "Content-Type": "application/json", "X-CareRoute-Token": account
                    .webhook_secret.get_secret_value()})
            await wait_for(lambda: all(d.status == 202 for d in box.state.deliveries))
        finally:
            await server.close()
        injected = [e for e in box.state.log.entries if e.status == 429]
        stored, untouched = box.state.tickets[crisis["id"]], box.state.tickets[ordinary["id"]]
    assert again.status_code == 202 and again.json()["duplicate"] is True
    assert stored["tags"][0] == "billing"
    assert {"careroute_screened"} <= set(stored["tags"])
    assert {"careroute_high", "careroute_imminent"} & set(stored["tags"])
    assert stored["priority"] >= 3 and stored["group_id"] == 2
    assert len(box.private_notes(crisis["id"])) == 1
    assert untouched["tags"] == [] and untouched["priority"] == 1
    assert box.private_notes(ordinary["id"]) == []
    assert injected  # the run went through rate limiting and still wrote one note
