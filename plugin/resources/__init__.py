"""Crisis resources by country, and the note and reply texts built from them.

    resolve_country(locale, time_zone, default_country) -> str | None
    resolve_country_with_basis(...)                     -> CountryGuess(country, basis)
    resources_for(country, tenant, *, include_unconfirmed=False) -> ResourceSet
    render_reply(language, resources, *, agent_name=None, variant="personal") -> str (HTML)
    render_note(*, language, tier, score, categories, resources, job_id, phrases=(), masked=False,
                flags=(), basis="unknown", reply_html=None, macro_id=None, protocol_url=None,
                staff_support_url=None) -> str (HTML)

Data (package files, read with importlib.resources): directory.toml (crisis lines with sources),
emergency.toml (emergency numbers), timezones.json (time zone → country), templates/<lang>.toml.
"""

from .country import (
    Basis,
    CountryGuess,
    country_from_locale,
    country_from_time_zone,
    resolve_country,
    resolve_country_with_basis,
)
from .directory import (
    Directory,
    InternationalResource,
    ResourceEntry,
    ResourceSet,
    load_directory,
    resources_for,
)
from .render import (
    LANGUAGES,
    REPLY_VARIANTS,
    ReplyVariant,
    category_key,
    render_note,
    render_reply,
    supported_language,
)

__all__ = [
    "Basis", "CountryGuess", "country_from_locale", "country_from_time_zone", "resolve_country",
    "resolve_country_with_basis", "Directory", "InternationalResource", "ResourceEntry",
    "ResourceSet", "load_directory", "resources_for", "LANGUAGES", "REPLY_VARIANTS",
    "ReplyVariant", "category_key", "render_note", "render_reply", "supported_language",
]
