"""The admin page and the agent view in a real headless Chromium (Debian's /usr/bin/chromium).

Screenshots go to test-artifacts/ at the repository root (git ignores it).
"""

from __future__ import annotations

import pytest

from admin_support import (CRISIS_TEXT, HIGH_TEXT, ORDINARY_TEXT, ZENDESK_ADMIN_TOKEN,
                           running_stack)
from browser_support import CHROMIUM, chromium_page

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Chromium is not installed (/usr/bin/chromium): `apt-get install chromium` "
           "to run the browser tests; CI installs it")


@pytest.fixture
async def stack(tmp_path):
    async with running_stack(tmp_path) as running:
        yield running


async def test_admin_signs_in_previews_a_text_and_saves_a_threshold(stack):
    await stack.zendesk_ticket(CRISIS_TEXT)
    await stack.zendesk_ticket(ORDINARY_TEXT)
    async with chromium_page() as page:
        await page.goto(f"{stack.url}/admin")
        await page.type("#tenant", "acme-zd")
        await page.type("#token", ZENDESK_ADMIN_TOKEN)
        await page.click("button[type=submit]")
        await page.wait_for("location.pathname === '/admin/tenant' "
                            "&& document.readyState === 'complete'")
        assert await page.evaluate("document.querySelector('h1').textContent") \
            == "CareRoute admin acme-zd (zendesk)"

        await page.type("#preview-text", CRISIS_TEXT)  # typing alone runs the preview
        tier = await page.wait_for(
            "document.querySelector('#preview-tier .badge')?.textContent")
        assert tier == "imminent"
        marked = await page.evaluate(
            "[...document.querySelectorAll('#preview-result mark')].map(m => m.textContent)")
        assert any("goodbye everyone" in m for m in marked)
        actions = await page.evaluate("document.querySelector('.actions').textContent")
        assert "careroute_imminent" in actions and "urgent" in actions
        assert await page.evaluate(
            "getComputedStyle(document.querySelector('#preview-result .note span[hidden]'))"
            ".display") == "none"
        await page.screenshot("admin-preview.png")

        await page.type("#screening\\.high", "0.70")
        await page.click("#settings button[type=submit]")
        await page.wait_for("document.querySelector('.saved') !== null")
        assert await page.evaluate("document.getElementById('screening.high').value") == "0.70"
        assert "screening.high" in await page.evaluate(
            "document.querySelector('.changes').textContent")
        await page.screenshot("admin-saved.png")
    assert stack.service.tenants.get("acme-zd").screening.high == 0.70


async def test_agent_view_shows_a_flagged_ticket_with_its_tags_and_note(stack):
    crisis = await stack.zendesk_ticket(CRISIS_TEXT)
    high = await stack.freshdesk_ticket(HIGH_TEXT, language="es")
    async with chromium_page() as page:
        await page.goto(stack.agent_view_url + "/")
        card = f"article[data-vendor=zendesk][data-id='{crisis}']"
        await page.wait_for(f"document.querySelector(\"{card}\") !== null")
        tags = await page.evaluate(
            f"[...document.querySelectorAll(\"{card} .tag\")].map(t => t.textContent)")
        assert "careroute_imminent" in tags
        note = await page.evaluate(f"document.querySelector(\"{card} .note\").innerText")
        assert "careroute-job:" not in note  # the marker stays hidden
        assert len(note) > 200
        assert await page.evaluate(
            f"document.querySelector(\"{card} .priority\").textContent") == "urgent"
        # A ticket written after the page loaded appears without a reload.
        later = await stack.zendesk_ticket(HIGH_TEXT)
        await page.wait_for(
            f"document.querySelector(\"article[data-vendor=zendesk][data-id='{later}']\") !== null",
            timeout=15)
        assert await page.evaluate(
            f"document.querySelector(\"article[data-vendor=freshdesk][data-id='{high}'] .group\")"
            ".textContent") == "Wellbeing response"
        await page.screenshot("agent-view.png")
