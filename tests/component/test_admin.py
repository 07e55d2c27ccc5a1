"""/admin over real HTTP: sign-in, sessions and CSRF, the live preview, saving settings through the
tenant registry (the next ticket uses them) and the figures — with the real screener, policy,
vendor clients and sandboxes."""

from __future__ import annotations

import io
import time

import httpx
import pytest

from admin_support import (CRISIS_TEXT, FRESHDESK_ADMIN_TOKEN, HIGH_TEXT, ORDINARY_TEXT,
                           ZENDESK_ADMIN_TOKEN, csrf_of, running_stack, signed_in)
from plugin import logging as cr_logging
from plugin.handlers.admin import AdminAuth, form_changes, highlight
from plugin.model import Decision
from plugin.sandbox.zendesk import TRAINED_GROUP_ID

CANARY = "CANARY-admin-41f2 lighthouse keeper"


@pytest.fixture
async def stack(tmp_path):
    async with running_stack(tmp_path) as running:
        yield running


def settings_form(csrf: str, **overrides: str) -> dict[str, str]:
    form = {"csrf": csrf, "screening.concern": "0.35", "screening.high": "0.60",
            "screening.imminent": "0.85", "trained_group_id": str(TRAINED_GROUP_ID),
            "high.note": "on", "high.priority": "high", "high.route_to_trained_group": "on",
            "imminent.note": "on", "imminent.priority": "urgent",
            "imminent.route_to_trained_group": "on", "auto_reply.outside_hours": "on",
            "auto_reply.business_hours": "09:00-17:00", "auto_reply.time_zone": "UTC"}
    form.update(overrides)
    return form


async def test_login_needs_the_right_token_and_sets_a_strict_http_only_cookie(stack):
    async with httpx.AsyncClient(base_url=stack.url) as http:
        page = await http.get("/admin")
        assert page.status_code == 200
        assert '<label for="token">Admin token</label>' in page.text
        csrf = csrf_of(page.text)
        wrong = await http.post("/admin/login", data={"tenant": "acme-zd", "token": "nope",
                                                       "csrf": csrf})
        assert wrong.status_code == 401 and "do not match" in wrong.text
        assert "nope" not in wrong.text
        other = await http.post("/admin/login", data={"tenant": "acme-zd",
                                                       "token": FRESHDESK_ADMIN_TOKEN, "csrf": csrf})
        assert other.status_code == 401  # another tenant's token opens nothing here
        assert (await http.get("/admin/tenant")).status_code == 303
        right = await http.post("/admin/login", data={"tenant": "acme-zd",
                                                       "token": ZENDESK_ADMIN_TOKEN, "csrf": csrf})
        assert right.status_code == 303
        cookie = next(v for k, v in right.headers.multi_items()
                      if k == "set-cookie" and v.startswith("careroute_admin="))
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/admin" in cookie
        assert ZENDESK_ADMIN_TOKEN not in cookie
        page = await http.get("/admin/tenant")
        assert page.status_code == 200 and "acme-zd" in page.text
        assert ZENDESK_ADMIN_TOKEN not in page.text


async def test_login_without_the_form_token_or_from_another_origin_is_refused(stack):
    async with httpx.AsyncClient(base_url=stack.url) as http:
        csrf = csrf_of((await http.get("/admin")).text)
        data = {"tenant": "acme-zd", "token": ZENDESK_ADMIN_TOKEN}
        assert (await http.post("/admin/login", data=data)).status_code == 403
        foreign = await http.post("/admin/login", data={**data, "csrf": csrf},
                                  headers={"Origin": "https://evil.example"})
        assert foreign.status_code == 403


async def test_guessing_is_slowed_after_five_failures(stack):
    async with httpx.AsyncClient(base_url=stack.url) as http:
        csrf = csrf_of((await http.get("/admin")).text)
        for _ in range(5):
            await http.post("/admin/login", data={"tenant": "acme-zd", "token": "x", "csrf": csrf})
        right = await http.post("/admin/login", data={"tenant": "acme-zd",
                                                       "token": ZENDESK_ADMIN_TOKEN, "csrf": csrf})
        assert right.status_code == 429


