"""Crisis-resources directory, emergency numbers, country resolution and tenant entries."""

from __future__ import annotations

import json
import re
import tomllib
from importlib import resources as package_files

import pytest

from plugin.config import tenant_from_dict
from plugin.resources import (
    ResourceSet,
    country_from_locale,
    load_directory,
    render_reply,
    resolve_country,
    resolve_country_with_basis,
    resources_for,
)

DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")


def make_tenant(**extra):
    base = {"id": "acme", "vendor": "zendesk", "subdomain": "acme", "webhook_secret": "s",
            "auth": {"kind": "api_token", "email": "bot@acme.example", "token": "t"}}
    return tenant_from_dict({**base, **extra})


def timezone_table() -> dict:
    raw = package_files.files("plugin.resources").joinpath("timezones.json").read_text("utf-8")
    return json.loads(raw)


def known_country_codes() -> set[str]:
    """ISO codes that own a time zone: every real country in the directory has one."""
    return {c for c in timezone_table()["iana"].values() if c}


# ------------------------------------------------------------------ directory data


def test_directory_covers_at_least_30_countries_with_confirmed_entries():
    directory = load_directory()
    assert len(directory.countries) >= 30
    for code in ("US", "GB", "DE", "FR", "ES", "IT", "NL", "BR", "MX", "AR", "JP", "IN"):
        assert code in directory.countries, code


def test_every_entry_has_the_required_fields_and_https_links():
    codes = known_country_codes()
    for entry in load_directory().entries:
        assert entry.country in codes, entry.service
        assert entry.service.strip()
        assert entry.status in ("confirmed", "unconfirmed")
        assert entry.source_url and entry.source_url.startswith("https://"), entry.service
        for link in (entry.chat_url, entry.url):
            assert link is None or link.startswith("https://"), (entry.service, link)
        assert entry.verified is None or DATE.match(entry.verified), entry.verified
        if entry.status == "confirmed":
            assert entry.has_channel, f"{entry.service} has no way to reach it"
        if entry.always_open:
            assert entry.hours == "24/7", entry.service


def test_directory_file_has_no_unknown_keys_and_a_valid_meta_table():
    raw = package_files.files("plugin.resources").joinpath("directory.toml").read_text("utf-8")
    data = tomllib.loads(raw)
    assert data["meta"]["international_url"] == "https://findahelpline.com"
    assert len(data["entry"]) == len(load_directory().entries)


def test_unconfirmed_entries_are_kept_but_excluded_by_default():
    directory = load_directory()
    unconfirmed = [e for e in directory.entries if e.status == "unconfirmed"]
    assert {"SOS Amitié", "Lifeline Aotearoa", "Samaritans Onlus"} <= {e.service for e in unconfirmed}
    tenant = make_tenant()
    for entry in unconfirmed:
        shown = resources_for(entry.country, tenant)
        assert entry not in shown.entries
        assert entry in resources_for(entry.country, tenant, include_unconfirmed=True).entries


def test_resources_are_never_blank():
    tenant = make_tenant()
    for country in [*sorted(load_directory().countries), None, "ZZ", "TR"]:
        shown = resources_for(country, tenant)
        assert shown.emergency_number.strip(), country
        assert shown.international.url == "https://findahelpline.com"
        assert all(e.country == country and e.status == "confirmed" for e in shown.entries)


def test_emergency_numbers_by_country_with_defaults():
    tenant = make_tenant()
    assert resources_for("US", tenant).emergency_number == "911"
    assert resources_for("GB", tenant).emergency_number == "999"
    assert resources_for("DE", tenant).emergency_number == "112"
    assert resources_for("AU", tenant).emergency_number == "000"
    assert resources_for(None, tenant).emergency_number == "112 / 911"
    assert resources_for("ZZ", tenant).emergency_number == "112 / 911"


def test_a_country_only_sees_its_own_lines():
    tenant = make_tenant()
    canada = resources_for("CA", tenant)
    assert canada.entries and all(e.country == "CA" for e in canada.entries)
    assert "988 Suicide & Crisis Lifeline" not in {e.service for e in canada.entries}
    lowercase = resources_for("gb", tenant)
    assert lowercase.country == "GB" and lowercase.entries


def test_local_channels_put_always_open_services_first():
    italy = resources_for("IT", make_tenant())
    assert italy.local_channels and italy.local_channels[0].service == "Telefono Amico Italia"
    japan = resources_for("JP", make_tenant()).local_channels
    assert japan[0].always_open and not japan[-1].always_open


# ------------------------------------------------------------------ tenant entries


