"""The words CareRoute writes: the agent's internal note and the customer reply, per language.

Texts live in `templates/<language>.toml`. Placeholders are `${name}`, filled by a strict renderer
that fails on any missing value (ConfigError), so a template can never go out with a hole in it.
Text values are HTML-escaped; only values built here from escaped parts go in as HTML. The HTML
uses only tags that Zendesk and Freshdesk render in notes (p, strong, em, ul, li, a, br, span),
links are https only, and the one style is the display:none that hides the job-id marker.
"""

from __future__ import annotations

import html
import string
import tomllib
from functools import lru_cache
from importlib import resources as package_files
from typing import Any, Iterable, Literal, Mapping, Sequence

from ..errors import ConfigError
from ..model import Tier, note_marker
from .country import Basis
from .directory import ResourceEntry, ResourceSet

LANGUAGES: tuple[str, ...] = ("en", "es", "de", "fr", "pt", "it", "nl")
DEFAULT_LANGUAGE = "en"
ReplyVariant = Literal["personal", "third_party", "automatic"]
REPLY_VARIANTS: tuple[ReplyVariant, ...] = ("personal", "third_party", "automatic")
CATEGORY_KEYS = ("distress", "hopelessness", "burden", "passive_ideation", "active_ideation",
                 "self_harm", "third_party", "method", "timing", "preparation", "farewell",
                 "attempt", "history", "bereavement", "other")
# Categories whose matched words are never quoted back (method and means detail, §3.3 / §7.3).
MASKED_CATEGORY_KEYS = frozenset({"method", "attempt"})
MAX_REPLY_SERVICES = 3


# ------------------------------------------------------------------ texts and the strict renderer


def supported_language(tag: str | None) -> str | None:
    """'pt-BR' → 'pt'; None for a language we have no texts for."""
    if not tag:
        return None
    base = tag.strip().replace("_", "-").split("-")[0].lower()
    return base if base in LANGUAGES else None


@lru_cache(maxsize=len(LANGUAGES))
def texts(language: str) -> Mapping[str, Any]:
    """The text tables of one language (unknown → English)."""
    language = supported_language(language) or DEFAULT_LANGUAGE
    name = f"templates/{language}.toml"
    folder = package_files.files(__package__).joinpath("templates")
    raw = folder.joinpath(f"{language}.toml").read_text(encoding="utf-8")
    try:
        return tomllib.loads(raw)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"resources: {name} is not valid TOML: {exc}") from None


def _template(language: str, section: str, key: str) -> str:
    try:
        return texts(language)[section][key]
    except KeyError:
        raise ConfigError(f"resources: templates/{language}.toml has no {section}.{key}") from None


def fill(template: str, *, where: str, text: Mapping[str, object] | None = None,
         markup: Mapping[str, str] | None = None) -> str:
    """Fill `${name}` placeholders: `text` values are escaped, `markup` values are trusted HTML.

    Raises ConfigError naming the template and the placeholder when a value is missing, and when a
    value is given that the template does not use under the same name twice (a typo guard).
    """
    values = {k: html.escape(str(v)) for k, v in (text or {}).items()}
    values.update(markup or {})
    compiled = string.Template(template)
    if not compiled.is_valid():
        raise ConfigError(f"resources: {where}: malformed placeholder")
    missing = [name for name in compiled.get_identifiers() if name not in values]
    if missing:
        raise ConfigError(f"resources: {where}: missing placeholder {', '.join(sorted(missing))}")
    return compiled.substitute(values)


def _t(language: str, section: str, key: str, **text: object) -> str:
    return fill(_template(language, section, key), where=f"{language}/{section}.{key}", text=text)


def _link(url: str | None, label: str | None = None) -> str | None:
    """An <a> for an https URL; None for anything else (no http, mailto, javascript, …)."""
    if not url or not url.lower().startswith("https://"):
        return None
    shown = label if label is not None else url.removeprefix("https://").rstrip("/")
    return f'<a href="{html.escape(url, quote=True)}">{html.escape(shown)}</a>'


# ------------------------------------------------------------------ resources as HTML list items


