"""Which country's crisis lines to show: from the requester's locale, time zone or the tenant default.

The time-zone table (`timezones.json`) maps IANA names (tzdata zone.tab plus backward links) and the
display names Zendesk and Freshdesk use (Rails' "Eastern Time (US & Canada)", "Berlin", …) to ISO
3166 alpha-2 codes. Names that stand for a region or for UTC map to no country.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources as package_files
from typing import Literal

TIMEZONES_FILE = "timezones.json"
Basis = Literal["locale", "time_zone", "default", "unknown"]

# A BCP 47 / POSIX region subtag: two letters (en-GB, pt_BR, zh-Hant-TW). "es-419" has a numeric
# UN M.49 region (Latin America), which names no single country.
_REGION = re.compile(r"^[A-Za-z]{2}$")
_SCRIPT = re.compile(r"^[A-Za-z]{4}$")


@dataclass(frozen=True, slots=True)
class CountryGuess:
    country: str | None
    basis: Basis


@lru_cache(maxsize=1)
def _time_zone_tables() -> tuple[dict[str, str | None], dict[str, str | None]]:
    raw = package_files.files(__package__).joinpath(TIMEZONES_FILE).read_text(encoding="utf-8")
    data = json.loads(raw)
    iana = {name.lower(): code for name, code in data["iana"].items()}
    friendly = {name.lower(): code for name, code in data["friendly"].items()}
    return iana, friendly


def country_from_locale(locale: str | None) -> str | None:
    """Region of a locale tag: en-GB → GB, pt_BR → BR, zh-Hant-TW → TW, es-419 / en → None."""
    if not locale:
        return None
    tag = locale.strip().split(".")[0].split("@")[0]  # POSIX: pt_BR.UTF-8@euro
    parts = re.split(r"[-_]", tag)
    if len(parts) < 2:
        return None
    rest = parts[1:]
    if _SCRIPT.match(rest[0]) and len(rest) > 1:
        rest = rest[1:]
    region = rest[0]
    return region.upper() if _REGION.match(region) else None


def country_from_time_zone(time_zone: str | None) -> str | None:
    """Country of an IANA name (Europe/Berlin) or a helpdesk display name ("Brisbane")."""
    if not time_zone:
        return None
    iana, friendly = _time_zone_tables()
    key = time_zone.strip().lower()
    if key in iana:
        return iana[key]
    return friendly.get(key)


def resolve_country_with_basis(locale: str | None, time_zone: str | None,
                               default_country: str | None) -> CountryGuess:
    """Locale region, else time zone, else the tenant's default; the basis says which one."""
    from_locale = country_from_locale(locale)
    if from_locale:
        return CountryGuess(from_locale, "locale")
    from_zone = country_from_time_zone(time_zone)
    if from_zone:
        return CountryGuess(from_zone, "time_zone")
    if default_country:
        return CountryGuess(default_country.upper(), "default")
    return CountryGuess(None, "unknown")


def resolve_country(locale: str | None, time_zone: str | None,
                    default_country: str | None) -> str | None:
    """ISO 3166 alpha-2 code for the requester, or None (show the international fallback)."""
    return resolve_country_with_basis(locale, time_zone, default_country).country
