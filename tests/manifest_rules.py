"""Local validation of the marketplace packages in manifests/.

`zcli apps:validate` needs a live Zendesk account and `fdk validate` is not installable in CI
(reference zendesk.md §5.3, freshdesk.md §7), so the vendors' documented packaging rules are encoded
here as pure functions over a package folder. Each returns a list of problems, one string per problem,
shaped "<file>: <what is wrong>"; an empty list means the package passes. Every rule names its source:

  [Z5.1]..[Z5.5]  reference/zendesk.md §5 (Zendesk's server-side validator zendesk_apps_support, docs)
  [ZBRAND]        Zendesk "Create brand assets": logo.png 320x320, logo-small.png 128x128 PNG-24 with
                  transparency (developer.zendesk.com/documentation/apps/publish-your-app-or-theme/create_assets)
  [F7]            reference/freshdesk.md §7 (Freshworks platform 3.0: manifest, requests, iparams, fdk lint:
                  no-eval, no-alert, no UNPKG, complexity <= 7; the lint list is on
                  developers.freshworks.com/docs/guides/submission-guidelines/app-validation)
  [CR]            CareRoute's own packaging rules (issue 7: languages, no CDN, privacy of handler logs)
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, NamedTuple

# ------------------------------------------------------------------------------------------ shared


class _DuplicateKey(Exception):
    pass


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def load_json(path: Path, name: str) -> tuple[Any, list[str]]:
    """Parsed JSON, or a problem for unreadable JSON and for duplicate keys [Z5.3]."""
    try:
        return json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_unique_pairs), []
    except _DuplicateKey as duplicate:
        return None, [f"{name}: duplicate key '{duplicate.args[0]}'"]
    except (OSError, ValueError):
        return None, [f"{name}: not valid JSON"]


class PngInfo(NamedTuple):
    width: int
    height: int
    bit_depth: int
    colour_type: int  # 6 = RGBA


def png_info(path: Path) -> PngInfo | None:
    """Header of a well-formed PNG (signature, IHDR with a correct CRC, IEND), else None."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) < 45 or data[12:16] != b"IHDR":
        return None
    header = data[16:29]
    if struct.unpack(">I", data[8:12])[0] != 13 or zlib.crc32(b"IHDR" + header) != struct.unpack(">I", data[29:33])[0]:
        return None
    if not data.endswith(b"IEND\xaeB`\x82"):
        return None
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    return PngInfo(width, height, depth, colour)


