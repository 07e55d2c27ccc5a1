"""The sandbox agent view: tickets screened by the real service, read back over the sandboxes' HTTP
APIs, notes rendered with only the tags the helpdesks render."""

from __future__ import annotations

import httpx
import pytest
from aiohttp.test_utils import TestServer

from admin_support import CRISIS_TEXT, HIGH_TEXT, ORDINARY_TEXT, running_stack
from plugin.sandbox.agent_view import create_app, sanitise_note


@pytest.fixture
async def stack(tmp_path):
    async with running_stack(tmp_path) as running:
        yield running


async def test_flagged_tickets_show_tags_priority_group_language_and_the_note(stack):
    ordinary = await stack.zendesk_ticket(ORDINARY_TEXT)
    crisis = await stack.zendesk_ticket(CRISIS_TEXT, locale="de")
    high = await stack.freshdesk_ticket(HIGH_TEXT, language="fr")
    async with httpx.AsyncClient(base_url=stack.agent_view_url) as http:
        listing = (await http.get("/api/tickets")).json()
        page = await http.get("/")
    assert listing["problems"] == []
    tickets = {(t["vendor"], str(t["id"])): t for t in listing["tickets"]}
    zd = tickets[("zendesk", crisis)]
    assert "careroute_imminent" in zd["tags"] and "careroute_screened" in zd["tags"]
    assert (zd["priority"], zd["group"], zd["language"]) == ("urgent", "Wellbeing trained", "de")
    [note] = zd["notes"]
    assert "<span hidden>careroute-job:" in note and "<div" not in note
    assert "<ul>" in note and "<strong>" in note
    fd = tickets[("freshdesk", high)]
    assert "careroute_high" in fd["tags"]
    assert (fd["priority"], fd["group"], fd["language"]) == ("high", "Wellbeing response", "fr")
    assert len(fd["notes"]) == 1 and "<span hidden>careroute-job:" in fd["notes"][0]
    plain = tickets[("zendesk", ordinary)]
    assert plain["notes"] == [] and not any(t.startswith("careroute_") for t in plain["tags"])
    # Newest first (times have one-second steps; the later of two tickets of one vendor first).
    stamps = [t["created_at"] for t in listing["tickets"]]
    assert stamps == sorted(stamps, reverse=True)
    assert page.status_code == 200 and "Agent view (sandbox)" in page.text
    assert (page.text.index(f'data-vendor="zendesk" data-id="{crisis}"')
            < page.text.index(f'data-vendor="zendesk" data-id="{ordinary}"'))
    assert 'class="tag flag">careroute_imminent</li>' in page.text


async def test_the_fragment_follows_new_tickets_and_a_dead_sandbox_is_reported(stack):
    async with httpx.AsyncClient(base_url=stack.agent_view_url) as http:
        empty = (await http.get("/tickets")).text
        assert "No tickets yet." in empty
    view = TestServer(create_app(zendesk_url=stack.zendesk.url, freshdesk_url="http://127.0.0.1:9"),
                      host="127.0.0.1")
    await view.start_server()
    try:
        ticket = await stack.zendesk_ticket(CRISIS_TEXT)
        async with httpx.AsyncClient(base_url=str(view.make_url(""))) as http:
            fragment = (await http.get("/tickets")).text
        assert f'data-id="{ticket}"' in fragment
        assert "Freshdesk sandbox is not answering" in fragment
    finally:
        await view.close()


@pytest.mark.parametrize("body, expected", [
    ('<div class="zd-comment"><p>Hi <b>there</b></p></div>', "<p>Hi there</p>"),
    ('<p onclick="x()">a</p><script>alert(1)</script>', "<p>a</p>"),
    ('<a href="javascript:alert(1)">x</a>', "<a>x</a>"),
    ('<a href="https://findahelpline.com">lines</a>',
     '<a href="https://findahelpline.com" rel="noopener" target="_blank">lines</a>'),
    ('<span style="display: none">careroute-job:j1</span>', "<span hidden>careroute-job:j1</span>"),
    ('<span style="color:red">x</span>', "<span>x</span>"),
    ("<ul><li>one<li>two</ul>", "<ul><li>one<li>two</li></li></ul>"),
    ("a &lt;b&gt; <br/> c", "a &lt;b&gt; <br> c"),
    ("<p><em>open", "<p><em>open</em></p>"),
])
def test_notes_keep_only_what_the_helpdesks_render(body, expected):
    assert sanitise_note(body) == expected
