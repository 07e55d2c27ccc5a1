"""The Zendesk marketplace app (manifests/zendesk) against Zendesk's documented packaging rules.

The real package must pass every rule in tests/manifest_rules.py; for each important rule a copy of the
package is broken in one place and the validator must report exactly that problem.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import sys
import zlib
from pathlib import Path
from typing import Any, Callable

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # lets `tests.manifest_rules` import under a plain `pytest` run too
    sys.path.insert(0, str(REPO))

from tests import manifest_rules as rules  # noqa: E402

APP = REPO / "manifests" / "zendesk"
LANGUAGES = ("en", "es", "de", "fr", "pt", "it", "nl")


@pytest.fixture
def app(tmp_path: Path) -> Path:
    copy = tmp_path / "zendesk"
    shutil.copytree(APP, copy)
    return copy


def edit_json(path: Path, change: Callable[[Any], None]) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")


def parameter(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in manifest["parameters"] if p["name"] == name)


def write_png(path: Path, width: int, height: int, colour_type: int = 6) -> None:
    channels = {2: 3, 6: 4}[colour_type]
    raw = b"".join(b"\x00" + b"\x80" * (width * channels) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


# ------------------------------------------------------------------------------------------ the real package


def test_real_package_passes_every_rule() -> None:
    assert rules.zendesk_problems(APP) == []


def test_manifest_declares_the_settings_the_service_needs() -> None:
    manifest = json.loads((APP / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["frameworkVersion"] == "2.0"
    assert manifest["private"] is False and manifest["defaultLocale"] == "en"
    assert manifest["location"]["support"]["ticket_sidebar"]["url"] == "assets/iframe.html"
    assert parameter(manifest, "service_url") == {"name": "service_url", "type": "url", "required": True,
                                                  "default": "https://careroute.example"}
    assert parameter(manifest, "tenant_id")["required"] is True
    token = parameter(manifest, "tenant_token")
    assert token["secure"] is True and token["scopes"] == ["header"] and "default" not in token
    assert [parameter(manifest, f"{tier}_threshold")["default"] for tier in ("concern", "high", "imminent")] == [0.35, 0.6, 0.85]
    assert parameter(manifest, "tag_prefix")["default"] == "careroute"
    assert parameter(manifest, "auto_reply") == {"name": "auto_reply", "type": "checkbox", "default": False}
    assert parameter(manifest, "trained_group_id")["type"] == "number"


def test_sidebar_sends_the_token_only_as_a_secure_placeholder_header() -> None:
    glue = (APP / "assets" / "zaf-sidebar.js").read_text(encoding="utf-8")
    assert "Authorization: 'Bearer {{setting.tenant_token}}'" in glue
    assert re.search(r"secure:\s*true", glue) and re.search(r"cors:\s*false", glue)
    assert "'/api/v1/' + vendor + '/'" in (APP / "assets" / "careroute-view.js").read_text(encoding="utf-8")
    assert "ticket.editor.insert" in glue


def test_sidebar_strings_shipped_equal_the_translation_files() -> None:
    expected = rules.sidebar_locales_source(APP)
    for copy in rules.SIDEBAR_LOCALES_COPIES:
        assert (REPO / copy).read_text(encoding="utf-8") == expected, f"{copy}: regenerate with write_sidebar_locales"
    assert '"flag_third_party": "Betrifft eine andere Person"' in expected


def test_a_changed_translation_makes_the_shipped_strings_stale(app: Path) -> None:
    before = rules.sidebar_locales_source(app)
    _translation("de", lambda d: d["sidebar"].__setitem__("copy", "Kopie"))(app)
    assert rules.sidebar_locales_source(app) != before


def test_both_apps_ship_the_same_view_code_and_strings() -> None:
    freshdesk = REPO / "manifests" / "freshdesk" / "app"
    for ours, theirs in (("careroute-view.js", "scripts/careroute-view.js"), ("careroute-locales.js", "scripts/careroute-locales.js"),
                         ("sidebar.css", "styles/sidebar.css")):
        assert (APP / "assets" / ours).read_bytes() == (freshdesk / theirs).read_bytes(), ours


UNSAFE_PHRASES = ("committed suicide", "commit suicide", "successful attempt", "failed attempt", "suicidal customer",
                  "our system detected")


def test_reply_macros_follow_safe_messaging() -> None:
    requirements = json.loads((APP / "requirements.json").read_text(encoding="utf-8"))
    macros = requirements["macros"]
    assert sorted(macros) == sorted(f"careroute_reply_{language}" for language in LANGUAGES)
    for key, macro in macros.items():
        actions = {a["field"]: a["value"] for a in macro["actions"]}
        html = actions["comment_value_html"]
        assert actions["comment_mode_is_public"] == "true"
        assert "https://findahelpline.com" in html and "https://befrienders.org" in html, key
        assert html.count("<p>") >= 4, key  # thanks, emergency, resources, keep helping
        assert not any(phrase in html.lower() for phrase in UNSAFE_PHRASES), key
    field = requirements["ticket_fields"]["careroute_tier"]
    assert field["type"] == "tagger" and field["visible_in_portal"] is False
    assert [o["value"] for o in field["custom_field_options"]] == ["careroute_concern", "careroute_high", "careroute_imminent"]


def test_no_text_uses_stigmatising_or_unsafe_wording() -> None:
    for path in [*sorted((APP / "translations").glob("*.json")), APP / "requirements.json"]:
        text = path.read_text(encoding="utf-8").lower()
        assert not any(phrase in text for phrase in UNSAFE_PHRASES), path.name


def test_png_reader_rejects_a_corrupted_header(tmp_path: Path) -> None:
    logo = tmp_path / "logo.png"
    data = bytearray((APP / "assets" / "logo.png").read_bytes())
    assert rules.png_info(APP / "assets" / "logo.png") == rules.PngInfo(320, 320, 8, 6)
    data[20] ^= 0xFF  # inside IHDR: the CRC no longer matches
    logo.write_bytes(bytes(data))
    assert rules.png_info(logo) is None


# ------------------------------------------------------------------------------------------ broken copies


def _set(key: str, value: Any) -> Callable[[Path], None]:
    return lambda app: edit_json(app / "manifest.json", lambda m: m.__setitem__(key, value))


def _drop(key: str) -> Callable[[Path], None]:
    return lambda app: edit_json(app / "manifest.json", lambda m: m.pop(key))


def _param(name: str, **changes: Any) -> Callable[[Path], None]:
    def change(manifest: dict[str, Any]) -> None:
        target = parameter(manifest, name)
        for key, value in changes.items():
            if value is None:
                target.pop(key, None)
            else:
                target[key] = value
    return lambda app: edit_json(app / "manifest.json", change)


def _add_param(spec: dict[str, Any]) -> Callable[[Path], None]:
    return lambda app: edit_json(app / "manifest.json", lambda m: m["parameters"].append(spec))


def _location(value: Any) -> Callable[[Path], None]:
    return lambda app: edit_json(app / "manifest.json", lambda m: m.__setitem__("location", value))


def _nest_manifest(app: Path) -> None:
    (app / "app").mkdir()
    (app / "manifest.json").rename(app / "app" / "manifest.json")


def _duplicate_name(app: Path) -> None:
    text = (app / "manifest.json").read_text(encoding="utf-8")
    (app / "manifest.json").write_text(text.replace('"name": "CareRoute",', '"name": "CareRoute", "name": "Other",', 1), encoding="utf-8")


MANIFEST_BREAKAGES = {
    "author missing [Z5.3]": (_drop("author"), "manifest.json: missing key 'author'"),
    "author url not http [Z5.3]": (lambda app: edit_json(app / "manifest.json", lambda m: m["author"].__setitem__("url", "careroute.example")),
                                   "manifest.json: author.url must be an http(s) URL"),
    "defaultLocale missing [Z5.3]": (_drop("defaultLocale"), "manifest.json: missing key 'defaultLocale'"),
    "defaultLocale malformed [Z5.3]": (_set("defaultLocale", "English"), "manifest.json: defaultLocale 'English' is not a locale"),
    "defaultLocale without file [Z5.3]": (_set("defaultLocale", "ja"), "manifest.json: no translations/ja.json for the defaultLocale"),
    "private not boolean [Z5.3]": (_set("private", "no"), "manifest.json: 'private' must be true or false"),
    "version not string [Z5.3]": (_set("version", 1), "manifest.json: 'version' must be a string"),
    "unknown key [Z5.1]": (_set("permissions", []), "manifest.json: unknown key 'permissions'"),
    "duplicate key [Z5.3]": (_duplicate_name, "manifest.json: duplicate key 'name'"),
    "manifest in a subfolder [Z5.3]": (_nest_manifest, "manifest.json: missing (found app/manifest.json in a subfolder)"),
    "frameworkVersion missing [Z5.3]": (_drop("frameworkVersion"), "manifest.json: missing key 'frameworkVersion'"),
    "frameworkVersion not served [Z5.3]": (_set("frameworkVersion", "1.0"), "manifest.json: frameworkVersion '1.0' is not served (only 2.0)"),
    "location missing [Z5.3]": (_drop("location"), "manifest.json: missing key 'location'"),
    "unknown location [Z5.3]": (_location({"support": {"ticket_sidepanel": "assets/iframe.html"}}),
                                "manifest.json: unknown location 'support.ticket_sidepanel'"),
    "unknown host [Z5.3]": (_location({"guide": {"ticket_sidebar": "assets/iframe.html"}}), "manifest.json: unknown location host 'guide'"),
    "location file missing [Z5.3]": (_location({"support": {"ticket_sidebar": "assets/missing.html"}}),
                                     "manifest.json: location.support.ticket_sidebar URL 'assets/missing.html' is neither https nor an existing assets/ file"),
    "location over http [Z5.3]": (_location({"support": {"ticket_sidebar": "http://careroute.example/sidebar"}}),
                                  "manifest.json: location.support.ticket_sidebar URL 'http://careroute.example/sidebar' is neither https nor an existing assets/ file"),
    "flexible not boolean [Z5.3]": (_location({"support": {"ticket_sidebar": {"url": "assets/iframe.html", "flexible": "yes"}}}),
                                    "manifest.json: location.support.ticket_sidebar.flexible must be true or false"),
    "requirementsOnly with a location [Z5.3]": (_set("requirementsOnly", True), "manifest.json: 'location' must be absent in a requirementsOnly app"),
    "parameters not an array [Z5.3]": (_set("parameters", {"service_url": "x"}), "manifest.json: 'parameters' must be an array"),
    "domainWhitelist not strings [Z5.3]": (_set("domainWhitelist", [1]), "manifest.json: 'domainWhitelist' must be an array of strings"),
    "experiment not allowlisted [Z5.3]": (_set("experiments", {"fastBoot": True}), "manifest.json: experiment 'fastBoot' is not allowed in the marketplace"),
    "duplicate parameter [Z5.2]": (_add_param({"name": "tag_prefix", "type": "text"}), "manifest.json: duplicate parameter 'tag_prefix'"),
    "password type [Z5.2]": (_param("tenant_token", type="password"), "manifest.json: parameter 'tenant_token' has unknown type 'password'"),
    "secure not boolean [Z5.2]": (_param("tenant_token", secure="true"), "manifest.json: parameter 'tenant_token': 'secure' must be true or false"),
    "required not boolean [Z5.2]": (_param("tenant_id", required=1), "manifest.json: parameter 'tenant_id': 'required' must be true or false"),
    "hidden and required [Z5.2]": (_add_param({"name": "install_id", "type": "hidden", "required": True}),
                                   "manifest.json: parameter 'install_id': a hidden parameter cannot be required"),
    "parameter called name [Z5.2]": (_add_param({"name": "name", "type": "text"}), "manifest.json: parameter 'name': a parameter may not be called 'name'"),
    "scopes without secure [Z5.2]": (_param("tenant_id", scopes=["header"]), "manifest.json: parameter 'tenant_id': scopes are allowed only with secure: true"),
    "empty scopes [Z5.2]": (_param("tenant_token", scopes=[]), "manifest.json: parameter 'tenant_token': scopes must be a non-empty array"),
    "unknown scope [Z5.2]": (_param("tenant_token", scopes=["headers"]), "manifest.json: parameter 'tenant_token': unknown scope(s) headers"),
    "secure without scopes [Z5.2]": (_param("tenant_token", scopes=None), "manifest.json: parameter 'tenant_token': secure parameter without scopes"),
    "secure with default [Z5.2]": (_param("tenant_token", default="abc"), "manifest.json: parameter 'tenant_token': a secure or hidden parameter must not have a default"),
    "token not secure [Z5.2]": (_param("tenant_token", secure=None, scopes=None), "manifest.json: parameter 'tenant_token': looks like a secret but is not secure"),
    "oauth and secure [Z5.2]": (_add_param({"name": "login", "type": "oauth", "secure": True}), "manifest.json: parameter 'login': an oauth parameter cannot be secure"),
    "two oauth parameters [Z5.2]": (lambda app: (_add_param({"name": "a", "type": "oauth"})(app), _add_param({"name": "b", "type": "oauth"})(app)),
                                    "manifest.json: more than one oauth parameter"),
    "oauth block incomplete [Z5.2]": (_set("oauth", {"client_id": "x"}), "manifest.json: oauth is missing client_secret, authorize_uri, access_token_uri"),
    "oauth block without oauth parameter [Z5.2]": (_set("oauth", {"client_id": "a", "client_secret": "b", "authorize_uri": "https://x", "access_token_uri": "https://y"}),
                                                   "manifest.json: oauth needs a parameter of type oauth"),
    "number default as text [CR]": (_param("concern_threshold", default="0.35"), "manifest.json: parameter 'concern_threshold': default must be a number"),
    "checkbox default as text [CR]": (_param("auto_reply", default="false"), "manifest.json: parameter 'auto_reply': default must be true or false"),
    "url default not a URL [CR]": (_param("service_url", default="careroute.example"), "manifest.json: parameter 'service_url': default must be an http(s) URL"),
}


@pytest.mark.parametrize("breakage", sorted(MANIFEST_BREAKAGES))
def test_broken_manifest_is_reported(app: Path, breakage: str) -> None:
    mutate, expected = MANIFEST_BREAKAGES[breakage]
    mutate(app)
    assert expected in rules.zendesk_problems(app)


def _translation(language: str, change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    return lambda app: edit_json(app / "translations" / f"{language}.json", change)


def _copy_english_long_description(app: Path) -> None:
    english = json.loads((app / "translations" / "en.json").read_text(encoding="utf-8"))
    edit_json(app / "translations" / "it.json", lambda d: d["app"].__setitem__("long_description", english["app"]["long_description"]))


TRANSLATION_BREAKAGES = {
    "public app without long_description [Z5.4]": (_translation("en", lambda d: d["app"].pop("long_description")),
                                                   "translations/en.json: missing app.long_description"),
    "public app without installation_instructions [Z5.4]": (_translation("en", lambda d: d["app"].pop("installation_instructions")),
                                                            "translations/en.json: missing app.installation_instructions"),
    "app name missing [Z5.4]": (_translation("en", lambda d: d["app"].pop("name")), "translations/en.json: missing app.name"),
    "parameter without label [Z5.4]": (_translation("en", lambda d: d["app"]["parameters"]["tag_prefix"].pop("label")),
                                       "translations/en.json: app.parameters.tag_prefix needs a label"),
    "parameter without translation [Z5.4]": (_translation("en", lambda d: d["app"]["parameters"].pop("tenant_id")),
                                             "translations/en.json: app.parameters.tenant_id needs a label"),
    "parameter without helpText [CR]": (_translation("en", lambda d: d["app"]["parameters"]["auto_reply"].pop("helpText")),
                                        "translations/en.json: app.parameters.auto_reply needs a helpText"),
    "translated parameter that does not exist [CR]": (_translation("en", lambda d: d["app"]["parameters"].__setitem__("colour", {"label": "Colour"})),
                                                      "translations/en.json: app.parameters.colour is not a manifest parameter"),
    "translation file not a locale [Z5.4]": (lambda app: (app / "translations" / "en.json").rename(app / "translations" / "english.json"),
                                             "translations/english.json: file name is not a locale"),
    "translation not a JSON object [Z5.4]": (lambda app: (app / "translations" / "fr.json").write_text("[]", encoding="utf-8"),
                                             "translations/fr.json: must be a JSON object"),
    "translation not JSON [Z5.4]": (lambda app: (app / "translations" / "fr.json").write_text("{", encoding="utf-8"),
                                    "translations/fr.json: not valid JSON"),
    "language missing [CR]": (lambda app: (app / "translations" / "pt.json").unlink(), "translations/pt.json: missing"),
    "key missing in one language [CR]": (_translation("de", lambda d: d["sidebar"].pop("copy")), "translations/de.json: missing sidebar.copy"),
    "extra key in one language [CR]": (_translation("fr", lambda d: d["sidebar"].__setitem__("extra", "En plus")),
                                       "translations/fr.json: sidebar.extra is not in en.json"),
    "placeholder dropped [CR]": (_translation("nl", lambda d: d["sidebar"].__setitem__("emergency", "Alarmnummer")),
                                 "translations/nl.json: sidebar.emergency placeholders differ from en.json"),
    "left in English [CR]": (_copy_english_long_description, "translations/it.json: app.long_description is not translated"),
    "empty string [CR]": (_translation("es", lambda d: d["sidebar"].__setitem__("refresh", " ")),
                          "translations/es.json: sidebar.refresh must be a non-empty string"),
}


@pytest.mark.parametrize("breakage", sorted(TRANSLATION_BREAKAGES))
def test_broken_translations_are_reported(app: Path, breakage: str) -> None:
    mutate, expected = TRANSLATION_BREAKAGES[breakage]
    mutate(app)
    assert expected in rules.zendesk_problems(app)


def test_private_app_needs_only_the_name(app: Path) -> None:
    _set("private", True)(app)
    _translation("en", lambda d: d["app"].pop("long_description"))(app)
    problems = rules.zendesk_problems(app)
    assert "translations/en.json: missing app.long_description" not in problems
    _translation("en", lambda d: d["app"].pop("name"))(app)
    assert "translations/en.json: missing app.name" in rules.zendesk_problems(app)


def _requirements(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    return lambda app: edit_json(app / "requirements.json", change)


REQUIREMENT_BREAKAGES = {
    "groups are not a requirement type [Z5.5]": (_requirements(lambda r: r.__setitem__("groups", {"trained": {"name": "Trained"}})),
                                                 "requirements.json: unknown requirement type 'groups'"),
    "macro without title [Z5.5]": (_requirements(lambda r: r["macros"]["careroute_reply_en"].pop("title")),
                                   "requirements.json: macros.careroute_reply_en is missing title"),
    "ticket field without title [Z5.5]": (_requirements(lambda r: r["ticket_fields"]["careroute_tier"].pop("title")),
                                          "requirements.json: ticket_fields.careroute_tier is missing title"),
    "webhook without request_format [Z5.5]": (_requirements(lambda r: r.__setitem__("webhooks", {"screen": {
        "name": "CareRoute", "status": "active", "endpoint": "https://careroute.example/webhooks/zendesk/acme", "http_method": "POST"}})),
        "requirements.json: webhooks.screen is missing request_format"),
    "http target [Z5.5]": (_requirements(lambda r: r.__setitem__("targets", {"old": {"title": "Old", "type": "http_target"}})),
                           "requirements.json: targets.old is a http_target, which is rejected; use a webhook"),
    "user field without key [Z5.5]": (_requirements(lambda r: r.__setitem__("user_fields", {"risk": {"title": "Risk", "type": "text"}})),
                                      "requirements.json: user_fields.risk is missing key"),
    "more than 5000 requirements [Z5.5]": (_requirements(lambda r: r["macros"].update({f"m{i}": {"title": f"M{i}"} for i in range(5000)})),
                                           "requirements.json: 5008 requirements, more than 5000"),
    "requirements not JSON [Z5.5]": (lambda app: (app / "requirements.json").write_text("{'macros': 1}", encoding="utf-8"),
                                     "requirements.json: not valid JSON"),
    "requirementsOnly without requirements.json [Z5.3]": (lambda app: ((app / "requirements.json").unlink(),
                                                                        edit_json(app / "manifest.json", lambda m: (m.update(requirementsOnly=True), m.pop("location"), m.pop("frameworkVersion")))),
                                                          "requirements.json: missing (requirementsOnly app)"),
}


@pytest.mark.parametrize("breakage", sorted(REQUIREMENT_BREAKAGES))
def test_broken_requirements_are_reported(app: Path, breakage: str) -> None:
    mutate, expected = REQUIREMENT_BREAKAGES[breakage]
    mutate(app)
    assert expected in rules.zendesk_problems(app)


def _replace_in(rel: str, old: str, new: str) -> Callable[[Path], None]:
    def change(app: Path) -> None:
        text = (app / rel).read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in {rel}"
        (app / rel).write_text(text.replace(old, new), encoding="utf-8")
    return change


ASSET_BREAKAGES = {
    "large logo wrong size [ZBRAND]": (lambda app: write_png(app / "assets" / "logo.png", 100, 100), "assets/logo.png: 100x100, must be 320x320"),
    "small logo without transparency [ZBRAND]": (lambda app: write_png(app / "assets" / "logo-small.png", 128, 128, colour_type=2),
                                                 "assets/logo-small.png: must be PNG-24 with transparency (8-bit RGBA)"),
    "logo not a PNG [ZBRAND]": (lambda app: (app / "assets" / "logo.png").write_bytes(b"GIF89a"), "assets/logo.png: missing or not a valid PNG"),
    "logo missing [ZBRAND]": (lambda app: (app / "assets" / "logo-small.png").unlink(), "assets/logo-small.png: missing or not a valid PNG"),
    "script from a CDN [CR]": (_replace_in("assets/iframe.html", 'src="careroute-view.js"', 'src="https://cdn.jsdelivr.net/npm/x/view.js"'),
                               "assets/iframe.html: loads https://cdn.jsdelivr.net/npm/x/view.js from another site; only "
                               f"{rules.ZAF_SDK_URL} may [CR]"),
    "local script missing [CR]": (lambda app: (app / "assets" / "zaf-sidebar.js").unlink(), "assets/iframe.html: zaf-sidebar.js does not exist"),
    "secure setting read in the browser [CR]": (_replace_in("assets/zaf-sidebar.js", "function assess(context) {",
                                                            "function assess(context) {\n    var token = context.settings.tenant_token;"),
                                                "assets/zaf-sidebar.js: reads secure setting 'tenant_token' from settings; only its placeholder reaches the browser"),
    "secure placeholder without a secure request [CR]": (_replace_in("assets/zaf-sidebar.js", "secure: true,", ""),
                                                         "assets/zaf-sidebar.js: uses {{setting.tenant_token}} without a secure: true request"),
    "placeholder for an unknown setting [CR]": (_replace_in("assets/zaf-sidebar.js", "{{setting.tenant_token}}", "{{setting.api_token}}"),
                                                "assets/zaf-sidebar.js: {{setting.api_token}} is not a manifest parameter"),
}


@pytest.mark.parametrize("breakage", sorted(ASSET_BREAKAGES))
def test_broken_assets_are_reported(app: Path, breakage: str) -> None:
    mutate, expected = ASSET_BREAKAGES[breakage]
    mutate(app)
    assert expected in rules.zendesk_problems(app)


def test_each_breakage_leaves_the_rest_of_the_package_clean(app: Path) -> None:
    """A single break yields only its own problems: the checks do not cascade into noise."""
    _param("tenant_token", scopes=["headers"])(app)
    assert rules.zendesk_problems(app) == ["manifest.json: parameter 'tenant_token': unknown scope(s) headers"]
