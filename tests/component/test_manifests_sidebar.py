"""The CareRoute ticket sidebar (manifests/*/careroute-view.js and the Zendesk / Freshdesk glue) run under
Node with a small fake DOM and fake ZAF / Freshworks clients: what the agent sees for each service answer,
what is sent to the service, and what the buttons do. The fake DOM refuses innerHTML, so a test fails if
service data is ever parsed as HTML.

Skipped, with a message, where `node` is not installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
ZENDESK_ASSETS = REPO / "manifests" / "zendesk" / "assets"
FRESHDESK_SCRIPTS = REPO / "manifests" / "freshdesk" / "app" / "scripts"
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed: the sidebar JavaScript tests need it")

HARNESS = r"""
const fs = require('fs');
const vm = require('vm');
const scenario = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const files = JSON.parse(process.argv[3]);

function FakeNode(tag, text) {
  this.tagName = tag; this.childNodes = []; this.ownText = text || ''; this.className = '';
  this.attributes = {}; this.listeners = {};
}
FakeNode.prototype.appendChild = function (child) { this.childNodes.push(child); return child; };
FakeNode.prototype.removeChild = function (child) { this.childNodes.splice(this.childNodes.indexOf(child), 1); return child; };
FakeNode.prototype.setAttribute = function (key, value) { this.attributes[key] = String(value); };
FakeNode.prototype.addEventListener = function (type, listener) { (this.listeners[type] = this.listeners[type] || []).push(listener); };
Object.defineProperty(FakeNode.prototype, 'firstChild', { get: function () { return this.childNodes[0] || null; } });
Object.defineProperty(FakeNode.prototype, 'textContent', {
  get: function () { return this.ownText + this.childNodes.map(function (c) { return c.textContent; }).join(''); },
  set: function (value) { this.childNodes = []; this.ownText = String(value); }
});
Object.defineProperty(FakeNode.prototype, 'innerHTML', {
  get: function () { throw new Error('innerHTML used'); }, set: function () { throw new Error('innerHTML used'); }
});

function walk(node, visit) { visit(node); node.childNodes.forEach(function (child) { walk(child, visit); }); }
function snapshot(container) {
  const seen = { text: [], links: [], buttons: [], classes: [], headings: [] };
  walk(container, function (node) {
    if (node.ownText) { seen.text.push(node.ownText); }
    if (node.tagName === 'a') { seen.links.push({ text: node.textContent, href: node.href || null }); }
    if (node.tagName === 'button') { seen.buttons.push(node.textContent); }
    if (node.tagName === 'h2') { seen.headings.push(node.textContent); }
    if (node.className) { seen.classes.push(node.className); }
  });
  return seen;
}
function tick() { return new Promise(function (resolve) { setTimeout(resolve, 20); }); }
async function click(container, label) {
  let target = null;
  walk(container, function (node) { if (node.tagName === 'button' && node.textContent === label) { target = node; } });
  if (!target) { throw new Error('no button ' + label); }
  (target.listeners.click || []).forEach(function (listener) { listener({}); });
  await tick();
}

function browser(calls) {
  const container = new FakeNode('main');
  const documentListeners = {};
  const context = {
    console: console, setTimeout: setTimeout,
    document: {
      createElement: function (tag) { return new FakeNode(tag); },
      createTextNode: function (text) { return new FakeNode('#text', text); },
      getElementById: function (id) { return id === 'careroute' ? container : null; },
      addEventListener: function (type, listener) { documentListeners[type] = listener; },
      body: { scrollHeight: 300 }
    },
    navigator: { clipboard: { writeText: function (text) { calls.push(['clipboard', text]); return Promise.resolve(); } } }
  };
  context.window = context; context.self = context;
  vm.createContext(context);
  ['locales', 'view'].forEach(function (name) { vm.runInContext(fs.readFileSync(files[name], 'utf8'), context); });
  return { context: context, container: container, documentListeners: documentListeners };
}