class _ResourceRefs(HTMLParser):
    """Script and stylesheet references of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script" and found.get("src"):
            self.refs.append(found["src"] or "")
        if tag == "link" and found.get("href"):
            self.refs.append(found["href"] or "")


def _html_problems(page: Path, rel: str, allowed_external: set[str]) -> list[str]:
    parser = _ResourceRefs()
    parser.feed(page.read_text(encoding="utf-8"))
    problems = []
    for ref in parser.refs:
        if ref in allowed_external:
            continue
        if re.match(r"^([a-z]+:)?//", ref, re.I) or ref.startswith("{{"):
            problems.append(f"{rel}: loads {ref} from another site; only {', '.join(sorted(allowed_external))} may [CR]")
        elif not (page.parent / ref.split("?")[0]).is_file():
            problems.append(f"{rel}: {ref} does not exist")
    return problems


def node_syntax_problems(root: Path, node: str) -> list[str]:
    """`node --check` on every .js file of a package [F7: the source must parse]."""
    problems = []
    for script in sorted(root.rglob("*.js")):
        result = subprocess.run([node, "--check", str(script)], capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines()
            reason = next((line for line in lines if re.match(r"^\w*Error\b", line)), "syntax error")
            problems.append(f"{script.relative_to(root)}: not valid JavaScript ({reason})")
    return problems


def _without_comments(source: str) -> str:
    """JavaScript minus its comments, so a rule matches code and not prose about the code."""
    return re.sub(r"/\*.*?\*/|(?<![:\w'\"\\])//[^\n]*", "", source, flags=re.S)


def _is_http_url(value: Any) -> bool:
    return isinstance(value, str) and re.match(r"^https?://[^\s/]+", value) is not None


# ------------------------------------------------------------------------------------------ Zendesk

ZENDESK_MANIFEST_KEYS = frozenset({
    "requirementsOnly", "marketingOnly", "version", "author", "name", "experiments", "frameworkVersion",
    "singleInstall", "signedUrls", "noTemplate", "defaultLocale", "location", "private", "oauth",
    "parameters", "domainWhitelist", "remoteInstallationURL", "termsConditionsURL", "gaID"})
ZENDESK_BOOLEAN_KEYS = ("requirementsOnly", "marketingOnly", "singleInstall", "signedUrls", "private")
ZENDESK_STRING_KEYS = ("defaultLocale", "version", "frameworkVersion", "remoteInstallationURL", "termsConditionsURL", "gaID")
ZENDESK_FRAMEWORK_VERSIONS = frozenset({"2.0"})
ZENDESK_EXPERIMENTS = frozenset({"hashParams", "newCssCompiler"})
ZENDESK_LOCATIONS = {  # zendesk_apps_support location.rb
    "support": frozenset({"top_bar", "nav_bar", "ticket_sidebar", "new_ticket_sidebar", "user_sidebar",
                          "organization_sidebar", "background", "modal", "ticket_editor", "system_top_bar",
                          "ticket_module"}),
    "chat": frozenset({"chat_sidebar", "background"}),
}
LOCALE_PATTERN = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9_]{2,3})?")
ZENDESK_PARAMETER_TYPES = frozenset({"text", "checkbox", "url", "number", "multiline", "hidden", "oauth"})
ZENDESK_SECURE_SCOPES = frozenset({"header", "body", "url", "jwt_secret_key", "jwt_claim",
                                   "basic_auth_username", "basic_auth_password"})
ZENDESK_OAUTH_FIELDS = ("client_id", "client_secret", "authorize_uri", "access_token_uri")
SECRET_LOOKING_NAME = re.compile(r"token|key|pwd|password|secret", re.I)
ZENDESK_PUBLIC_APP_KEYS = ("name", "short_description", "long_description", "installation_instructions")
REQUIRED_LOCALES = ("en", "es", "de", "fr", "pt", "it", "nl")  # [CR] issue 7
REQUIREMENT_TYPES = frozenset({"automations", "channel_integrations", "custom_objects", "macros", "targets", "views",
                               "ticket_fields", "triggers", "user_fields", "organization_fields", "webhooks",
                               "custom_objects_v2"})
REQUIREMENTS_WITHOUT_TITLE = frozenset({"channel_integrations", "custom_objects", "webhooks", "custom_objects_v2"})
WEBHOOK_REQUIREMENT_FIELDS = ("name", "status", "endpoint", "http_method", "request_format")
MAX_REQUIREMENTS = 5000
ZENDESK_LOGOS = {"assets/logo.png": (320, 320, False), "assets/logo-small.png": (128, 128, True)}
ZAF_SDK_URL = "https://static.zdassets.com/zendesk_app_framework_sdk/2.0/zaf_sdk.min.js"


def zendesk_problems(root: Path) -> list[str]:
    """Every rule below, for the Zendesk app in `root`."""
    problems = zendesk_manifest_problems(root)
    manifest, _ = load_json(root / "manifest.json", "manifest.json")
    if not isinstance(manifest, dict):
        return problems
    return (problems + zendesk_parameter_problems(manifest) + zendesk_translation_problems(root, manifest)
            + zendesk_requirements_problems(root, manifest) + zendesk_asset_problems(root, manifest))


def zendesk_manifest_problems(root: Path) -> list[str]:
    """[Z5.1] accepted keys; [Z5.3] what makes zendesk_apps_support reject a manifest."""
    path = root / "manifest.json"
    if not path.is_file():
        nested = sorted(str(p.relative_to(root)) for p in root.glob("*/manifest.json"))
        return [f"manifest.json: missing (found {nested[0]} in a subfolder)" if nested else "manifest.json: missing"]
    manifest, problems = load_json(path, "manifest.json")
    if problems:
        return problems
    if not isinstance(manifest, dict):
        return ["manifest.json: must be a JSON object"]
    problems += [f"manifest.json: unknown key '{key}'" for key in sorted(set(manifest) - ZENDESK_MANIFEST_KEYS)]
    problems += [f"manifest.json: missing key '{key}'" for key in ("author", "defaultLocale") if key not in manifest]
    problems += [f"manifest.json: '{key}' must be true or false" for key in ZENDESK_BOOLEAN_KEYS
                 if key in manifest and not isinstance(manifest[key], bool)]
    problems += [f"manifest.json: '{key}' must be a string" for key in ZENDESK_STRING_KEYS
                 if key in manifest and not isinstance(manifest[key], str)]
    author = manifest.get("author")
    if "author" in manifest and not isinstance(author, dict):
        problems.append("manifest.json: 'author' must be an object with name, email and url")
    elif isinstance(author, dict):
        problems += [f"manifest.json: author.{field} must be a string" for field in ("name", "email", "url")
                     if not isinstance(author.get(field), str)]
        if isinstance(author.get("url"), str) and not _is_http_url(author["url"]):
            problems.append("manifest.json: author.url must be an http(s) URL")
    if "termsConditionsURL" in manifest and not _is_http_url(manifest["termsConditionsURL"]):
        problems.append("manifest.json: termsConditionsURL must be an http(s) URL")
    locale = manifest.get("defaultLocale")
    if isinstance(locale, str):
        if not LOCALE_PATTERN.fullmatch(locale):
            problems.append(f"manifest.json: defaultLocale '{locale}' is not a locale")
        elif not (root / "translations" / f"{locale}.json").is_file():
            problems.append(f"manifest.json: no translations/{locale}.json for the defaultLocale")
    if "parameters" in manifest and not isinstance(manifest["parameters"], list):
        problems.append("manifest.json: 'parameters' must be an array")
    whitelist = manifest.get("domainWhitelist")
    if whitelist is not None and not (isinstance(whitelist, list) and all(isinstance(d, str) for d in whitelist)):
        problems.append("manifest.json: 'domainWhitelist' must be an array of strings")
    experiments = manifest.get("experiments", {})
    if not isinstance(experiments, dict):
        problems.append("manifest.json: 'experiments' must be an object")
    else:
        problems += [f"manifest.json: experiment '{name}' is not allowed in the marketplace"
                     for name, on in experiments.items() if on and name not in ZENDESK_EXPERIMENTS]
    return problems + _zendesk_location_problems(root, manifest)


def _zendesk_location_problems(root: Path, manifest: dict[str, Any]) -> list[str]:
    special = [key for key in ("requirementsOnly", "marketingOnly") if manifest.get(key) is True]
    if special:
        problems = [f"manifest.json: '{key}' must be absent in a {special[0]} app"
                    for key in ("location", "frameworkVersion") if key in manifest]
        if manifest.get("requirementsOnly") is True and not (root / "requirements.json").is_file():
            problems.append("requirements.json: missing (requirementsOnly app)")
        return problems
    problems = [f"manifest.json: missing key '{key}'" for key in ("location", "frameworkVersion") if key not in manifest]
    version = manifest.get("frameworkVersion")
    if isinstance(version, str) and version not in ZENDESK_FRAMEWORK_VERSIONS:
        problems.append(f"manifest.json: frameworkVersion '{version}' is not served (only 2.0)")
    location = manifest.get("location")
    if location is None:
        return problems
    if not isinstance(location, dict):
        return problems + ["manifest.json: 'location' must map hosts to locations with URLs"]
    for host, places in location.items():
        if host not in ZENDESK_LOCATIONS:
            problems.append(f"manifest.json: unknown location host '{host}'")
            continue
        if not isinstance(places, dict):
            problems.append(f"manifest.json: location.{host} must be an object")
            continue
        for name, options in places.items():
            problems += _zendesk_place_problems(root, f"{host}.{name}", name in ZENDESK_LOCATIONS[host], options)
    return problems


def _zendesk_place_problems(root: Path, place: str, known: bool, options: Any) -> list[str]:
    problems = [] if known else [f"manifest.json: unknown location '{place}'"]
    url = options if isinstance(options, str) else options.get("url") if isinstance(options, dict) else None
    if isinstance(options, dict) and "flexible" in options and not isinstance(options["flexible"], bool):
        problems.append(f"manifest.json: location.{place}.flexible must be true or false")
    if not url:
        if not (isinstance(options, dict) and options.get("autoLoad") is False):
            problems.append(f"manifest.json: location.{place} has no URL")
        return problems
    if "{{setting." in url:
        return problems
    scheme = re.match(r"^([a-z][a-z0-9+.-]*):", url, re.I)
    host = re.match(r"^[a-z]+://([^/:]+)", url, re.I)
    valid = (scheme.group(1).lower() == "https" or (host is not None and host.group(1) == "localhost")) if scheme \
        else url.startswith("assets/") and (root / url.split("?")[0]).is_file()
    if not valid:
        problems.append(f"manifest.json: location.{place} URL '{url}' is neither https nor an existing assets/ file")
    return problems


def _default_problem(kind: str, value: Any) -> str | None:
    """[CR] a parameter's default has the type its input shows."""
    if kind == "number" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return "a number"
    if kind == "checkbox" and not isinstance(value, bool):
        return "true or false"
    if kind in ("text", "multiline", "url") and not isinstance(value, str):
        return "a string"
    if kind == "url" and not _is_http_url(value):
        return "an http(s) URL"
    return None


