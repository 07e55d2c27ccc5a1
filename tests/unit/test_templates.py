"""Note and reply texts: complete in every language, safe words, simple HTML, strict placeholders."""

from __future__ import annotations

import re
import string
from html.parser import HTMLParser
from typing import Iterator

import pytest

from plugin.config import tenant_from_dict
from plugin.errors import ConfigError
from plugin.model import ACTION_TIERS, find_note_markers
from plugin.resources import (
    LANGUAGES,
    REPLY_VARIANTS,
    category_key,
    load_directory,
    render_note,
    render_reply,
    resources_for,
)
from plugin.resources.render import CATEGORY_KEYS, fill, reply_services, texts

COUNTRIES = (*sorted(load_directory().countries), None, "ZZ")
TENANT = tenant_from_dict({
    "id": "acme", "vendor": "freshdesk", "domain": "acme.freshdesk.com", "webhook_secret": "s",
    "auth": {"kind": "api_key", "key": "k"},
    "resources": [{"country": "*", "service": "Acme EAP", "phone": "0800 000 000",
                   "url": "https://eap.acme.example"}],
})

# ------------------------------------------------------------------ safe-messaging word lists
# Matched as whole words, case-insensitively, in every language's texts and in rendered output.
COMMITTED = [
    "committed suicide", "commit suicide", "successful attempt", "failed attempt",
    "cometió suicidio", "cometer suicidio", "selbstmord", "freitod", "selbstmord begangen",
    "commis un suicide", "commettre un suicide", "cometeu suicídio", "cometer suicídio",
    "commesso suicidio", "commettere suicidio", "zelfmoord gepleegd", "zelfmoord plegen",
]
METHOD_WORDS = [
    # en
    "pill", "pills", "tablet", "tablets", "overdose", "paracetamol", "acetaminophen", "tylenol",
    "ibuprofen", "advil", "excedrin", "aspirin", "mg", "rope", "noose", "ligature", "hang",
    "hanging", "gun", "firearm", "revolver", "pistol", "shoot", "knife", "blade", "razor", "cut",
    "cutting", "bridge", "jump", "roof", "cliff", "poison", "antifreeze", "bleach", "syringe",
    "drown", "train tracks",
    # es, de, fr, pt, it, nl
    "pastilla", "pastillas", "sobredosis", "cuerda", "pistola", "cuchillo", "navaja", "puente",
    "veneno", "ahorcarse", "tabletten", "pillen", "überdosis", "strick", "seil", "waffe",
    "pistole", "messer", "klinge", "brücke", "gift", "erhängen", "comprimés", "cachets",
    "médicaments", "surdose", "corde", "pistolet", "couteau", "lame", "pont", "poison", "pendre",
    "comprimidos", "remédios", "corda", "faca", "lâmina", "ponte", "pillole", "compresse",
    "farmaci", "coltello", "lama", "veleno", "impiccarsi", "overdosis", "touw", "pistool", "brug",
    "ophangen",
]
CONFIDENTIALITY = [
    "confidential", "confidentiality", "between us", "won't tell", "no one will know", "secret",
    "anonymous", "vertraulich", "anonym", "confidencial", "anónimo", "confidentiel", "anonyme",
    "confidenziale", "riservato", "anonimo", "vertrouwelijk", "anoniem", "sigilo", "geheim",
]
DIAGNOSIS = [
    "depressed", "depression", "depressive", "bipolar", "disorder", "mental illness",
    "mentally ill", "psychosis", "psychotic", "schizophrenia", "borderline", "suicidal customer",
    "suicidal person", "depresión", "deprimido", "trastorno", "enfermedad mental", "depressiv",
    "störung", "psychisch krank", "dépression", "dépressif", "maladie mentale", "depressão",
    "transtorno", "doença mental", "depressione", "depresso", "disturbo", "malattia mentale",
    "depressie", "depressief", "stoornis", "psychisch ziek",
]
BANNED = {"committed": COMMITTED, "method": METHOD_WORDS, "confidentiality": CONFIDENTIALITY,
          "diagnosis": DIAGNOSIS}