def _entry_item(entry: ResourceEntry, language: str, *, for_agent: bool = False) -> str:
    parts: list[str] = []
    if entry.phone:
        parts.append(_t(language, "channel", "call", number=entry.phone))
    if entry.sms and entry.sms_keyword:
        parts.append(_t(language, "channel", "text_keyword", number=entry.sms,
                        keyword=entry.sms_keyword))
    elif entry.sms:
        parts.append(_t(language, "channel", "text", number=entry.sms))
    if entry.whatsapp:
        parts.append(_t(language, "channel", "whatsapp", number=entry.whatsapp))
    chat = _link(entry.chat_url, _template(language, "channel", "chat"))
    if chat:
        parts.append(chat)
    elif entry.url:
        site = _link(entry.url)
        if site:
            parts.append(site)
    if entry.always_open:
        parts.append(_t(language, "channel", "always_open"))
    elif entry.hours:
        parts.append(_t(language, "channel", "hours", hours=entry.hours))
    elif for_agent and not entry.custom:
        # The agent should know a line may be closed before suggesting it.
        parts.append(_t(language, "channel", "hours_unconfirmed"))
    service = f"<strong>{html.escape(entry.service)}</strong>"
    return f"<li>{service}: {' · '.join(parts)}</li>" if parts else f"<li>{service}</li>"


def _fallback_items(resources: ResourceSet, language: str) -> list[str]:
    international = _link(resources.international.url) or html.escape(resources.international.url)
    return [
        "<li>" + _t(language, "channel", "emergency", number=resources.emergency_number) + "</li>",
        "<li>" + fill(_template(language, "channel", "international"),
                      where=f"{language}/channel.international", markup={"link": international})
        + "</li>",
    ]


def reply_services(resources: ResourceSet) -> tuple[ResourceEntry, ...]:
    """The services named in a customer reply: two, or three when two give fewer than two channels."""
    chosen = list(resources.local_channels[:2])

    def channels(entries: Iterable[ResourceEntry]) -> int:
        return sum(bool(e.phone) + bool(e.sms) + bool(e.whatsapp) + bool(e.chat_url) for e in entries)

    if channels(chosen) < 2 and len(resources.local_channels) > 2:
        chosen.append(resources.local_channels[2])
    return tuple(chosen[:MAX_REPLY_SERVICES])


# ------------------------------------------------------------------ customer reply


def render_reply(language: str, resources: ResourceSet, *, agent_name: str | None = None,
                 variant: ReplyVariant = "personal") -> str:
    """The customer reply (HTML) in `language` (unknown → English).

    `personal` is the agent's reply (macro / canned response / suggestion in the note);
    `third_party` is for someone worried about another person; `automatic` is the optional
    imminent auto-reply, which says that it is automatic.
    """
    language = supported_language(language) or DEFAULT_LANGUAGE
    if variant not in REPLY_VARIANTS:
        raise ConfigError(f"resources: unknown reply variant {variant!r}")
    services = reply_services(resources)
    if services:
        items = [_entry_item(e, language) for e in services]
    else:
        items = _fallback_items(resources, language)[1:]  # the international directory
    international = _link(resources.international.url) or html.escape(resources.international.url)
    signature = agent_name.strip() if agent_name and agent_name.strip() else \
        _template(language, "reply", "signature")
    body = fill(
        _template(language, "reply", variant),
        where=f"{language}/reply.{variant}",
        text={"emergency_number": resources.emergency_number, "signature": signature},
        markup={"channels": "<ul>" + "".join(items) + "</ul>", "international_link": international},
    )
    return body.strip()


# ------------------------------------------------------------------ agent note


def category_key(category: str) -> str:
    """Map a screener category id to the plain-words key the texts have."""
    c = category.lower().replace("-", "_")
    checks = (
        ("third", "third_party"), ("attempt", "attempt"), ("in_progress", "attempt"),
        ("farewell", "farewell"), ("goodbye", "farewell"), ("final", "preparation"),
        ("arrangement", "preparation"), ("prepar", "preparation"), ("timing", "timing"),
        ("time", "timing"), ("plan", "method"), ("method", "method"), ("means", "method"),
        ("self_harm", "self_harm"), ("selfharm", "self_harm"), ("injur", "self_harm"),
        ("passive", "passive_ideation"), ("wish", "passive_ideation"),
        ("ideation", "active_ideation"), ("suicid", "active_ideation"),
        ("burden", "burden"), ("isolat", "burden"), ("alone", "burden"),
        ("hopeless", "hopelessness"), ("trapped", "hopelessness"), ("distress", "distress"),
        ("exhaust", "distress"), ("crying", "distress"), ("emoji", "distress"),
        ("histor", "history"), ("past", "history"), ("bereave", "bereavement"),
        ("grief", "bereavement"), ("loss", "bereavement"),
    )
    for needle, key in checks:
        if needle in c:
            return key
    return "other"