def zendesk_parameter_problems(manifest: dict[str, Any]) -> list[str]:
    """[Z5.2] parameter errors and the warnings the marketplace review raises (treated as errors)."""
    parameters = manifest.get("parameters") or []
    if not isinstance(parameters, list):
        return []
    problems, names = [], []
    for index, parameter in enumerate(parameters):
        if not isinstance(parameter, dict) or not isinstance(parameter.get("name"), str) or not parameter["name"]:
            problems.append(f"manifest.json: parameter #{index} needs a name")
            continue
        names.append(parameter["name"])
        problems += _zendesk_one_parameter_problems(parameter)
    problems += [f"manifest.json: duplicate parameter '{name}'" for name in sorted({n for n in names if names.count(n) > 1})]
    oauth_parameters = [p for p in parameters if isinstance(p, dict) and p.get("type") == "oauth"]
    if len(oauth_parameters) > 1:
        problems.append("manifest.json: more than one oauth parameter")
    oauth = manifest.get("oauth")
    if oauth is not None:
        missing = [f for f in ZENDESK_OAUTH_FIELDS if not (isinstance(oauth, dict) and oauth.get(f))]
        if missing:
            problems.append(f"manifest.json: oauth is missing {', '.join(missing)}")
        if not oauth_parameters:
            problems.append("manifest.json: oauth needs a parameter of type oauth")
    return problems


def _scope_problems(label: str, secure: bool, parameter: dict[str, Any]) -> list[str]:
    if "scopes" not in parameter:
        return [f"{label}: secure parameter without scopes"] if secure else []
    scopes = parameter["scopes"]
    if not secure:
        return [f"{label}: scopes are allowed only with secure: true"]
    if not (isinstance(scopes, list) and scopes):
        return [f"{label}: scopes must be a non-empty array"]
    unknown = sorted(str(scope) for scope in scopes if scope not in ZENDESK_SECURE_SCOPES)
    return [f"{label}: unknown scope(s) {', '.join(unknown)}"] if unknown else []