def test_forged_expired_and_rotated_sessions_are_rejected():
    from admin_support import tenants_for
    tenant = tenants_for("http://127.0.0.1:1", "http://127.0.0.1:2")[0]
    auth = AdminAuth()
    cookie = auth.issue(tenant, now=1000.0)
    assert auth.read(cookie, {tenant.id: tenant}.get, now=1001.0).tenant_id == "acme-zd"
    assert auth.read(cookie, {tenant.id: tenant}.get, now=1000.0 + 9 * 3600) is None
    assert AdminAuth().read(cookie, {tenant.id: tenant}.get, now=1001.0) is None  # other process
    body, mac = cookie.rsplit(".", 1)
    assert auth.read(body[:-2] + "xx." + mac, {tenant.id: tenant}.get, now=1001.0) is None
    rotated = tenant.model_copy(update={"admin_token": type(tenant.admin_token)("new-token")})
    assert auth.read(cookie, {tenant.id: rotated}.get, now=1001.0) is None


async def test_preview_shows_tier_signals_and_the_exact_plan_without_keeping_the_text(stack):
    output = io.StringIO()
    cr_logging.configure(level="debug", fmt="json", stream=output)
    async with signed_in(stack) as http:
        page = await http.get("/admin/tenant")
        csrf = csrf_of(page.text)
        text = f"{CANARY} <script>alert(1)</script> {CRISIS_TEXT}"
        refused = await http.post("/admin/preview", json={"text": text})
        assert refused.status_code == 403
        reply = await http.post("/admin/preview", json={"text": text},
                                headers={"X-CSRF-Token": csrf})
        assert reply.status_code == 200
        data = reply.json()
    assert data["tier"] == "imminent" and data["score"] >= 0.85
    assert "<mark" in data["highlighted_html"] and "goodbye everyone</mark>" in data["highlighted_html"]
    assert "<script>" not in data["highlighted_html"] and "&lt;script&gt;" in data["highlighted_html"]
    plan = data["plan"]
    assert plan["tags"] == ["careroute_imminent", "careroute_screened"]
    assert plan["priority"] == "urgent" and plan["group_id"] == TRAINED_GROUP_ID
    assert plan["note_html"] and "<span hidden>careroute-job:preview</span>" in plan["note_html"]
    assert "<div" not in plan["note_html"] and "style=" not in plan["note_html"]
    assert {s["category"] for s in data["signals"]} >= {"timing", "farewell"}
    # Not logged, not stored.
    assert CANARY not in output.getvalue()
    await stack.service.store.run(lambda conn: conn.execute("PRAGMA wal_checkpoint(FULL)"))
    for path in (stack.service.store.path.parent).iterdir():
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path.name


async def test_preview_uses_the_unsaved_form_values(stack):
    async with signed_in(stack) as http:
        csrf = csrf_of((await http.get("/admin/tenant")).text)
        form = settings_form(csrf, **{"screening.imminent": "0.99"})
        form.pop("csrf")
        reply = await http.post("/admin/preview", json={"text": CRISIS_TEXT, "settings": form},
                                headers={"X-CSRF-Token": csrf})
        data = reply.json()
        assert data["tier"] == "high" and data["unsaved_settings"] is True
        assert data["plan"]["priority"] == "high"
        bad = await http.post("/admin/preview", json={
            "text": CRISIS_TEXT, "settings": {**form, "screening.high": "0.2"}},
            headers={"X-CSRF-Token": csrf})
        assert bad.status_code == 400 and "thresholds must rise" in bad.json()["error"]
    # Nothing was saved by a preview.
    assert stack.service.tenants.get("acme-zd").screening.imminent == 0.85