def render_note(*, language: str, tier: Tier, score: float, categories: Sequence[str],
                resources: ResourceSet, job_id: str, phrases: Sequence[str] = (),
                masked: bool = False, flags: Iterable[str] = (), basis: Basis = "unknown",
                reply_html: str | None = None, macro_id: int | None = None,
                protocol_url: str | None = None, staff_support_url: str | None = None) -> str:
    """The internal note (HTML) in the agent's `language`.

    `phrases` are the customer's own words that fired (already chosen and shortened; escaped here);
    `masked` says that some matched words were left out on purpose (method or means detail).
    """
    lang = supported_language(language) or DEFAULT_LANGUAGE
    if tier == "none":
        raise ConfigError("resources: no note is written for tier none")
    out: list[str] = [f"<p><em>{_t(lang, 'note', 'content_note')}</em></p>"]
    heading = _t(lang, "note", "heading", tier=_template(lang, "tier", tier))
    out.append(f"<p><strong>{heading}</strong> ({_t(lang, 'note', 'score', score=f'{score:.2f}')})</p>")

    keys = list(dict.fromkeys(category_key(c) for c in categories)) or ["other"]
    reasons = ", ".join(html.escape(_template(lang, "category", k)) for k in keys)
    colon = _t(lang, "note", "colon")
    why = f"<strong>{_t(lang, 'note', 'why')}{colon}</strong> {reasons}."
    opening, closing = _t(lang, "note", "quote_open"), _t(lang, "note", "quote_close")
    quoted = [f"{opening}{html.escape(p)}{closing}" for p in phrases]
    if masked:
        quoted.append(_t(lang, "note", "masked"))
    if quoted:
        why += f"<br>{_t(lang, 'note', 'phrases')}{colon} {', '.join(quoted)}"
    out.append(f"<p>{why}</p>")
    flag_words = [html.escape(_template(lang, "flag", f)) for f in sorted(flags)
                  if f in texts(lang)["flag"]]
    if flag_words:
        context = _t(lang, "note", "context")
        out.append(f"<p><strong>{context}{colon}</strong> {', '.join(flag_words)}</p>")

    protocol = _link(protocol_url)
    steps = [
        _t(lang, "note", "step_read"),
        _t(lang, "note", "step_reply"),
        _t(lang, "note", "step_resources"),
        _t(lang, "note", "step_emergency", emergency_number=resources.emergency_number),
        fill(_template(lang, "note", "step_protocol_link"), where=f"{lang}/note.step_protocol_link",
             markup={"link": protocol}) if protocol else _t(lang, "note", "step_protocol"),
        _t(lang, "note", "step_handover"),
    ]
    out.append(f"<p><strong>{_t(lang, 'note', 'todo')}</strong></p>")
    out.append("<ul>" + "".join(f"<li>{s}</li>" for s in steps) + "</ul>")

    where = (_t(lang, "note", "basis_unknown") if resources.country is None
             else _t(lang, "note", f"basis_{basis if basis != 'unknown' else 'default'}",
                     country=resources.country))
    items = [_entry_item(e, lang, for_agent=True) for e in (*resources.entries, *resources.custom)]
    items += _fallback_items(resources, lang)
    out.append(f"<p><strong>{_t(lang, 'note', 'resources')}</strong> ({where})</p>")
    out.append("<ul>" + "".join(items) + "</ul>")

    if reply_html:
        suggestion = f"<strong>{_t(lang, 'note', 'suggested_reply')}</strong>"
        if macro_id is not None:
            suggestion += "<br>" + _t(lang, "note", "macro", macro_id=macro_id)
        out.append(f"<p>{suggestion}</p>")
        out.append(reply_html)
    elif macro_id is not None:
        out.append(f"<p>{_t(lang, 'note', 'macro', macro_id=macro_id)}</p>")

    wellbeing = f"<em>{_t(lang, 'note', 'wellbeing')}</em>"
    support = _link(staff_support_url)
    if support:
        wellbeing += "<br>" + fill(_template(lang, "note", "staff_support"),
                                   where=f"{lang}/note.staff_support", markup={"link": support})
    out.append(f"<p>{wellbeing}</p>")
    out.append(f'<span style="display:none">{html.escape(note_marker(job_id))}</span>')
    return "\n".join(out)