def _zendesk_one_parameter_problems(parameter: dict[str, Any]) -> list[str]:
    name, kind = parameter["name"], parameter.get("type", "text")
    label = f"manifest.json: parameter '{name}'"
    problems = [] if kind in ZENDESK_PARAMETER_TYPES else [f"{label} has unknown type '{kind}'"]
    problems += [f"{label}: '{flag}' must be true or false" for flag in ("required", "secure")
                 if flag in parameter and not isinstance(parameter[flag], bool)]
    secure = parameter.get("secure") is True
    if name == "name":
        problems.append(f"{label}: a parameter may not be called 'name'")
    if kind == "hidden" and parameter.get("required") is True:
        problems.append(f"{label}: a hidden parameter cannot be required")
    if kind == "oauth" and secure:
        problems.append(f"{label}: an oauth parameter cannot be secure")
    problems += _scope_problems(label, secure, parameter)
    has_default = "default" in parameter
    if has_default and (secure or kind == "hidden"):
        problems.append(f"{label}: a secure or hidden parameter must not have a default")
    elif has_default and (expected := _default_problem(kind, parameter["default"])):
        problems.append(f"{label}: default must be {expected}")
    if not secure and kind == "text" and SECRET_LOOKING_NAME.search(name):
        problems.append(f"{label}: looks like a secret but is not secure")
    return problems


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Translation leaves by dotted key; a {title, value} pair counts as one leaf (its value)."""
    if isinstance(value, dict) and set(value) == {"title", "value"}:
        return {prefix: value["value"]}
    if isinstance(value, dict):
        leaves: dict[str, Any] = {}
        for key, inner in value.items():
            leaves.update(_flatten(inner, f"{prefix}.{key}" if prefix else key))
        return leaves
    return {prefix: value}


def _placeholders(text: Any) -> set[str]:
    return set(re.findall(r"\{\{\s*([\w.]+)\s*\}\}", text)) if isinstance(text, str) else set()


def zendesk_translation_problems(root: Path, manifest: dict[str, Any]) -> list[str]:
    """[Z5.4] locale file names, JSON objects, required en.json keys; [CR] every language complete."""
    problems: list[str] = []
    documents: dict[str, dict[str, Any]] = {}
    for path in sorted((root / "translations").glob("*.json")):
        rel = f"translations/{path.name}"
        if not LOCALE_PATTERN.fullmatch(path.stem):
            problems.append(f"{rel}: file name is not a locale")
            continue
        data, errors = load_json(path, rel)
        if errors or not isinstance(data, dict):
            problems += errors or [f"{rel}: must be a JSON object"]
            continue
        documents[path.stem] = data
    problems += [f"translations/{locale}.json: missing" for locale in REQUIRED_LOCALES
                 if not (root / "translations" / f"{locale}.json").is_file()]
    english = documents.get("en")
    if english is None:
        return problems
    app = english.get("app") if isinstance(english.get("app"), dict) else {}
    present = {"short_description" if key == "description" else key for key in app}
    required = ("name",) if manifest.get("private") is True else ZENDESK_PUBLIC_APP_KEYS
    problems += [f"translations/en.json: missing app.{key}" for key in required if key not in present]
    translated = app.get("parameters") if isinstance(app.get("parameters"), dict) else {}
    declared = [p["name"] for p in manifest.get("parameters") or [] if isinstance(p, dict) and isinstance(p.get("name"), str)]
    for name in declared:
        entry = translated.get(name)
        if not (isinstance(entry, dict) and isinstance(entry.get("label"), str)):
            problems.append(f"translations/en.json: app.parameters.{name} needs a label")
        elif not isinstance(entry.get("helpText"), str):
            problems.append(f"translations/en.json: app.parameters.{name} needs a helpText")
    problems += [f"translations/en.json: app.parameters.{name} is not a manifest parameter"
                 for name in translated if name not in declared]
    return problems + _translation_consistency_problems(documents)


def _translation_consistency_problems(documents: dict[str, dict[str, Any]]) -> list[str]:
    """[CR] same keys and placeholders in every language, non-empty strings, nothing left in English."""
    english = _flatten(documents["en"])
    problems = []
    for locale in sorted(documents):
        leaves = _flatten(documents[locale])
        rel = f"translations/{locale}.json"
        problems += [f"{rel}: {key} must be a non-empty string" for key, value in leaves.items()
                     if not (isinstance(value, str) and value.strip())]
        if locale == "en":
            continue
        problems += [f"{rel}: missing {key}" for key in sorted(set(english) - set(leaves))]
        problems += [f"{rel}: {key} is not in en.json" for key in sorted(set(leaves) - set(english))]
        for key in sorted(set(english) & set(leaves)):
            if _placeholders(english[key]) != _placeholders(leaves[key]):
                problems.append(f"{rel}: {key} placeholders differ from en.json")
            elif isinstance(english[key], str) and len(english[key]) >= 16 and leaves[key] == english[key]:
                problems.append(f"{rel}: {key} is not translated")
    return problems


SIDEBAR_LOCALES_HEADER = (
    "/* CareRoute sidebar strings, one object per agent language. Generated from the Zendesk app's\n"
    "   translations/<lang>.json \"sidebar\" sections; tests/unit/test_manifests_zendesk.py keeps them equal. */\n")
SIDEBAR_LOCALES_COPIES = ("manifests/zendesk/assets/careroute-locales.js", "manifests/freshdesk/app/scripts/careroute-locales.js")


def sidebar_locales_source(zendesk_root: Path) -> str:
    """careroute-locales.js as it must read: the `sidebar` section of every required translation."""
    locales = {}
    for locale in REQUIRED_LOCALES:
        translation = json.loads((zendesk_root / "translations" / f"{locale}.json").read_text(encoding="utf-8"))
        locales[locale] = translation["sidebar"]
    body = json.dumps(locales, ensure_ascii=False, indent=2).replace("\n", "\n  ")
    return (SIDEBAR_LOCALES_HEADER + "(function (root) {\n  'use strict';\n  var locales = " + body + ";\n"
            "  if (typeof module === 'object' && module.exports) {\n    module.exports = locales;\n  } else {\n"
            "    root.CAREROUTE_LOCALES = locales;\n  }\n}(typeof self !== 'undefined' ? self : this));\n")


def write_sidebar_locales(repo: Path) -> None:
    """Regenerates both shipped copies of careroute-locales.js after a translation changed."""
    source = sidebar_locales_source(repo / "manifests" / "zendesk")
    for copy in SIDEBAR_LOCALES_COPIES:
        (repo / copy).write_text(source, encoding="utf-8")


def zendesk_requirements_problems(root: Path, manifest: dict[str, Any]) -> list[str]:
    """[Z5.5] requirement types, required fields, limits."""
    path = root / "requirements.json"
    if not path.is_file():
        return []
    data, problems = load_json(path, "requirements.json")
    if problems:
        return problems
    if not isinstance(data, dict):
        return ["requirements.json: must be a JSON object"]
    if manifest.get("marketingOnly") is True:
        problems.append("requirements.json: a marketingOnly app cannot have requirements")
    count = 0
    for kind, group in data.items():
        if kind not in REQUIREMENT_TYPES:
            problems.append(f"requirements.json: unknown requirement type '{kind}'")
            continue
        if not isinstance(group, dict):
            problems.append(f"requirements.json: {kind} must be an object")
            continue
        count += len(group)
        if kind == "channel_integrations" and len(group) > 1:
            problems.append("requirements.json: only one channel integration is allowed")
        for identifier, fields in group.items():
            problems += _requirement_problems(kind, identifier, fields)
    if count > MAX_REQUIREMENTS:
        problems.append(f"requirements.json: {count} requirements, more than {MAX_REQUIREMENTS}")
    return problems


def _requirement_problems(kind: str, identifier: str, fields: Any) -> list[str]:
    where = f"requirements.json: {kind}.{identifier}"
    if not isinstance(fields, dict):
        return [f"{where} must be an object"]
    if kind == "custom_objects":
        return []
    required = [] if kind in REQUIREMENTS_WITHOUT_TITLE else ["title"]
    required += {"user_fields": ["key"], "organization_fields": ["key"], "webhooks": list(WEBHOOK_REQUIREMENT_FIELDS),
                 "channel_integrations": ["manifest_url"]}.get(kind, [])
    problems = [f"{where} is missing {field}" for field in required if field not in fields]
    if kind == "targets" and fields.get("type") in ("http_target", "url_target_v2"):
        problems.append(f"{where} is a {fields['type']}, which is rejected; use a webhook")
    return problems


def zendesk_asset_problems(root: Path, manifest: dict[str, Any]) -> list[str]:
    """[ZBRAND] logos; [CR] local assets only (the ZAF SDK excepted); secure settings stay placeholders."""
    problems = []
    for rel, (width, height, needs_alpha) in ZENDESK_LOGOS.items():
        info = png_info(root / rel)
        if info is None:
            problems.append(f"{rel}: missing or not a valid PNG")
            continue
        if (info.width, info.height) != (width, height):
            problems.append(f"{rel}: {info.width}x{info.height}, must be {width}x{height}")
        if needs_alpha and (info.colour_type, info.bit_depth) != (6, 8):
            problems.append(f"{rel}: must be PNG-24 with transparency (8-bit RGBA)")
    for page in sorted((root / "assets").glob("*.html")):
        problems += _html_problems(page, f"assets/{page.name}", {ZAF_SDK_URL})
    parameters = {p["name"]: p for p in manifest.get("parameters") or [] if isinstance(p, dict) and "name" in p}
    secure = {name for name, p in parameters.items() if p.get("secure") is True}
    for script in sorted((root / "assets").glob("*.js")):
        source, rel = _without_comments(script.read_text(encoding="utf-8")), f"assets/{script.name}"
        for name in sorted(set(re.findall(r"\{\{setting\.(\w+)\}\}", source))):
            if name not in parameters:
                problems.append(f"{rel}: {{{{setting.{name}}}}} is not a manifest parameter")
            elif name in secure and not re.search(r"\bsecure\s*:\s*true\b", source):
                problems.append(f"{rel}: uses {{{{setting.{name}}}}} without a secure: true request")
        for name in sorted(secure):
            if re.search(rf"settings\s*(\.\s*{name}\b|\[\s*['\"]{name}['\"]\s*\])", source):
                problems.append(f"{rel}: reads secure setting '{name}' from settings; only its placeholder reaches the browser")
        if re.search(r"\beval\s*\(", source):
            problems.append(f"{rel}: uses eval [CR]")
    return problems


# ------------------------------------------------------------------------------------------ Freshdesk

FRESHWORKS_PLATFORM_VERSION = "3.0"
FRESHWORKS_2X_KEYS = ("product", "whitelisted-domains")
FRESHWORKS_MODULE_EVENTS = {
    "common": frozenset({"onAppInstall", "afterAppUpdate", "onAppUninstall", "onScheduledEvent", "onExternalEvent"}),
    "support_ticket": frozenset({"onTicketCreate", "onTicketUpdate", "onTicketDelete"}),
}
IPARAM_TYPES = frozenset({"text", "paragraph", "dropdown", "email", "number", "phone_number", "date", "url", "radio",
                          "checkbox", "multiselect", "domain", "api_key"})
IPARAM_PRODUCT_TYPES = frozenset({"domain", "api_key"})
HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
TEMPLATE_EXPRESSION = re.compile(r"<%=?(.*?)%>", re.S)
FRESHWORKS_APP_CLIENT = "{{{appclient}}}"
FDK_LINT_RULES = ((r"\beval\s*\(", "uses eval"), (r"\balert\s*\(", "uses alert"), (r"unpkg\.com", "loads from the UNPKG CDN"))


def freshdesk_problems(root: Path) -> list[str]:
    """Every rule below, for the Freshworks app in `root`."""
    manifest, problems = load_json(root / "manifest.json", "manifest.json")
    if not isinstance(manifest, dict):
        return problems or ["manifest.json: must be a JSON object"]
    iparams, iparam_problems = load_json(root / "config" / "iparams.json", "config/iparams.json")
    iparams = iparams if isinstance(iparams, dict) else {}
    return (freshdesk_manifest_problems(root, manifest) + iparam_problems + freshdesk_iparams_problems(iparams)
            + freshdesk_requests_problems(root, manifest, iparams) + freshdesk_source_problems(root, manifest, iparams))


def _modules(manifest: dict[str, Any]) -> dict[str, Any]:
    modules = manifest.get("modules")
    return {k: v for k, v in modules.items() if isinstance(v, dict)} if isinstance(modules, dict) else {}


def declared_handlers(manifest: dict[str, Any]) -> set[str]:
    return {spec["handler"] for module in _modules(manifest).values() for spec in (module.get("events") or {}).values()
            if isinstance(spec, dict) and isinstance(spec.get("handler"), str)}


def freshdesk_manifest_problems(root: Path, manifest: dict[str, Any]) -> list[str]:
    """[F7] platform 3.0 manifest: modules, where each event belongs, locations and their files."""
    problems = []
    if manifest.get("platform-version") != FRESHWORKS_PLATFORM_VERSION:
        problems.append(f"manifest.json: platform-version must be \"3.0\" (found {manifest.get('platform-version')!r})")
    problems += [f"manifest.json: '{key}' is a platform 2.x key, rejected in 3.0" for key in FRESHWORKS_2X_KEYS if key in manifest]
    engines = manifest.get("engines")
    if not (isinstance(engines, dict) and all(isinstance(engines.get(k), str) for k in ("node", "fdk"))):
        problems.append("manifest.json: engines.node and engines.fdk must be set")
    if not _modules(manifest):
        return problems + ["manifest.json: 'modules' must be a non-empty object"]
    for name, module in _modules(manifest).items():
        if name not in FRESHWORKS_MODULE_EVENTS:
            problems.append(f"manifest.json: unknown module '{name}'")
        if name != "common" and "requests" in module:
            problems.append(f"manifest.json: modules.{name}.requests must be declared in modules.common.requests")
        for event, spec in (module.get("events") or {}).items():
            if event not in FRESHWORKS_MODULE_EVENTS.get(name, frozenset()):
                problems.append(f"manifest.json: event '{event}' does not belong in modules.{name}.events")
            if not (isinstance(spec, dict) and isinstance(spec.get("handler"), str) and spec["handler"]):
                problems.append(f"manifest.json: modules.{name}.events.{event} needs a handler")
        for place, spec in (module.get("location") or {}).items():
            for field in ("url", "icon"):
                target = spec.get(field) if isinstance(spec, dict) else None
                if not (isinstance(target, str) and (root / "app" / target).is_file()):
                    problems.append(f"manifest.json: modules.{name}.location.{place}.{field} is not a file in app/")
    return problems


def _iparam_default_problem(spec: dict[str, Any]) -> str | None:
    value, kind = spec["default_value"], spec.get("type")
    if kind == "number" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return "a number"
    if kind in ("text", "paragraph", "email", "url") and not isinstance(value, str):
        return "a string"
    if kind == "checkbox" and not isinstance(value, bool):
        return "true or false"
    return None


def freshdesk_iparams_problems(iparams: dict[str, Any]) -> list[str]:
    """[F7] display_name and type mandatory, known types, boolean flags; [CR] secrets are secure."""
    problems = []
    for name, spec in iparams.items():
        label = f"config/iparams.json: {name}"
        if not isinstance(spec, dict):
            problems.append(f"{label} must be an object")
            continue
        if not (isinstance(spec.get("display_name"), str) and spec["display_name"].strip()):
            problems.append(f"{label} needs a display_name")
        kind = spec.get("type")
        if kind is None:
            problems.append(f"{label} needs a type")
        elif kind not in IPARAM_TYPES:
            problems.append(f"{label} has unknown type '{kind}'")
        problems += [f"{label}: '{flag}' must be true or false" for flag in ("required", "secure")
                     if flag in spec and not isinstance(spec[flag], bool)]
        attributes = spec.get("type_attributes")
        if kind in IPARAM_PRODUCT_TYPES and not (isinstance(attributes, dict) and attributes.get("product")):
            problems.append(f"{label}: type {kind} needs type_attributes.product")
        if SECRET_LOOKING_NAME.search(name) and spec.get("secure") is not True:
            problems.append(f"{label} holds a secret and must be secure")
        if "default_value" in spec and spec.get("secure") is True:
            problems.append(f"{label}: a secure iparam must not have a default_value")
        elif "default_value" in spec and (expected := _iparam_default_problem(spec)):
            problems.append(f"{label}: default_value must be {expected}")
    return problems


def _template_names(text: str, prefix: str) -> set[str]:
    found = set()
    for expression in TEMPLATE_EXPRESSION.findall(text):
        found |= set(re.findall(rf"\b{prefix}\.(\w+)", expression))
    return found


def freshdesk_requests_problems(root: Path, manifest: dict[str, Any], iparams: dict[str, Any]) -> list[str]:
    """[F7] config/requests.json: declared both sides, FQDN host, path from /, iparams exist, secure ones in headers."""
    declared = set((_modules(manifest).get("common") or {}).get("requests") or {})
    path = root / "config" / "requests.json"
    if not path.is_file():
        return ["config/requests.json: missing"] if declared else []
    templates, problems = load_json(path, "config/requests.json")
    if problems:
        return problems
    if not isinstance(templates, dict):
        return ["config/requests.json: must be a JSON object"]
    problems += [f"config/requests.json: template '{name}' is declared in manifest.json but not defined"
                 for name in sorted(declared - set(templates))]
    problems += [f"config/requests.json: template '{name}' is not declared in manifest.json modules.common.requests"
                 for name in sorted(set(templates) - declared)]
    secure = {name for name, spec in iparams.items() if isinstance(spec, dict) and spec.get("secure") is True}
    for name, template in templates.items():
        schema = template.get("schema") if isinstance(template, dict) else None
        where = f"config/requests.json: {name}"
        if not isinstance(schema, dict):
            problems.append(f"{where} needs a schema")
            continue
        if str(schema.get("method", "")).upper() not in HTTP_METHODS:
            problems.append(f"{where}.schema.method {schema.get('method')!r} is not an HTTP method")
        host = schema.get("host")
        bare_host = TEMPLATE_EXPRESSION.sub("x", host) if isinstance(host, str) else ""
        if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?", bare_host):
            problems.append(f"{where}.schema.host {host!r} must be a host name (FQDN) without scheme, port or path")
        if not (isinstance(schema.get("path"), str) and schema["path"].startswith("/")):
            problems.append(f"{where}.schema.path must start with /")
        used = _template_names(json.dumps(schema), "iparam")
        problems += [f"{where} uses iparam.{n}, which config/iparams.json does not define" for n in sorted(used - set(iparams))]
        outside_headers = _template_names(json.dumps({k: v for k, v in schema.items() if k != "headers"}), "iparam")
        problems += [f"{where} puts secure iparam '{n}' outside the headers" for n in sorted(outside_headers & secure)]
    return problems


def _skip_quoted(text: str, start: int) -> int:
    quote, index = text[start], start + 1
    while index < len(text) and text[index] != quote:
        index += 2 if text[index] == "\\" else 1
    return index + 1


def server_exports(source: str) -> set[str]:
    """Property names of the object assigned to `exports` in a Freshworks server.js."""
    start = re.search(r"(?<![\w.$])exports\s*=\s*\{", source)
    if not start:
        return set()
    segments, depth, index, segment_start = [], 1, start.end(), start.end()
    while index < len(source) and depth:
        char = source[index]
        if char in "'\"`":
            index = _skip_quoted(source, index)
            continue
        if source.startswith("//", index) or source.startswith("/*", index):
            end = source.find("\n" if source[index + 1] == "/" else "*/", index + 2)
            index = len(source) if end == -1 else end + (1 if source[index + 1] == "/" else 2)
            continue
        if char in "{([":
            depth += 1
        elif char in "})]":
            depth -= 1
        if (char == "," and depth == 1) or depth == 0:
            segments.append(source[segment_start:index])
            segment_start = index + 1
        index += 1
    names = set()
    for segment in segments:
        segment = re.sub(r"//[^\n]*|/\*.*?\*/", "", segment, flags=re.S)
        match = re.match(r"\s*(?:async\s+)?([A-Za-z_$][\w$]*)\s*(?::|\(|$)", segment)
        if match:
            names.add(match.group(1))
    return names


JS_DECISIONS = re.compile(r"\b(?:if|for|while|case|catch)\b|&&|\|\||\?\?|\?(?![.?])")
MAX_FUNCTION_COMPLEXITY = 7  # fdk lint `complexity` [F7]: a warning that must be fixed before submission
REGEX_CAN_FOLLOW = "(,=:[!&|?{};"


def _literal_end(source: str, start: int) -> int:
    quote, index, in_class = source[start], start + 1, False
    while index < len(source):
        char = source[index]
        if char == "\\":
            index += 2
            continue
        if quote == "/" and char in "[]":
            in_class = char == "["
        elif (char == quote and not in_class) or (char == "\n" and quote != "`"):
            break
        index += 1
    index += 1
    while quote == "/" and index < len(source) and source[index].isalpha():
        index += 1
    return index


def _blank_js_literals(source: str) -> str:
    """The source with comments, strings and regular expressions blanked (lines kept), leaving code tokens."""
    out, index, previous = list(source), 0, ""
    while index < len(source):
        char = source[index]
        if source.startswith("//", index) or source.startswith("/*", index):
            closer = "\n" if source[index + 1] == "/" else "*/"
            end = source.find(closer, index + 2)
            end = len(source) if end == -1 else end + (0 if closer == "\n" else 2)
        elif char in "'\"`" or (char == "/" and (previous in REGEX_CAN_FOLLOW or re.search(r"\breturn\s*$", source[:index]))):
            end, previous = _literal_end(source, index), "x"
        else:
            previous = previous if char.isspace() else char
            index += 1
            continue
        out[index:end] = [c if c == "\n" else " " for c in source[index:end]]
        index = end
    return "".join(out)


def function_complexities(source: str) -> list[tuple[int, int]]:
    """(line, cyclomatic complexity) of each braced function, like ESLint's `complexity` rule (approximate:
    counts if/for/while/case/catch, &&, ||, ??, and ?: in the function's own body)."""
    code = _blank_js_literals(source)
    heads = re.finditer(r"\bfunction\b[^{(]*\([^)]*\)\s*\{|=>\s*\{|^[ \t]*(?:async\s+)?"
                        r"(?!(?:if|for|while|switch|catch|function)\b)[A-Za-z_$][\w$]*\s*\([^)]*\)\s*\{", code, re.M)
    bodies = []
    for head in heads:
        start, depth = head.end() - 1, 0
        for index in range(start, len(code)):
            depth += {"{": 1, "}": -1}.get(code[index], 0)
            if depth == 0:
                bodies.append((code.count("\n", 0, start) + 1, start, index))
                break
    result = []
    for line, start, end in bodies:
        own = list(code[start:end])
        for _, inner_start, inner_end in bodies:
            if start < inner_start and inner_end < end:
                own[inner_start - start:inner_end - start] = " " * (inner_end - inner_start)
        result.append((line, 1 + len(JS_DECISIONS.findall("".join(own)))))
    return result