_BANNED_PATTERNS = {
    kind: re.compile(r"(?<!\w)(" + "|".join(re.escape(w) for w in words) + r")(?!\w)", re.I)
    for kind, words in BANNED.items()
}

# "We will still take care of your request" in each language.
KEEPS_SOLVING = {
    "en": "still take care of your request", "es": "Seguiremos ocupándonos de tu solicitud",
    "de": "Um Ihr Anliegen kümmern wir uns weiterhin",
    "fr": "Nous continuons de nous occuper de votre demande",
    "pt": "Continuamos cuidando da sua solicitação",
    "it": "Continueremo a occuparci della Sua richiesta",
    "nl": "We blijven je vraag gewoon voor je afhandelen",
}


def banned_words(text: str) -> dict[str, list[str]]:
    found = {kind: pattern.findall(text) for kind, pattern in _BANNED_PATTERNS.items()}
    return {kind: words for kind, words in found.items() if words}


def all_strings(value) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from all_strings(item)


# ------------------------------------------------------------------ HTML check


class NoteHTMLChecker(HTMLParser):
    """Fails on anything a helpdesk note might not render safely."""

    ALLOWED = {"p", "strong", "em", "ul", "li", "a", "br", "span"}
    VOID = {"br"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.hidden_text: list[str] = []
        self._in_hidden = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag not in self.ALLOWED:
            self.errors.append(f"tag {tag}")
        if tag == "a":
            if set(attrs) != {"href"} or not (attrs["href"] or "").startswith("https://"):
                self.errors.append(f"link {attrs}")
        elif tag == "span":
            if attrs and attrs != {"style": "display:none"}:
                self.errors.append(f"span {attrs}")
            self._in_hidden = attrs == {"style": "display:none"}
        elif attrs:
            self.errors.append(f"attributes on {tag}: {attrs}")
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(f"misnested </{tag}>")
        if tag == "span":
            self._in_hidden = False

    def handle_data(self, data):
        if self._in_hidden:
            self.hidden_text.append(data)

    def close(self):
        super().close()
        if self.stack:
            self.errors.append(f"unclosed {self.stack}")


def check_html(markup: str) -> NoteHTMLChecker:
    checker = NoteHTMLChecker()
    checker.feed(markup)
    checker.close()
    assert not checker.errors, checker.errors
    assert "$" not in markup, "a placeholder was left in the output"
    return checker


def note_for(language: str, tier: str, country: str | None, **overrides) -> str:
    resources = resources_for(country, TENANT)
    values = dict(
        language=language, tier=tier, score=0.91, categories=("hopelessness", "active_ideation"),
        phrases=("I can't go on",), masked=True, flags={"third_party"}, resources=resources,
        basis="locale" if country else "unknown",
        reply_html=render_reply(language, resources), macro_id=360001, job_id="job-42",
        protocol_url="https://intranet.acme.example/protocol",
        staff_support_url="https://eap.acme.example",
    )
    values.update(overrides)
    return render_note(**values)


# ------------------------------------------------------------------ texts themselves


def test_every_language_has_the_same_keys_and_placeholders_as_english():
    english = texts("en")

    def shape(table, prefix=""):
        out = {}
        for key, value in table.items():
            if isinstance(value, dict):
                out.update(shape(value, f"{prefix}{key}."))
            elif key != "language":
                out[f"{prefix}{key}"] = set(string.Template(value).get_identifiers())
        return out

    expected = shape(english)
    assert set(texts("en")["category"]) == set(CATEGORY_KEYS)
    for language in LANGUAGES:
        assert texts(language)["language"] == language
        assert shape(texts(language)) == expected, language


@pytest.mark.parametrize("language", LANGUAGES)
def test_template_sources_use_safe_words(language):
    for text in all_strings(dict(texts(language))):
        assert banned_words(text) == {}, (language, text[:80])


def test_the_word_lists_catch_what_they_should():
    assert banned_words("he committed suicide")["committed"]
    assert banned_words("take these Pills")["method"]
    assert banned_words("this stays between us")["confidentiality"]
    assert banned_words("you seem depressed")["diagnosis"]
    assert banned_words("a shortcut to the bridges page in mg") == {"method": ["mg"]}


# ------------------------------------------------------------------ replies


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_reply_renders_for_every_variant_and_country(language):
    for variant in REPLY_VARIANTS:
        for country in COUNTRIES:
            resources = resources_for(country, TENANT)
            reply = render_reply(language, resources, variant=variant)
            check_html(reply)
            assert banned_words(reply) == {}, (language, variant, country)
            assert resources.emergency_number in reply
            assert 'href="https://findahelpline.com"' in reply
            assert KEEPS_SOLVING[language] in reply
            assert "Acme EAP" not in reply  # staff resources stay in the agent's note
            for entry in reply_services(resources):
                assert entry.service.replace("&", "&amp;") in reply
                if entry.phone:
                    assert entry.phone in reply


def test_replies_give_two_local_channels_where_the_country_has_them():
    for country in sorted(load_directory().countries):
        resources = resources_for(country, TENANT)
        available = sum(bool(e.phone) + bool(e.sms) + bool(e.whatsapp) + bool(e.chat_url)
                        for e in resources.local_channels)
        chosen = reply_services(resources)
        given = sum(bool(e.phone) + bool(e.sms) + bool(e.whatsapp) + bool(e.chat_url)
                    for e in chosen)
        assert given >= min(2, available), country
        assert 1 <= len(chosen) <= 3, country


@pytest.mark.parametrize("language", LANGUAGES)
def test_automatic_reply_says_it_is_automatic_and_the_personal_one_does_not(language):
    resources = resources_for("FR", TENANT)
    automatic = re.compile(r"autom[aá]ti", re.I)
    assert automatic.search(render_reply(language, resources, variant="automatic"))
    assert not automatic.search(render_reply(language, resources, variant="personal"))


def test_reply_uses_local_lines_and_escapes_the_agent_name():
    reply = render_reply("de", resources_for("DE", TENANT), agent_name="<b>Jo</b> & Co")
    assert "TelefonSeelsorge" in reply and "0800 111 0 111" in reply
    assert "&lt;b&gt;Jo&lt;/b&gt; &amp; Co" in reply and "<b>" not in reply
    assert "Ihr Support-Team" not in reply
    assert "Ihr Support-Team" in render_reply("de", resources_for("DE", TENANT))


def test_unknown_country_reply_points_to_the_international_directory():
    reply = render_reply("en", resources_for(None, TENANT))
    assert "112 / 911" in reply
    assert reply.count('href="https://findahelpline.com"') == 2


def test_unknown_language_falls_back_to_english():
    resources = resources_for("GB", TENANT)
    assert render_reply("ja", resources) == render_reply("en", resources)
    assert render_reply("pt-BR", resources) == render_reply("pt", resources)


def test_unknown_variant_is_refused():
    with pytest.raises(ConfigError):
        render_reply("en", resources_for("GB", TENANT), variant="cheerful")  # type: ignore[arg-type]


# ------------------------------------------------------------------ notes


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_note_renders_for_every_tier_and_country(language):
    for tier in ACTION_TIERS:
        for country in COUNTRIES:
            note = note_for(language, tier, country)
            checker = check_html(note)
            assert banned_words(note) == {}, (language, tier, country)
            assert find_note_markers(note) == {"job-42"}
            assert "careroute-job:job-42" in "".join(checker.hidden_text)
            assert resources_for(country, TENANT).emergency_number in note
            assert "Acme EAP" in note and "360001" in note
            assert "https://intranet.acme.example/protocol" in note
            assert 'href="https://eap.acme.example"' in note
            assert texts(language)["tier"][tier] in note


def test_note_shows_phrases_escaped_and_says_when_some_are_held_back():
    note = note_for("en", "high", "GB", phrases=("<script>x</script>", "no way out"),
                    masked=True)
    check_html(note)
    assert "&lt;script&gt;x&lt;/script&gt;" in note and "<script>" not in note
    assert "“no way out”" in note
    assert "(details not repeated here)" in note
    plain = note_for("en", "high", "GB", phrases=("no way out",), masked=False)
    assert "details not repeated" not in plain


def test_note_without_optional_parts_still_complete():
    note = note_for("fr", "concern", None, reply_html=None, macro_id=None, protocol_url=None,
                    staff_support_url=None, flags=set(), phrases=(), masked=False)
    check_html(note)
    assert "Suivre la procédure de l'entreprise." in note
    assert "pays inconnu" in note
    assert "Réponse suggérée" not in note and "Macro" not in note


def test_note_never_links_anything_but_https():
    note = note_for("en", "high", "GB", protocol_url="javascript:alert(1)",
                    staff_support_url="http://eap.example")
    check_html(note)
    assert "javascript" not in note and "http://" not in note


def test_note_warns_when_a_lines_hours_are_not_confirmed_but_the_reply_does_not():
    denmark = resources_for("DK", TENANT)
    note = note_for("en", "high", "DK")
    assert "Livslinien</strong>: call 70 201 201 · hours not confirmed" in note
    assert "Acme EAP</strong>: call 0800 000 000 · <a" in note  # a tenant's own line: no warning
    assert "not confirmed" not in render_reply("en", denmark)
    assert "24/7" in note_for("en", "high", "GB")


def test_note_for_tier_none_is_refused():
    with pytest.raises(ConfigError):
        note_for("en", "none", "GB")


def test_note_is_short_enough_to_scan():
    note = note_for("en", "imminent", "US", reply_html=None)
    words = re.sub(r"<[^>]+>", " ", note).split()
    assert len(words) < 200, len(words)
    # What the agent needs first (tier, why, checklist) comes before the resources, in few words.
    first_part = words[:words.index("Resources")]
    assert len(first_part) < 110, len(first_part)


@pytest.mark.parametrize("category, key", [
    ("distress", "distress"), ("hopelessness", "hopelessness"), ("burden_isolation", "burden"),
    ("passive_ideation", "passive_ideation"), ("active_ideation", "active_ideation"),
    ("self_harm", "self_harm"), ("third_party_ideation", "third_party"),
    ("third_party_attempt", "third_party"), ("plan_method_means", "method"), ("timing", "timing"),
    ("final_arrangements", "preparation"), ("preparation", "preparation"),
    ("farewell", "farewell"), ("attempt_in_progress", "attempt"), ("something_new", "other"),
    ("burden_isolation", "burden"), ("bereavement", "bereavement"), ("history", "history"),
    ("preparation_final_arrangements", "preparation"),
])
def test_category_ids_map_to_plain_words(category, key):
    assert category_key(category) == key


# The screener's categories (plugin/screening/rulebook.py CATEGORIES when this was written).
SCREENER_CATEGORIES = (
    "distress", "hopelessness", "burden_isolation", "bereavement", "history",
    "passive_ideation", "active_ideation", "self_harm", "third_party",
    "plan_method_means", "timing", "preparation_final_arrangements", "farewell",
    "attempt_in_progress",
)


def test_every_screener_category_has_its_own_plain_words():
    keys = [category_key(c) for c in SCREENER_CATEGORIES]
    assert "other" not in keys and len(set(keys)) == len(keys)


# ------------------------------------------------------------------ the strict renderer


def test_fill_refuses_a_missing_placeholder():
    with pytest.raises(ConfigError) as caught:
        fill("Call ${number} now", where="test/x", text={})
    assert "number" in str(caught.value) and "test/x" in str(caught.value)


def test_fill_refuses_a_malformed_placeholder():
    with pytest.raises(ConfigError):
        fill("Call ${number now", where="test/x", text={"number": "1"})


def test_fill_escapes_text_and_keeps_markup():
    out = fill("${a} ${b}", where="t", text={"a": "<i>&"}, markup={"b": "<em>x</em>"})
    assert out == "&lt;i&gt;&amp; <em>x</em>"