async function runView() {
  const calls = [];
  const page = browser(calls);
  const View = page.context.CareRouteView;
  const labels = page.context.CAREROUTE_LOCALES[View.pickLanguage(scenario.locale, page.context.CAREROUTE_LOCALES)];
  const model = View.buildModel(View.classifyResponse(scenario.status, scenario.body));
  const handlers = {
    refresh: function () { calls.push(['refresh']); },
    insert: function (html) { calls.push(['insert', html]); return scenario.insertFails ? Promise.reject(new Error('no editor')) : Promise.resolve(); },
    copy: function (text) { calls.push(['copy', text]); return Promise.resolve(); }
  };
  View.render(model, page.container, labels, handlers, page.context.document);
  const before = snapshot(page.container);
  for (const label of scenario.clicks || []) { await click(page.container, label); }
  return { model: model, view: before, after: snapshot(page.container), calls: calls };
}

async function runZendesk() {
  const calls = [];
  const page = browser(calls);
  let registered = null;
  const client = {
    metadata: function () { return Promise.resolve({ settings: scenario.settings }); },
    get: function (keys) { calls.push(['get', keys]); return Promise.resolve({ 'ticket.id': 42, 'currentUser.locale': scenario.locale }); },
    request: function (options) {
      calls.push(['request', options]);
      return scenario.status === 200 ? Promise.resolve(scenario.body)
        : Promise.reject({ status: scenario.status, responseJSON: scenario.body, responseText: JSON.stringify(scenario.body) });
    },
    invoke: function (name, argument) { calls.push(['invoke', name, argument]); return Promise.resolve({}); },
    on: function (event, listener) { if (event === 'app.registered') { registered = listener; } }
  };
  page.context.ZAFClient = { init: function () { return client; } };
  vm.runInContext(fs.readFileSync(files.zendesk, 'utf8'), page.context);
  registered();
  await tick();
  const before = snapshot(page.container);
  for (const label of scenario.clicks || []) { await click(page.container, label); }
  return { view: before, calls: calls };
}

async function runFreshdesk() {
  const calls = [];
  const page = browser(calls);
  let activated = null;
  const client = {
    data: { get: function (name) {
      calls.push(['data', name]);
      if (name === 'ticket') { return Promise.resolve({ ticket: scenario.ticket }); }
      return Promise.resolve({ loggedInUser: { contact: { language: scenario.locale } } });
    } },
    request: { invokeTemplate: function (name, options) {
      calls.push(['invokeTemplate', name, options]);
      const answer = { status: scenario.status, headers: {}, response: JSON.stringify(scenario.body) };
      return scenario.status === 200 ? Promise.resolve(answer) : Promise.reject(Object.assign(answer, { errorSource: 'APP' }));
    } },
    instance: { resize: function (size) { calls.push(['resize', size]); } },
    interface: { trigger: function (action, options) { calls.push(['trigger', action, options]); return Promise.resolve({}); } },
    events: { on: function (event, listener) { if (event === 'app.activated') { activated = listener; } } }
  };
  page.context.app = { initialized: function () { return Promise.resolve(client); } };
  vm.runInContext(fs.readFileSync(files.freshdesk, 'utf8'), page.context);
  page.documentListeners.DOMContentLoaded();
  await tick();
  activated();
  await tick();
  const before = snapshot(page.container);
  for (const label of scenario.clicks || []) { await click(page.container, label); }
  return { view: before, calls: calls };
}

function runPure() {
  const View = require(files.view);
  return {
    sanitized: (scenario.html || []).map(function (html) { return View.sanitizeReplyHtml(html); }),
    text: (scenario.html || []).map(function (html) { return View.htmlToText(View.sanitizeReplyHtml(html)); }),
    urls: (scenario.urls || []).map(function (args) { return View.assessmentUrl.apply(null, args); })
  };
}