def freshdesk_source_problems(root: Path, manifest: dict[str, Any], iparams: dict[str, Any]) -> list[str]:
    """[F7] handlers exported, no 2.x request calls, templates exist, fdk lint basics; [CR] privacy, no CDN."""
    problems = []
    handlers = declared_handlers(manifest)
    server = root / "server" / "server.js"
    if handlers and not server.is_file():
        problems.append("server/server.js: missing (manifest.json declares event handlers)")
    elif server.is_file():
        source = _without_comments(server.read_text(encoding="utf-8"))
        exported = server_exports(source)
        problems += [f"server/server.js: does not export handler '{handler}' declared in manifest.json"
                     for handler in sorted(handlers - exported)]
        if re.search(r"console\.\w+\([^;]*\bargs\b|JSON\.stringify\(\s*args\b", source):
            problems.append("server/server.js: logs the handler arguments, which carry ticket text and secrets [CR]")
    templates, _ = load_json(root / "config" / "requests.json", "config/requests.json")
    templates = templates if isinstance(templates, dict) else {}
    secure = {name for name, spec in iparams.items() if isinstance(spec, dict) and spec.get("secure") is True}
    for script in sorted([*root.glob("app/**/*.js"), *root.glob("server/**/*.js")]):
        source, rel = _without_comments(script.read_text(encoding="utf-8")), str(script.relative_to(root))
        problems += [f"{rel}: uses {m}(), removed in platform 3.0; use invokeTemplate"
                     for m in sorted(set(re.findall(r"((?:\$request|client\.request)\.(?:get|post|put|patch|delete))\s*\(", source)))]
        problems += [f"{rel}: invokeTemplate('{n}') names no template in config/requests.json"
                     for n in sorted(set(re.findall(r"invokeTemplate\(\s*['\"]([^'\"]+)['\"]", source)) - set(templates))]
        problems += [f"{rel}: {rule} (fdk lint)" for pattern, rule in FDK_LINT_RULES if re.search(pattern, source)]
        problems += [f"{rel}: function at line {line} has complexity {value}, above {MAX_FUNCTION_COMPLEXITY} (fdk lint)"
                     for line, value in function_complexities(script.read_text(encoding="utf-8"))
                     if value > MAX_FUNCTION_COMPLEXITY]
        if rel.startswith("app/"):
            problems += [f"{rel}: reads secure iparam '{n}' in the browser; secure iparams work only in request templates"
                         for n in sorted(secure) if re.search(rf"iparams\.get\([^)]*['\"]{n}['\"]", source)]
    for page in sorted(root.glob("app/**/*.html")):
        problems += _html_problems(page, str(page.relative_to(root)), {FRESHWORKS_APP_CLIENT})
    return problems
