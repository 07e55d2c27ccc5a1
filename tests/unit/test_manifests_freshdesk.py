"""The Freshworks app for Freshdesk (manifests/freshdesk) against the documented platform 3.0 rules, and
the behaviour of its serverless handlers (server/server.js run under Node with the platform's globals
stubbed: $request, $db, renderData).

Node-based tests are skipped, with a message, where `node` is not installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # lets `tests.manifest_rules` import under a plain `pytest` run too
    sys.path.insert(0, str(REPO))

from tests import manifest_rules as rules  # noqa: E402

APP = REPO / "manifests" / "freshdesk"
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed: the JavaScript checks need it")


@pytest.fixture
def app(tmp_path: Path) -> Path:
    copy = tmp_path / "freshdesk"
    shutil.copytree(APP, copy)
    return copy


def edit_json(path: Path, change: Callable[[Any], None]) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


# ------------------------------------------------------------------------------------------ the real package


def test_real_package_passes_every_rule() -> None:
    assert rules.freshdesk_problems(APP) == []


@needs_node
def test_every_javascript_file_parses() -> None:
    assert rules.node_syntax_problems(APP, NODE) == []


def test_iparams_hold_the_settings_the_service_needs() -> None:
    iparams = json.loads((APP / "config" / "iparams.json").read_text(encoding="utf-8"))
    assert iparams["domain"]["type"] == "domain" and iparams["api_key"]["type"] == "api_key"
    assert {name for name, spec in iparams.items() if spec.get("secure")} == {"api_key", "tenant_token", "registration_token"}
    assert [iparams[f"{tier}_threshold"]["default_value"] for tier in ("concern", "high", "imminent")] == [0.35, 0.6, 0.85]
    assert iparams["tag_prefix"]["default_value"] == "careroute"
    assert {"service_host", "tenant_id", "trained_group_id"} <= set(iparams)


def test_request_templates_match_the_service_endpoints() -> None:
    templates = {name: t["schema"] for name, t in json.loads((APP / "config" / "requests.json").read_text(encoding="utf-8")).items()}
    route = {name: (s["method"], s["path"], s["headers"].get("Authorization") or s["headers"].get("X-CareRoute-Token"))
             for name, s in templates.items()}
    assert route == {
        "getAssessment": ("GET", "/api/v1/freshdesk/<%= iparam.tenant_id %>/tickets/<%= context.ticket_id %>/assessment",
                          "Bearer <%= iparam.tenant_token %>"),
        "registerTenant": ("POST", "/api/v1/freshdesk/<%= iparam.tenant_id %>/install", "Bearer <%= iparam.registration_token %>"),
        "unregisterTenant": ("POST", "/api/v1/freshdesk/<%= iparam.tenant_id %>/uninstall", "Bearer <%= iparam.tenant_token %>"),
        "updateSettings": ("PUT", "/api/v1/freshdesk/<%= iparam.tenant_id %>/settings", "Bearer <%= iparam.tenant_token %>"),
        "forwardTicketCreated": ("POST", "/webhooks/freshdesk/<%= iparam.tenant_id %>", "<%= context.webhook_secret %>"),
    }
    assert {s["host"] for s in templates.values()} == {"<%= iparam.service_host %>"}
    assert {s["protocol"] for s in templates.values()} == {"https"}


def test_server_exports_reads_the_handler_names() -> None:
    source = "const x = 1;\nexports = {\n  // note, with a comma\n  first: function (args) { return {a: 1, b: [2, 3]}; },\n" \
             "  async second(args) { return 'a,b'; },\n  third,\n  'quoted': 1\n};\n"
    assert rules.server_exports(source) == {"first", "second", "third"}
    assert rules.server_exports("module.exports = { first: 1 };") == set()


# ------------------------------------------------------------------------------------------ broken copies


def _manifest(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    return lambda app: edit_json(app / "manifest.json", change)


def _iparam(name: str, **changes: Any) -> Callable[[Path], None]:
    def change(iparams: dict[str, Any]) -> None:
        for key, value in changes.items():
            if value is None:
                iparams[name].pop(key, None)
            else:
                iparams[name][key] = value
    return lambda app: edit_json(app / "config" / "iparams.json", change)


def _schema(template: str, **changes: Any) -> Callable[[Path], None]:
    return lambda app: edit_json(app / "config" / "requests.json", lambda t: t[template]["schema"].update(changes))


def _replace_in(rel: str, old: str, new: str) -> Callable[[Path], None]:
    def change(app: Path) -> None:
        text = (app / rel).read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in {rel}"
        (app / rel).write_text(text.replace(old, new, 1), encoding="utf-8")
    return change


def _move_event(app: Path) -> None:
    def change(manifest: dict[str, Any]) -> None:
        manifest["modules"]["common"]["events"]["onTicketCreate"] = manifest["modules"]["support_ticket"].pop("events")["onTicketCreate"]
    edit_json(app / "manifest.json", change)


BREAKAGES = {
    "platform 2.3 [F7]": (_manifest(lambda m: m.__setitem__("platform-version", "2.3")),
                          "manifest.json: platform-version must be \"3.0\" (found '2.3')"),
    "2.x product key [F7]": (_manifest(lambda m: m.__setitem__("product", {"freshdesk": {}})),
                             "manifest.json: 'product' is a platform 2.x key, rejected in 3.0"),
    "2.x whitelisted-domains [F7]": (_manifest(lambda m: m.__setitem__("whitelisted-domains", ["https://careroute.example"])),
                                     "manifest.json: 'whitelisted-domains' is a platform 2.x key, rejected in 3.0"),
    "no modules [F7]": (_manifest(lambda m: m.pop("modules")), "manifest.json: 'modules' must be a non-empty object"),
    "engines missing [F7]": (_manifest(lambda m: m.pop("engines")), "manifest.json: engines.node and engines.fdk must be set"),
    "unknown module [F7]": (_manifest(lambda m: m["modules"].__setitem__("freshdesk", {})), "manifest.json: unknown module 'freshdesk'"),
    "ticket event in common [F7]": (_move_event, "manifest.json: event 'onTicketCreate' does not belong in modules.common.events"),
    "misspelt set-up event [F7]": (_manifest(lambda m: m["modules"]["common"]["events"].__setitem__("onAppInstalled", {"handler": "onAppInstallHandler"})),
                                   "manifest.json: event 'onAppInstalled' does not belong in modules.common.events"),
    "event without handler [F7]": (_manifest(lambda m: m["modules"]["common"]["events"].__setitem__("onAppUninstall", {})),
                                   "manifest.json: modules.common.events.onAppUninstall needs a handler"),
    "handler not exported [F7]": (_manifest(lambda m: m["modules"]["common"]["events"]["onAppInstall"].__setitem__("handler", "onInstall")),
                                  "server/server.js: does not export handler 'onInstall' declared in manifest.json"),
    "server.js missing [F7]": (lambda app: (app / "server" / "server.js").unlink(),
                               "server/server.js: missing (manifest.json declares event handlers)"),
    "sidebar icon missing [F7]": (lambda app: (app / "app" / "styles" / "images" / "icon.svg").unlink(),
                                  "manifest.json: modules.support_ticket.location.ticket_sidebar.icon is not a file in app/"),
    "sidebar page missing [F7]": (lambda app: (app / "app" / "index.html").unlink(),
                                  "manifest.json: modules.support_ticket.location.ticket_sidebar.url is not a file in app/"),
    "requests outside common [F7]": (_manifest(lambda m: m["modules"]["support_ticket"].__setitem__("requests", {"getAssessment": {}})),
                                     "manifest.json: modules.support_ticket.requests must be declared in modules.common.requests"),
    "template declared but not defined [F7]": (_manifest(lambda m: m["modules"]["common"]["requests"].__setitem__("getTicket", {})),
                                               "config/requests.json: template 'getTicket' is declared in manifest.json but not defined"),
    "template defined but not declared [F7]": (_manifest(lambda m: m["modules"]["common"]["requests"].pop("updateSettings")),
                                               "config/requests.json: template 'updateSettings' is not declared in manifest.json modules.common.requests"),
    "host with a scheme [F7]": (_schema("getAssessment", host="https://<%= iparam.service_host %>"),
                                "config/requests.json: getAssessment.schema.host 'https://<%= iparam.service_host %>' must be a host name (FQDN) without scheme, port or path"),
    "host with a path [F7]": (_schema("registerTenant", host="careroute.example/api"),
                              "config/requests.json: registerTenant.schema.host 'careroute.example/api' must be a host name (FQDN) without scheme, port or path"),
    "path without a slash [F7]": (_schema("updateSettings", path="api/v1/settings"), "config/requests.json: updateSettings.schema.path must start with /"),
    "method not HTTP [F7]": (_schema("getAssessment", method="FETCH"), "config/requests.json: getAssessment.schema.method 'FETCH' is not an HTTP method"),
    "template uses an unknown iparam [F7]": (_schema("getAssessment", path="/api/v1/freshdesk/<%= iparam.tenant %>/x"),
                                             "config/requests.json: getAssessment uses iparam.tenant, which config/iparams.json does not define"),
    "secure iparam in the path [F7]": (_schema("getAssessment", path="/a/<%= iparam.tenant_token %>"),
                                       "config/requests.json: getAssessment puts secure iparam 'tenant_token' outside the headers"),
    "requests.json missing [F7]": (lambda app: (app / "config" / "requests.json").unlink(), "config/requests.json: missing"),
    "iparam without display_name [F7]": (_iparam("tenant_id", display_name=None), "config/iparams.json: tenant_id needs a display_name"),
    "iparam without type [F7]": (_iparam("tenant_id", type=None), "config/iparams.json: tenant_id needs a type"),
    "iparam of unknown type [F7]": (_iparam("tenant_token", type="password"), "config/iparams.json: tenant_token has unknown type 'password'"),
    "secure not boolean [F7]": (_iparam("tenant_token", secure="yes"), "config/iparams.json: tenant_token: 'secure' must be true or false"),
    "api key not secure [CR]": (_iparam("api_key", secure=False), "config/iparams.json: api_key holds a secret and must be secure"),
    "registration token not secure [CR]": (_iparam("registration_token", secure=None), "config/iparams.json: registration_token holds a secret and must be secure"),
    "domain without product [F7]": (_iparam("domain", type_attributes=None), "config/iparams.json: domain: type domain needs type_attributes.product"),
    "number default as text [CR]": (_iparam("high_threshold", default_value="0.6"), "config/iparams.json: high_threshold: default_value must be a number"),
    "secure iparam with a default [CR]": (_iparam("tenant_token", default_value="abc"), "config/iparams.json: tenant_token: a secure iparam must not have a default_value"),
    "2.x request call [F7]": (_replace_in("server/server.js", "$request.invokeTemplate('updateSettings', { body: JSON.stringify(settings) })",
                                          "$request.put('https://careroute.example/settings', { body: JSON.stringify(settings) })"),
                              "server/server.js: uses $request.put(), removed in platform 3.0; use invokeTemplate"),
    "unknown template invoked [F7]": (_replace_in("app/scripts/freshdesk-sidebar.js", "invokeTemplate('getAssessment'", "invokeTemplate('assessment'"),
                                      "app/scripts/freshdesk-sidebar.js: invokeTemplate('assessment') names no template in config/requests.json"),
    "eval [F7 lint]": (_replace_in("app/scripts/freshdesk-sidebar.js", "var View = window.CareRouteView;", "var View = eval('window.CareRouteView');"),
                       "app/scripts/freshdesk-sidebar.js: uses eval (fdk lint)"),
    "alert [F7 lint]": (_replace_in("app/scripts/freshdesk-sidebar.js", "show({ state: 'failed' }, LOCALES.en);", "alert('failed');"),
                        "app/scripts/freshdesk-sidebar.js: uses alert (fdk lint)"),
    "UNPKG script [F7 lint]": (_replace_in("app/index.html", 'src="scripts/careroute-view.js"', 'src="https://unpkg.com/careroute/view.js"'),
                               "app/index.html: loads https://unpkg.com/careroute/view.js from another site; only {{{appclient}}} may [CR]"),
    "secure iparam read in the browser [F7]": (_replace_in("app/scripts/freshdesk-sidebar.js", "function load() {",
                                                           "function load() {\n    client.iparams.get('tenant_token');"),
                                               "app/scripts/freshdesk-sidebar.js: reads secure iparam 'tenant_token' in the browser; secure iparams work only in request templates"),
    "handler arguments logged [CR]": (_replace_in("server/server.js", "const iparams = (args && args.iparams) || {};",
                                                  "const iparams = (args && args.iparams) || {};\n    console.info('install', JSON.stringify(args));"),
                                      "server/server.js: logs the handler arguments, which carry ticket text and secrets [CR]"),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_broken_package_is_reported(app: Path, breakage: str) -> None:
    mutate, expected = BREAKAGES[breakage]
    mutate(app)
    assert expected in rules.freshdesk_problems(app)


def test_complexity_is_counted_per_function_ignoring_strings_comments_and_regexes() -> None:
    source = ("function outer(x) {\n  var pattern = /a|b?c/; // a || b ? c\n  var text = 'd && e';\n"
              "  if (x && x.y) {\n    return function (z) { return z ? 1 : 2; };\n  }\n  return x / 2 / 3;\n}\n")
    assert rules.function_complexities(source) == [(1, 3), (5, 2)]


def test_a_too_complex_function_is_reported(app: Path) -> None:
    server = app / "server" / "server.js"
    source = server.read_text(encoding="utf-8")
    checks = "".join(f"  if (value === {n}) {{\n    return {n};\n  }}\n" for n in range(7))
    server.write_text(source + "\nfunction pickNumber(value) {\n" + checks + "  return -1;\n}\n", encoding="utf-8")
    line = source.count("\n") + 2
    assert f"server/server.js: function at line {line} has complexity 8, above 7 (fdk lint)" in rules.freshdesk_problems(app)


@needs_node
def test_broken_javascript_is_reported(app: Path) -> None:
    _replace_in("server/server.js", "exports = {", "exports = {{")(app)
    problems = rules.node_syntax_problems(app, NODE)
    assert len(problems) == 1 and problems[0].startswith("server/server.js: not valid JavaScript (SyntaxError")


# ------------------------------------------------------------------------------------------ handler behaviour

HARNESS = r"""
// Runs one server.js handler with the Freshworks globals stubbed and prints what it did as JSON.
const fs = require('fs');
const vm = require('vm');
const [serverPath, scenarioPath] = process.argv.slice(2);
const scenario = JSON.parse(fs.readFileSync(scenarioPath, 'utf8'));
const seen = { requests: [], renderData: [], db: Object.assign({}, scenario.db || {}), logs: [] };
const statuses = scenario.statuses || {};
function log() { seen.logs.push(Array.from(arguments).join(' ')); }
const sandbox = {
  require: require,
  exports: {},
  console: { info: log, error: log, warn: log, log: log },
  $request: {
    invokeTemplate: async function (name, options) {
      seen.requests.push({ name: name, context: options.context || null, body: options.body === undefined ? null : JSON.parse(options.body) });
      const status = statuses[name] === undefined ? 200 : statuses[name];
      if (status >= 200 && status < 300) { return { status: status, headers: {}, response: '{}' }; }
      throw { status: status, headers: {}, response: '{"error": "refused"}', errorSource: 'APP' };
    }
  },
  $db: {
    get: async function (key) {
      if (Object.prototype.hasOwnProperty.call(seen.db, key)) { return seen.db[key]; }
      throw { status: 404, message: 'Record not found' };
    },
    set: async function (key, value) { seen.db[key] = value; return { Created: true }; },
    delete: async function (key) { delete seen.db[key]; return { Deleted: true }; }
  },
  renderData: function () { seen.renderData.push(Array.from(arguments)); }
};
vm.createContext(sandbox);
vm.runInContext(fs.readFileSync(serverPath, 'utf8'), sandbox, { filename: serverPath });
Promise.resolve(sandbox.exports[scenario.handler](scenario.args)).then(function () {
  process.stdout.write(JSON.stringify(seen));
}, function (error) {
  process.stdout.write(JSON.stringify({ crashed: String(error && error.message || error) }));
});
"""

IPARAMS = {
    "domain": "acme.freshdesk.com", "api_key": "fd-key-123", "service_host": "careroute.example", "tenant_id": "acme",
    "tenant_token": "tenant-token-456", "registration_token": "reg-token-789", "concern_threshold": 0.3,
    "high_threshold": "0.55", "imminent_threshold": 0.9, "trained_group_id": "4200012", "tag_prefix": "cr",
}
SECRET_KEY = "careroute_webhook_secret"


def run_handler(tmp_path: Path, handler: str, args: dict[str, Any], *, db: dict[str, Any] | None = None,
                statuses: dict[str, int] | None = None) -> dict[str, Any]:
    harness = tmp_path / "harness.js"
    harness.write_text(HARNESS, encoding="utf-8")
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps({"handler": handler, "args": args, "db": db or {}, "statuses": statuses or {}}), encoding="utf-8")
    result = subprocess.run([NODE, str(harness), str(APP / "server" / "server.js"), str(scenario)],
                            capture_output=True, text=True, timeout=30, check=True)
    seen = json.loads(result.stdout)
    assert "crashed" not in seen, seen
    return seen


@needs_node
def test_install_registers_the_tenant_with_a_new_webhook_secret(tmp_path: Path) -> None:
    seen = run_handler(tmp_path, "onAppInstallHandler", {"iparams": IPARAMS})
    assert seen["renderData"] == [[]]  # called once, without an error: the install goes ahead
    [request] = seen["requests"]
    secret = seen["db"][SECRET_KEY]["secret"]
    assert request["name"] == "registerTenant"
    assert request["body"] == {
        "domain": "acme.freshdesk.com", "api_key": "fd-key-123", "webhook_secret": secret,
        "thresholds": {"concern": 0.3, "high": 0.55, "imminent": 0.9}, "trained_group_id": 4200012,
        "tag_prefix": "cr", "tenant_token": "tenant-token-456",
    }
    assert len(secret) == 43  # 32 random bytes, base64url
    assert not any(value in line for line in seen["logs"] for value in ("fd-key-123", "tenant-token-456", secret))


@needs_node
def test_reinstall_keeps_the_stored_webhook_secret(tmp_path: Path) -> None:
    seen = run_handler(tmp_path, "onAppInstallHandler", {"iparams": IPARAMS}, db={SECRET_KEY: {"secret": "kept-secret"}})
    assert seen["requests"][0]["body"]["webhook_secret"] == "kept-secret"
    assert seen["renderData"] == [[]]


@needs_node
def test_install_with_falling_thresholds_is_refused_before_any_call(tmp_path: Path) -> None:
    seen = run_handler(tmp_path, "onAppInstallHandler", {"iparams": {**IPARAMS, "high_threshold": 0.95}})
    assert seen["requests"] == []
    assert seen["renderData"] == [[{"message": "Thresholds must rise: concern below high, high below imminent."}]]


@needs_node
def test_install_refused_by_the_service_stops_the_install_with_a_readable_message(tmp_path: Path) -> None:
    seen = run_handler(tmp_path, "onAppInstallHandler", {"iparams": IPARAMS}, statuses={"registerTenant": 401})
    assert seen["renderData"] == [[{"message": "CareRoute did not accept the registration token. Check it with your CareRoute operator."}]]
    unavailable = run_handler(tmp_path, "onAppInstallHandler", {"iparams": IPARAMS}, statuses={"registerTenant": 503})
    assert unavailable["renderData"] == [[{"message": "CareRoute could not be reached (HTTP 503). Try again in a few minutes."}]]
    no_answer = run_handler(tmp_path, "onAppInstallHandler", {"iparams": IPARAMS}, statuses={"registerTenant": 0})
    assert no_answer["renderData"] == [[{"message": "CareRoute could not be reached. Try again in a few minutes."}]]
    for line in unavailable["logs"] + no_answer["logs"]:
        assert "reg-token-789" not in line and "fd-key-123" not in line


@needs_node
def test_install_without_settings_still_answers_the_platform(tmp_path: Path) -> None:
    seen = run_handler(tmp_path, "onAppInstallHandler", {})
    assert seen["requests"] == []
    assert seen["renderData"] == [[{"message": "Thresholds must be numbers between 0 and 1."}]]


@needs_node
def test_app_update_sends_the_settings(tmp_path: Path) -> None:
    seen = run_handler(tmp_path, "afterAppUpdateHandler", {"iparams": {**IPARAMS, "trained_group_id": ""}})
    assert seen["requests"] == [{"name": "updateSettings", "context": None, "body": {
        "thresholds": {"concern": 0.3, "high": 0.55, "imminent": 0.9}, "trained_group_id": None, "tag_prefix": "cr"}}]
    assert seen["renderData"] == [[]]


@needs_node
def test_uninstall_is_never_blocked(tmp_path: Path) -> None:
    seen = run_handler(tmp_path, "onAppUninstallHandler", {"iparams": IPARAMS}, statuses={"unregisterTenant": 502})
    assert [r["name"] for r in seen["requests"]] == ["unregisterTenant"]
    assert seen["renderData"] == [[]]


TICKET_EVENT = {"iparams": IPARAMS, "data": {"ticket": {
    "id": 42, "subject": "Private subject line", "description_text": "Private words the customer wrote"}}}


@needs_node
def test_ticket_create_forwards_only_the_ticket_id(tmp_path: Path) -> None:
    seen = run_handler(tmp_path, "onTicketCreateHandler", TICKET_EVENT, db={SECRET_KEY: {"secret": "hook-secret"}})
    assert seen["requests"] == [{"name": "forwardTicketCreated", "context": {"webhook_secret": "hook-secret"},
                                 "body": {"ticket_id": "42", "event": "created"}}]
    assert not any("Private" in line or "hook-secret" in line for line in seen["logs"])


@needs_node
def test_ticket_create_without_a_registered_secret_sends_nothing(tmp_path: Path) -> None:
    seen = run_handler(tmp_path, "onTicketCreateHandler", TICKET_EVENT)
    assert seen["requests"] == []
    assert seen["logs"] == ["careroute: no webhook secret stored; reinstall the app"]