const modes = { view: runView, zendesk: runZendesk, freshdesk: runFreshdesk, pure: runPure };
Promise.resolve(modes[scenario.mode]()).then(function (result) {
  process.stdout.write(JSON.stringify(result));
}, function (error) {
  process.stdout.write(JSON.stringify({ crashed: String(error && error.stack || error) }));
});
"""

FILES = {
    "locales": str(ZENDESK_ASSETS / "careroute-locales.js"),
    "view": str(ZENDESK_ASSETS / "careroute-view.js"),
    "zendesk": str(ZENDESK_ASSETS / "zaf-sidebar.js"),
    "freshdesk": str(FRESHDESK_SCRIPTS / "freshdesk-sidebar.js"),
}

IMMINENT = {
    "ticket_id": "42", "tier": "imminent", "score": 0.914, "rule_ids": ["en.plan.timing", "en.finality"],
    "categories": ["plan", "timing"], "category_labels": ["Mentions a plan", "Mentions a time"],
    "flags": ["third_party", "unknown_flag"], "language": "en", "decided_at": "2026-11-21T22:40:00Z",
    "resources": [{"service": "Samaritans", "phone": "116 123", "sms": None, "chat_url": None,
                   "url": "https://www.samaritans.org", "hours": "24/7"},
                  {"service": "Shout", "phone": None, "sms": "Text SHOUT to 85258", "chat_url": "javascript:alert(1)",
                   "url": None, "hours": "24/7"}],
    "emergency_number": "999",
    "suggested_reply_html": "<p>Thank you for telling us.</p><p onclick=\"steal()\">Call <a href=\"tel:116123\">116 123</a>"
                            "<script>steal()</script></p>",
    "actions": ["tags", "note", {"type": "priority"}],
    "ticket_text": "Private words the customer wrote",
}


def run(tmp_path: Path, scenario: dict[str, Any]) -> dict[str, Any]:
    harness = tmp_path / "sidebar_harness.js"
    harness.write_text(HARNESS, encoding="utf-8")
    scenario_file = tmp_path / "scenario.json"
    scenario_file.write_text(json.dumps(scenario), encoding="utf-8")
    result = subprocess.run([NODE, str(harness), str(scenario_file), json.dumps(FILES)],
                            capture_output=True, text=True, timeout=30, check=True)
    output = json.loads(result.stdout)
    assert "crashed" not in output, output
    return output


def joined(view: dict[str, Any]) -> str:
    return "\n".join(view["text"])


# ------------------------------------------------------------------------------------------ what the agent sees


def test_imminent_assessment_shows_tier_reasons_resources_and_reply(tmp_path: Path) -> None:
    out = run(tmp_path, {"mode": "view", "locale": "en-GB", "status": 200, "body": IMMINENT})
    view, text = out["view"], joined(out["view"])
    assert "tier tier-imminent" in view["classes"]
    for expected in ("Imminent", "Possible immediate risk. Reply now and tell your supervisor.", "Score: 0.91",
                     "Mentions a plan", "Mentions a time", "en.plan.timing", "About someone else", "unknown_flag",
                     "Emergency number: 999", "Samaritans", "Hours: 24/7", "Text: Text SHOUT to 85258",
                     "Tell your supervisor now, following your team's procedure.", "Thank you for telling us.", "Call 116 123"):
        assert expected in text, expected
    assert view["headings"] == ["Why", "What to do", "Crisis resources", "Suggested reply", "What CareRoute did"]
    assert {"text": "116 123", "href": "tel:116123"} in view["links"]
    assert {"text": "Website", "href": "https://www.samaritans.org"} in view["links"]
    assert not any("javascript" in (link["href"] or "") for link in view["links"])
    assert view["buttons"] == ["Refresh", "Insert into reply", "Copy"]
    assert "Private words" not in text and "steal" not in text


def test_insert_and_copy_hand_over_the_sanitised_reply(tmp_path: Path) -> None:
    out = run(tmp_path, {"mode": "view", "locale": "en", "status": 200, "body": IMMINENT,
                         "clicks": ["Insert into reply", "Copy"]})
    inserted = next(call[1] for call in out["calls"] if call[0] == "insert")
    assert inserted == ('<p>Thank you for telling us.</p><p>Call <a href="tel:116123" target="_blank" '
                        'rel="noopener noreferrer">116 123</a></p>')
    assert ["copy", "Thank you for telling us.\n\nCall 116 123"] in out["calls"]
    assert "Copied." in joined(out["after"])


def test_a_failed_insert_says_so(tmp_path: Path) -> None:
    out = run(tmp_path, {"mode": "view", "locale": "en", "status": 200, "body": IMMINENT, "insertFails": True,
                         "clicks": ["Insert into reply"]})
    assert "That didn't work. You can copy the reply instead." in joined(out["after"])


def test_tier_none_shows_only_the_all_clear(tmp_path: Path) -> None:
    out = run(tmp_path, {"mode": "view", "locale": "en", "status": 200, "body": {**IMMINENT, "tier": "none", "rule_ids": [],
                                                                                   "categories": [], "category_labels": [], "flags": [], "actions": []}})
    assert out["view"]["headings"] == []
    assert out["view"]["buttons"] == ["Refresh"]
    assert "CareRoute found no possible risk indicators in this ticket." in joined(out["view"])


@pytest.mark.parametrize(("status", "body", "state", "message"), [
    (404, {"error": "no assessment"}, "no_assessment", "CareRoute has not assessed this ticket yet."),
    (401, {"error": "unauthorized"}, "unauthorized", "CareRoute did not accept the app's token. Ask an administrator to check the app settings."),
    (0, None, "unreachable", "The CareRoute service can't be reached right now."),
    (503, None, "unreachable", "The CareRoute service can't be reached right now."),
    (500, {"error": "internal"}, "failed", "The assessment could not be loaded."),
    (404, {"error": "not found"}, "failed", "The assessment could not be loaded."),
    (200, {"tier": "severe"}, "failed", "The assessment could not be loaded."),
])
def test_each_service_answer_has_a_clear_state(tmp_path: Path, status: int, body: Any, state: str, message: str) -> None:
    out = run(tmp_path, {"mode": "view", "locale": "en", "status": status, "body": body})
    assert out["model"] == {"state": state}
    assert f"message message-{state}" in out["view"]["classes"]
    assert message in joined(out["view"])
    assert out["view"]["headings"] == [] and not any(c.startswith("tier") for c in out["view"]["classes"])


@pytest.mark.parametrize(("locale", "title"), [("de-AT", "CareRoute-Einschätzung"), ("pt-BR", "Avaliação do CareRoute"),
                                               ("nl", "CareRoute-beoordeling"), ("ja", "CareRoute assessment"), (None, "CareRoute assessment")])
def test_agent_language_picks_the_strings(tmp_path: Path, locale: str | None, title: str) -> None:
    out = run(tmp_path, {"mode": "view", "locale": locale, "status": 404, "body": {"error": "no assessment"}})
    assert out["view"]["text"][0] == title


def test_reply_html_is_rebuilt_from_an_allowlist(tmp_path: Path) -> None:
    cases = {
        '<p onclick="x()">Hi &amp; <b>you</b></p>': "<p>Hi &amp; <b>you</b></p>",
        "<script>alert(1)</script><p>ok</p>": "<p>ok</p>",
        '<a href="javascript:alert(1)">x</a>': "<a>x</a>",
        '<a href=" JaVaScRiPt:alert(1)">x</a>': "<a>x</a>",
        '<a href="https://findahelpline.com" onmouseover="x()">f</a>': '<a href="https://findahelpline.com" target="_blank" rel="noopener noreferrer">f</a>',
        '<img src=x onerror="x()"><iframe src="https://evil.example"></iframe>text': "text",
        "<p>unclosed <em>emphasis": "<p>unclosed <em>emphasis</em></p>",
        "5 < 6 and &lt;b&gt; stays text": "5 &lt; 6 and &lt;b&gt; stays text",
        "<STYLE>p{}</STYLE><P>Caps</P><!-- note -->": "<p>Caps</p>",
        "</p>stray close<br/>next": "stray close<br>next",
    }
    out = run(tmp_path, {"mode": "pure", "html": list(cases)})
    assert dict(zip(cases, out["sanitized"])) == cases
    assert out["text"][0] == "Hi & you"


def test_assessment_url(tmp_path: Path) -> None:
    out = run(tmp_path, {"mode": "pure", "urls": [
        ["https://careroute.example/", "zendesk", "acme", 42],
        ["https://careroute.example/base", "freshdesk", "a/b c", "7"],
        ["http://careroute.example", "zendesk", "acme", 1],
        ["http://localhost:8080", "zendesk", "acme", 1],
        ["javascript:alert(1)", "zendesk", "acme", 1],
        ["https://careroute.example", "zendesk", "", 1],
        ["https://careroute.example", "zendesk", "acme", None],
    ]})
    assert out["urls"] == [
        "https://careroute.example/api/v1/zendesk/acme/tickets/42/assessment",
        "https://careroute.example/base/api/v1/freshdesk/a%2Fb%20c/tickets/7/assessment",
        None,
        "http://localhost:8080/api/v1/zendesk/acme/tickets/1/assessment",
        None, None, None,
    ]


# ------------------------------------------------------------------------------------------ platform glue


ZENDESK_SETTINGS = {"service_url": "https://careroute.example/", "tenant_id": "acme", "concern_threshold": 0.35}


def test_zendesk_sidebar_asks_the_service_with_the_secure_token_placeholder(tmp_path: Path) -> None:
    out = run(tmp_path, {"mode": "zendesk", "settings": ZENDESK_SETTINGS, "locale": "fr", "status": 200, "body": IMMINENT,
                         "clicks": ["Insérer dans la réponse"]})
    [request] = [call[1] for call in out["calls"] if call[0] == "request"]
    assert request == {"url": "https://careroute.example/api/v1/zendesk/acme/tickets/42/assessment", "type": "GET",
                       "dataType": "json", "cors": False, "secure": True,
                       "headers": {"Authorization": "Bearer {{setting.tenant_token}}"}}
    assert ["get", ["ticket.id", "currentUser.locale"]] in out["calls"]
    assert "Imminent" in joined(out["view"]) and "Évaluation CareRoute" in joined(out["view"])
    inserts = [call for call in out["calls"] if call[:2] == ["invoke", "ticket.editor.insert"]]
    assert len(inserts) == 1 and inserts[0][2].startswith("<p>Thank you for telling us.</p>")
    assert any(call[:2] == ["invoke", "resize"] for call in out["calls"])


def test_zendesk_sidebar_shows_no_assessment_in_the_agents_language(tmp_path: Path) -> None:
    out = run(tmp_path, {"mode": "zendesk", "settings": ZENDESK_SETTINGS, "locale": "es", "status": 404,
                         "body": {"error": "no assessment"}})
    assert "CareRoute todavía no ha evaluado este ticket." in joined(out["view"])


def test_zendesk_sidebar_without_tenant_makes_no_request(tmp_path: Path) -> None:
    out = run(tmp_path, {"mode": "zendesk", "settings": {"service_url": "https://careroute.example"}, "locale": "en",
                         "status": 200, "body": IMMINENT})
    assert not any(call[0] == "request" for call in out["calls"])
    assert "message message-not_configured" in out["view"]["classes"]


FRESHDESK_TICKET = {"id": 42, "subject": "Private subject line", "description_text": "Private words the customer wrote"}


def test_freshdesk_sidebar_uses_the_request_template_and_the_reply_editor(tmp_path: Path) -> None:
    out = run(tmp_path, {"mode": "freshdesk", "ticket": FRESHDESK_TICKET, "locale": "nl", "status": 200, "body": IMMINENT,
                         "clicks": ["Invoegen in antwoord"]})
    assert ["invokeTemplate", "getAssessment", {"context": {"ticket_id": "42"}}] in out["calls"]
    text = joined(out["view"])
    assert "Acuut" in text and "Private" not in text
    triggers = [call for call in out["calls"] if call[0] == "trigger"]
    assert len(triggers) == 1 and triggers[0][1] == "click" and triggers[0][2]["id"] == "reply"
    assert triggers[0][2]["text"].startswith("<p>Thank you for telling us.</p>")


def test_freshdesk_sidebar_reports_a_rejected_token(tmp_path: Path) -> None:
    out = run(tmp_path, {"mode": "freshdesk", "ticket": FRESHDESK_TICKET, "locale": "it", "status": 401,
                         "body": {"error": "unauthorized"}})
    assert "CareRoute non ha accettato il token dell'app." in joined(out["view"])