async def test_saved_settings_are_validated_recorded_and_used_by_the_next_ticket(stack):
    before = await stack.zendesk_ticket(HIGH_TEXT)
    async with signed_in(stack) as http:
        csrf = csrf_of((await http.get("/admin/tenant")).text)
        wrong = await http.post("/admin/settings", data=settings_form("forged"))
        assert wrong.status_code == 403
        invalid = await http.post("/admin/settings", data=settings_form(
            csrf, **{"screening.concern": "0.7"}))
        assert invalid.status_code == 400 and "thresholds must rise" in invalid.text
        saved = await http.post("/admin/settings", data=settings_form(
            csrf, **{"screening.high": "0.75", "concern.note": "on", "concern.tags": "Review"}))
        assert saved.status_code == 303
        page = await http.get("/admin/tenant?saved=1")
        assert "Saved. The next ticket uses these settings." in page.text
        assert 'value="0.75"' in page.text
        assert "screening.high" in page.text  # the recent-changes list names the key
    tenant = stack.service.tenants.get("acme-zd")
    assert tenant.screening.high == 0.75 and tenant.actions.concern.tags == ("review",)
    changes = await stack.registry.changes("acme-zd")
    assert changes[0]["actor"] == "admin-page:acme-zd"
    assert "screening.high" in changes[0]["keys"]
    after = await stack.zendesk_ticket(HIGH_TEXT)
    decisions = {d["ticket_id"]: d for d in await stack.service.audit.recent("acme-zd")}
    assert decisions[before]["tier"] == "high"
    assert decisions[after]["tier"] == "concern"
    tags = stack.zendesk.state.tickets[int(after)].tags
    assert "careroute_concern" in tags and "review" in tags


async def test_figures_show_weekly_tiers_feedback_rate_and_median_routing_time(stack):
    flagged = await stack.zendesk_ticket(CRISIS_TEXT)
    await stack.zendesk_ticket(HIGH_TEXT)
    await stack.zendesk_ticket(ORDINARY_TEXT)
    now = time.time()
    await stack.service.audit.record(Decision(
        tenant_id="acme-zd", vendor="zendesk", ticket_id=flagged, delivery_id="fb-1", job_id="fb-1",
        event="feedback", tier="none", score=0.0, rule_ids=(), categories=(), flags=(),
        language="und", actions=(), outcome="feedback:false_positive", received_at=now,
        decided_at=now))
    async with signed_in(stack) as http:
        page = (await http.get("/admin/tenant")).text
    assert '<td class="num" data-tier="imminent">1</td>' in page
    assert '<td class="num" data-tier="high">1</td>' in page
    assert '<td class="num" data-tier="none">1</td>' in page
    assert "50% (1 feedback / 2 flagged)" in page
    assert "over 2 routed tickets" in page
    assert '<tr><th scope="row">imminent</th><td class="num">1</td><td class="num">1</td><td class="num">0%</td></tr>' in page


async def test_a_session_only_reaches_its_own_tenant(stack):
    async with signed_in(stack, "acme-fd", FRESHDESK_ADMIN_TOKEN) as http:
        page = await http.get("/admin/tenant")
        assert "acme-fd (freshdesk)" in page.text and "acme-zd" not in page.text
        csrf = csrf_of(page.text)
        await http.post("/admin/settings", data=settings_form(
            csrf, trained_group_id="2", **{"screening.high": "0.65"}))
    assert stack.service.tenants.get("acme-fd").screening.high == 0.65
    assert stack.service.tenants.get("acme-zd").screening.high == 0.60


def test_form_changes_reads_checkboxes_numbers_and_refuses_bad_values():
    changes = form_changes(settings_form("x", **{"high.macro_id": "42", "high.tags": "a, b"}))
    assert changes["screening"] == {"concern": 0.35, "high": 0.6, "imminent": 0.85}
    assert changes["actions"]["high"]["macro_id"] == 42
    assert changes["actions"]["high"]["tags"] == ["a", "b"]
    assert changes["actions"]["concern"]["note"] is False
    assert changes["auto_reply"]["enabled"] is False
    from plugin.handlers.admin import FormError
    with pytest.raises(FormError, match="high group id"):
        form_changes(settings_form("x", **{"high.group_id": "twelve"}))
    with pytest.raises(FormError, match="concern threshold: required"):
        form_changes(settings_form("x", **{"screening.concern": ""}))


def test_highlight_escapes_and_merges_overlapping_spans():
    text = "a <b> tonight goodbye"
    out = highlight(text, [(6, 13, "timing"), (10, 21, "farewell"), (0, 1, "x")])
    assert out == ('<mark title="x">a</mark> &lt;b&gt; '
                   '<mark title="timing, farewell">tonight goodbye</mark>')
    assert highlight("abc", [(5, 9, "out of range")]) == "abc"
