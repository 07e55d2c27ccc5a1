"""The crisis-line directory as data, and the resources shown for one country.

`directory.toml` holds the entries (transcribed from crisis-lines.md with their sources) and
`emergency.toml` the emergency numbers. Entries with status "unconfirmed" stay in the data for
re-verification but are left out unless a caller asks for them. Whatever the country, a
`ResourceSet` always carries an emergency number and the international directory, so the list an
agent or a customer sees is never blank.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources as package_files
from typing import Any, Iterable, Literal

from ..config import CustomResource, TenantConfig
from ..errors import ConfigError

Status = Literal["confirmed", "unconfirmed"]
DIRECTORY_FILE = "directory.toml"
EMERGENCY_FILE = "emergency.toml"
_ENTRY_KEYS = frozenset({
    "country", "service", "phone", "sms", "sms_keyword", "whatsapp", "chat_url", "url", "hours",
    "always_open", "languages", "languages_note", "source_url", "verified", "status", "unconfirmed",
})


@dataclass(frozen=True, slots=True)
class ResourceEntry:
    """One service: how to reach it, when, in which languages, and where that was confirmed."""

    country: str  # ISO 3166 alpha-2, or "*" for a tenant entry shown everywhere
    service: str
    phone: str | None = None
    sms: str | None = None
    sms_keyword: str | None = None
    whatsapp: str | None = None
    chat_url: str | None = None
    url: str | None = None
    hours: str | None = None
    always_open: bool = False
    languages: tuple[str, ...] = ()
    languages_note: str | None = None
    source_url: str | None = None
    verified: str | None = None  # the date shown on the source page (YYYY, YYYY-MM or YYYY-MM-DD)
    status: Status = "confirmed"
    unconfirmed: tuple[str, ...] = ()  # details left out because no source confirmed them
    custom: bool = False  # a tenant's own entry (an EAP line, a company protocol link)

    @property
    def has_channel(self) -> bool:
        """Can someone reach this service directly (call, text, WhatsApp or chat)?"""
        return bool(self.phone or self.sms or self.whatsapp or self.chat_url)


@dataclass(frozen=True, slots=True)
class InternationalResource:
    name: str
    url: str


@dataclass(frozen=True, slots=True)
class ResourceSet:
    """What to show for one requester: local lines, the tenant's own entries and the fallbacks."""

    country: str | None
    entries: tuple[ResourceEntry, ...]  # directory entries (or the tenant's replacements)
    emergency_number: str
    international: InternationalResource
    custom: tuple[ResourceEntry, ...] = ()  # the tenant's extra entries for this country or "*"
    # True when the tenant's own entries replace the directory for this country.
    replaced: bool = False

    @property
    def local_channels(self) -> tuple[ResourceEntry, ...]:
        """Entries a customer can contact directly, always-open ones first."""
        reachable = [e for e in self.entries if e.has_channel]
        return tuple(sorted(reachable, key=lambda e: not e.always_open))


@dataclass(frozen=True, slots=True)
class Directory:
    entries: tuple[ResourceEntry, ...]
    emergency: dict[str, str]
    emergency_default: str
    international: InternationalResource

    def for_country(self, country: str | None, *, include_unconfirmed: bool = False
                    ) -> tuple[ResourceEntry, ...]:
        if country is None:
            return ()
        return tuple(e for e in self.entries if e.country == country
                     and (include_unconfirmed or e.status == "confirmed"))

    def emergency_number(self, country: str | None) -> str:
        if country is None:
            return self.emergency_default
        return self.emergency.get(country, self.emergency_default)

    @property
    def countries(self) -> frozenset[str]:
        """Countries with at least one confirmed entry."""
        return frozenset(e.country for e in self.entries if e.status == "confirmed")


def _read_toml(name: str) -> dict[str, Any]:
    text = package_files.files(__package__).joinpath(name).read_text(encoding="utf-8")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"resources: {name} is not valid TOML: {exc}") from None


def _entry_from_table(table: dict[str, Any], index: int) -> ResourceEntry:
    unknown = set(table) - _ENTRY_KEYS
    where = f"resources: {DIRECTORY_FILE} entry {index + 1}"
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    for required in ("country", "service", "source_url", "status"):
        if not table.get(required):
            raise ConfigError(f"{where}: {required} is required")
    if table["status"] not in ("confirmed", "unconfirmed"):
        raise ConfigError(f"{where}: status must be confirmed or unconfirmed")
    values = dict(table)
    values["languages"] = tuple(values.get("languages", ()))
    values["unconfirmed"] = tuple(values.get("unconfirmed", ()))
    return ResourceEntry(**values)


@lru_cache(maxsize=1)
def load_directory() -> Directory:
    """Read the packaged directory and emergency numbers (once per process)."""
    data = _read_toml(DIRECTORY_FILE)
    meta = data.get("meta", {})
    entries = tuple(_entry_from_table(t, i) for i, t in enumerate(data.get("entry", [])))
    emergency_data = _read_toml(EMERGENCY_FILE)
    numbers = {code: str(row["number"]) for code, row in emergency_data.get("numbers", {}).items()}
    return Directory(
        entries=entries,
        emergency=numbers,
        emergency_default=str(emergency_data["default"]),
        international=InternationalResource(meta["international_name"], meta["international_url"]),
    )


def _from_custom(item: CustomResource) -> ResourceEntry:
    return ResourceEntry(
        country=item.country, service=item.service, phone=item.phone, sms=item.sms,
        chat_url=item.chat_url, url=item.url, hours=item.hours,
        always_open=(item.hours or "").strip() == "24/7", languages=item.languages,
        status="confirmed", custom=True,
    )


def _matching(items: Iterable[CustomResource], country: str | None) -> list[CustomResource]:
    return [r for r in items if r.country == "*" or (country is not None and r.country == country)]


def resources_for(country: str | None, tenant: TenantConfig, *,
                  include_unconfirmed: bool = False) -> ResourceSet:
    """The resources for a requester in `country` (None: unknown → international fallback).

    A tenant entry with `replaces_directory = true` for this very country takes the place of the
    directory's entries (the tenant's own crisis partner, say). Other tenant entries — "*" or this
    country — are kept apart in `custom`: they may be staff resources (an EAP line, a protocol
    link), so they appear in the agent's note, never in the customer's reply.
    """
    directory = load_directory()
    country = country.upper() if country else None
    tenant_items = _matching(tenant.resources, country)
    replacements = [r for r in tenant_items if r.replaces_directory and r.country == country]
    if replacements:
        entries = tuple(_from_custom(r) for r in replacements)
    else:
        entries = directory.for_country(country, include_unconfirmed=include_unconfirmed)
    extras = tuple(_from_custom(r) for r in tenant_items if r not in replacements)
    return ResourceSet(
        country=country,
        entries=entries,
        emergency_number=directory.emergency_number(country),
        international=directory.international,
        custom=extras,
        replaced=bool(replacements),
    )