def test_tenant_entries_for_every_country_and_for_one_country():
    tenant = make_tenant(resources=[
        {"country": "*", "service": "Acme EAP", "phone": "0800 000 000"},
        {"country": "DE", "service": "Acme Krisenprotokoll", "url": "https://intranet.acme/de"},
    ])
    germany = resources_for("DE", tenant)
    assert {e.service for e in germany.custom} == {"Acme EAP", "Acme Krisenprotokoll"}
    assert any(e.service == "TelefonSeelsorge" for e in germany.entries)
    assert not germany.replaced
    france = resources_for("FR", tenant)
    assert {e.service for e in france.custom} == {"Acme EAP"}
    unknown = resources_for(None, tenant)
    assert {e.service for e in unknown.custom} == {"Acme EAP"}
    assert all(e.custom for e in germany.custom)


def test_tenant_override_replaces_the_directory_for_that_country_only():
    tenant = make_tenant(resources=[
        {"country": "NL", "service": "Acme Partner Line", "phone": "0800 123 4567",
         "hours": "24/7", "replaces_directory": True},
    ])
    netherlands = resources_for("NL", tenant)
    assert netherlands.replaced
    assert [e.service for e in netherlands.entries] == ["Acme Partner Line"]
    assert netherlands.entries[0].always_open
    assert netherlands.custom == ()
    belgium = resources_for("BE", tenant)
    assert not belgium.replaced and "Acme Partner Line" not in {e.service for e in belgium.entries}


def test_customer_reply_names_replacements_but_never_staff_entries():
    tenant = make_tenant(resources=[
        {"country": "*", "service": "Acme EAP", "phone": "0800 000 000"},
        {"country": "NL", "service": "Acme Partner Line", "phone": "0800 123 4567",
         "replaces_directory": True},
    ])
    reply = render_reply("nl", resources_for("NL", tenant))
    assert "Acme Partner Line" in reply and "0800 123 4567" in reply
    assert "Acme EAP" not in reply and "0800 000 000" not in reply


def test_resource_set_is_frozen():
    shown = resources_for("GB", make_tenant())
    assert isinstance(shown, ResourceSet)
    with pytest.raises(AttributeError):
        shown.country = "FR"  # type: ignore[misc]


# ------------------------------------------------------------------ country resolution


@pytest.mark.parametrize("locale, expected", [
    ("en-GB", "GB"), ("pt_BR", "BR"), ("pt-br", "BR"), ("de-AT", "AT"), ("zh-Hant-TW", "TW"),
    ("fr_CA.UTF-8", "CA"), ("es-419", None), ("en", None), ("zh-Hant", None), ("", None), (None, None),
])
def test_country_from_locale(locale, expected):
    assert country_from_locale(locale) == expected


@pytest.mark.parametrize("time_zone, expected", [
    ("Europe/Berlin", "DE"), ("America/Sao_Paulo", "BR"), ("Asia/Calcutta", "IN"),
    ("US/Eastern", "US"), ("Europe/Kiev", "UA"), ("Europe/Amsterdam", "NL"), ("Iceland", "IS"),
    ("Eastern Time (US & Canada)", "US"), ("Pacific Time (US & Canada)", "US"),
    ("Brisbane", "AU"), ("Berlin", "DE"), ("Bern", "CH"), ("Brasilia", "BR"), ("Hanoi", "VN"),
    ("Abu Dhabi", "AE"), ("Quito", "EC"), ("Atlantic Time (Canada)", "CA"), ("berlin", "DE"),
    ("UTC", None), ("Etc/UTC", None), ("Central America", None), ("Nowhere/Special", None),
])
def test_country_from_time_zone(time_zone, expected):
    assert resolve_country(None, time_zone, None) == expected


def test_resolution_order_locale_then_time_zone_then_default():
    assert resolve_country("en-GB", "Europe/Berlin", "FR") == "GB"
    assert resolve_country("es-419", "America/Mexico_City", "FR") == "MX"
    assert resolve_country("en", "UTC", "FR") == "FR"
    assert resolve_country(None, None, None) is None
    assert resolve_country_with_basis("en-GB", None, None).basis == "locale"
    assert resolve_country_with_basis("en", "Berlin", None).basis == "time_zone"
    assert resolve_country_with_basis("en", None, "FR").basis == "default"
    assert resolve_country_with_basis(None, None, None).basis == "unknown"


def test_every_helpdesk_display_name_is_mapped():
    table = timezone_table()
    friendly = table["friendly"]
    assert len(friendly) >= 150
    regions = {name for name, code in friendly.items() if code is None}
    assert regions == {"International Date Line West", "Central America", "Mid-Atlantic", "UTC",
                       "West Central Africa"}
    for name, code in friendly.items():
        assert code is None or re.fullmatch(r"[A-Z]{2}", code), name
    assert all(re.fullmatch(r"[A-Z]{2}", code) for code in table["iana"].values())
