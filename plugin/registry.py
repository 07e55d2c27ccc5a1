"""Tenant registry in the store: tenants added by marketplace installs, the admin page and
`careroute tenants …`, with their secrets encrypted at rest.

A record keeps the tenant's settings as JSON (only the keys that were set, so defaults follow the
code) and its secrets (webhook secret, admin token, credentials) in one Fernet token sealed with
`ServiceSettings.secret_key` (`CAREROUTE_SECRET_KEY`; several keys separated by commas: the first
encrypts, all decrypt, so a key can be rotated). Without a key the registry refuses to store
secrets, unless `insecure_dev=True` (the demo), which stores them in plain text.

Tenants file and registry: the file stays authoritative for self-hosting. When a tenant id is in
both, the file wins unless the registry record was changed after the file was last modified (an
admin changed that tenant through the registry since): `load_into(directory,
file_modified_at=…)`. Without `file_modified_at` the file always wins.

Every change is written to `registry_changes` (tenant, actor, the names of the changed keys, time)
— never a value. A `TenantDirectory` given to the constructor is updated on every write, so a
change takes effect on the next ticket without a restart.
"""

from __future__ import annotations

import json
import secrets as random_secrets
import sqlite3
import time
from typing import Any, Iterable, Mapping

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

from .config import TenantConfig, tenant_from_dict
from .errors import ConfigError
from .store import Store, transaction
from .tenants import TenantDirectory

SCHEMA = """
CREATE TABLE IF NOT EXISTS registry_tenants (
    tenant_id   TEXT PRIMARY KEY,
    vendor      TEXT NOT NULL,
    settings    TEXT NOT NULL,   -- JSON of the keys that were set, secrets removed
    secrets     TEXT NOT NULL,   -- 'fernet:<token>' or, in insecure dev mode, 'plain:<json>'
    enabled     INTEGER NOT NULL,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS registry_changes (
    id          INTEGER PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    actor       TEXT NOT NULL,
    keys        TEXT NOT NULL,   -- JSON list of dotted key names; never values
    at          REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS registry_changes_tenant ON registry_changes (tenant_id, at);
"""

# Dotted paths of every secret a TenantConfig can hold.
SECRET_PATHS = ("webhook_secret", "admin_token", "auth.access_token", "auth.refresh_token",
                "auth.client_secret", "auth.token", "auth.key")
ROTATABLE = ("webhook_secret", "admin_token")
_FIXED = ("id", "vendor")


def generate_key() -> str:
    """A new value for CAREROUTE_SECRET_KEY."""
    return Fernet.generate_key().decode("ascii")


def new_secret() -> str:
    return random_secrets.token_urlsafe(32)


def tenant_to_dict(tenant: TenantConfig) -> dict[str, Any]:
    """The keys that were set on `tenant`, secrets in clear, as plain JSON-able data."""
    return _plain(tenant.model_dump(mode="python", exclude_unset=True))


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def expand_dotted(changes: Mapping[str, Any]) -> dict[str, Any]:
    """{"screening.high": 0.7} → {"screening": {"high": 0.7}}; nested mappings are kept."""
    nested: dict[str, Any] = {}
    for key, value in changes.items():
        parts = str(key).split(".")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{key}: conflicts with another key")
        leaf = parts[-1]
        if isinstance(value, Mapping):
            existing = node.setdefault(leaf, {})
            if not isinstance(existing, dict):
                raise ConfigError(f"{key}: conflicts with another key")
            existing.update(deep_merge(existing, expand_dotted(value)))
        else:
            node[leaf] = value
    return nested


def deep_merge(base: Mapping[str, Any], changes: Mapping[str, Any],
               effective: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Merge `changes` into `base` (the keys that were set). A nested object the change touches
    but `base` leaves to its defaults starts from its `effective` value, so changing
    actions.imminent.auto_reply keeps imminent's default note and priority. An object whose
    `kind` changes (auth) is replaced, not merged."""
    effective = effective or {}
    merged = dict(base)
    for key, value in changes.items():
        current = merged.get(key)
        full = effective.get(key) if isinstance(effective.get(key), Mapping) else {}
        if isinstance(value, Mapping) and not (
                "kind" in value and isinstance(current or full, Mapping)
                and (current or full).get("kind") != value["kind"]):
            start = current if isinstance(current, Mapping) else full
            merged[key] = deep_merge(start, value, full)
        else:
            merged[key] = value
    return merged


def changed_keys(before: Mapping[str, Any], after: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the leaves that differ between two plain dicts."""
    names: list[str] = []
    for key in sorted(set(before) | set(after)):
        name = f"{prefix}{key}"
        old, new = before.get(key), after.get(key)
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            names.extend(changed_keys(old, new, f"{name}."))
        elif old != new:
            names.append(name)
    return names


def apply_changes(tenant: TenantConfig, changes: Mapping[str, Any]) -> TenantConfig:
    """`tenant` with `changes` (nested or dotted keys) deep-merged in and validated (not saved).
    Raises ConfigError naming the tenant and the key."""
    nested = expand_dotted(changes)
    for fixed in _FIXED:
        if fixed in nested and nested[fixed] != getattr(tenant, fixed):
            raise ConfigError(f"tenant {tenant.id!r}: {fixed}: cannot be changed")
    merged = deep_merge(tenant_to_dict(tenant), nested, _plain(tenant.model_dump()))
    return tenant_from_dict(merged, environ={})


def settings_diff(before: TenantConfig, after: TenantConfig) -> list[str]:
    """Dotted names of the settings that differ, defaults included (restating one is no change)."""
    return changed_keys(_plain(before.model_dump()), _plain(after.model_dump()))


def _split_secrets(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    settings = json.loads(json.dumps(data))
    found: dict[str, str] = {}
    for path in SECRET_PATHS:
        *parents, leaf = path.split(".")
        node = settings
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and node.get(leaf) is not None:
            found[path] = node.pop(leaf)
    return settings, found


def _join_secrets(settings: dict[str, Any], found: Mapping[str, str]) -> dict[str, Any]:
    data = json.loads(json.dumps(settings))
    for path, value in found.items():
        *parents, leaf = path.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return data


class SecretBox:
    """Seals a tenant's secrets for the database."""

    def __init__(self, secret_key: str | None, *, insecure_dev: bool = False) -> None:
        self.insecure_dev = insecure_dev
        self._fernet: MultiFernet | None = None
        if secret_key:
            try:
                keys = [Fernet(part.strip().encode("ascii"))
                        for part in secret_key.split(",") if part.strip()]
            except (ValueError, UnicodeEncodeError):
                raise ConfigError("secret_key: must be a Fernet key (32 url-safe base64-encoded "
                                  "bytes); create one with `careroute tenants new-key`") from None
            self._fernet = MultiFernet(keys) if keys else None

    def seal(self, tenant_id: str, found: Mapping[str, str]) -> str:
        payload = json.dumps(dict(found), sort_keys=True)
        if self._fernet is not None:
            return "fernet:" + self._fernet.encrypt(payload.encode("utf-8")).decode("ascii")
        if self.insecure_dev:
            return "plain:" + payload
        raise ConfigError(f"tenant {tenant_id!r}: secrets: cannot store secrets without a key; "
                          "set CAREROUTE_SECRET_KEY (create one with `careroute tenants new-key`)")

    def open(self, tenant_id: str, sealed: str) -> dict[str, str]:
        scheme, _, body = sealed.partition(":")
        if scheme == "plain":
            return json.loads(body)
        if self._fernet is None:
            raise ConfigError(f"tenant {tenant_id!r}: secrets: stored encrypted; "
                              "set CAREROUTE_SECRET_KEY to read them")
        try:
            return json.loads(self._fernet.decrypt(body.encode("ascii")))
        except InvalidToken:
            raise ConfigError(f"tenant {tenant_id!r}: secrets: CAREROUTE_SECRET_KEY does not "
                              "open them (wrong or rotated-out key)") from None


class TenantRegistry:
    def __init__(self, store: Store, *, secret_key: str | None,
                 directory: TenantDirectory | None = None, insecure_dev: bool = False) -> None:
        self.store = store
        self.directory = directory
        self._box = SecretBox(secret_key, insecure_dev=insecure_dev)
        self._schema_ready = False
        self._file_modified_at: float | None = None
        # Ids this registry put into the directory itself (so they are not taken for file ones).
        self._loaded_ids: set[str] = set()

    # ---------------------------------------------------------------- reading

    async def get(self, tenant_id: str) -> TenantConfig | None:
        row = await self._run(lambda conn: conn.execute(
            "SELECT tenant_id, settings, secrets, enabled FROM registry_tenants"
            " WHERE tenant_id = ?", (tenant_id,)).fetchone())
        return None if row is None else self._from_row(row)

    async def all(self) -> list[TenantConfig]:
        rows = await self._run(lambda conn: conn.execute(
            "SELECT tenant_id, settings, secrets, enabled FROM registry_tenants"
            " ORDER BY tenant_id").fetchall())
        return [self._from_row(row) for row in rows]

    async def changes(self, tenant_id: str, limit: int = 50) -> list[dict[str, Any]]:
        rows = await self._run(lambda conn: conn.execute(
            "SELECT tenant_id, actor, keys, at FROM registry_changes WHERE tenant_id = ?"
            " ORDER BY id DESC LIMIT ?", (tenant_id, int(limit))).fetchall())
        return [{"tenant_id": t, "actor": a, "keys": json.loads(k), "at": at}
                for t, a, k, at in rows]

    async def load_into(self, directory: TenantDirectory | None = None, *,
                        file_modified_at: float | None = None) -> list[str]:
        """Put registry tenants into `directory` (default: the constructor's). A tenant id the
        directory already holds from the tenants file is replaced only when its record changed
        after `file_modified_at` (None: the file wins). Returns the ids put (new or changed). Safe to call
        again to pick up changes made by another process (`careroute tenants …`); for the
        constructor's directory the file time of the first call is remembered."""
        own = directory is None or directory is self.directory
        directory = self.directory if directory is None else directory
        if directory is None:
            raise ValueError("load_into needs a TenantDirectory")
        if own and file_modified_at is None:
            file_modified_at = self._file_modified_at
        elif own:
            self._file_modified_at = file_modified_at
        rows = await self._run(lambda conn: conn.execute(
            "SELECT tenant_id, settings, secrets, enabled, updated_at FROM registry_tenants"
            " ORDER BY tenant_id").fetchall())
        loaded = []
        for row in rows:
            from_file = directory.get(row[0]) is not None and not (own and row[0] in self._loaded_ids)
            if from_file and (file_modified_at is None or row[4] <= file_modified_at):
                continue
            tenant = self._from_row(row[:4])
            if own:
                self._loaded_ids.add(row[0])
            if directory.get(row[0]) != tenant:  # unchanged: keep the object (and its client)
                directory.put(tenant)
                loaded.append(row[0])
        return loaded

    # ---------------------------------------------------------------- writing

    async def add(self, tenant: TenantConfig, *, actor: str = "system",
                  replace: bool = False) -> TenantConfig:
        """Register a new tenant (`replace=True`: overwrite an existing record)."""
        data = tenant_to_dict(tenant)
        settings, found = _split_secrets(data)
        sealed = self._box.seal(tenant.id, found)
        now = time.time()

        def write(conn: sqlite3.Connection) -> None:
            exists = conn.execute("SELECT 1 FROM registry_tenants WHERE tenant_id = ?",
                                  (tenant.id,)).fetchone()
            if exists and not replace:
                raise ConfigError(f"tenant {tenant.id!r}: id: already registered")
            conn.execute(
                "INSERT INTO registry_tenants (tenant_id, vendor, settings, secrets, enabled,"
                " created_at, updated_at) VALUES (?,?,?,?,?,?,?) ON CONFLICT(tenant_id) DO UPDATE"
                " SET vendor=excluded.vendor, settings=excluded.settings,"
                " secrets=excluded.secrets, enabled=excluded.enabled,"
                " updated_at=excluded.updated_at",
                (tenant.id, tenant.vendor, json.dumps(settings), sealed, int(tenant.enabled),
                 now, now))
            _record_change(conn, tenant.id, actor, ["replaced" if exists else "created"], now)

        await self._run(lambda conn: transaction(conn, write))
        self._publish(tenant)
        return tenant

    async def update(self, tenant_id: str, changes: Mapping[str, Any], *,
                     actor: str) -> TenantConfig:
        """Deep-merge `changes` (nested or dotted keys) into the tenant's settings, validate,
        store and record the names of the keys that changed."""
        current = await self._current(tenant_id)
        tenant = apply_changes(current, changes)
        keys = settings_diff(current, tenant)
        if keys:
            await self._save(tenant, keys, actor)
        return tenant

    async def disable(self, tenant_id: str, *, actor: str = "system") -> TenantConfig:
        return await self.update(tenant_id, {"enabled": False}, actor=actor)

    async def enable(self, tenant_id: str, *, actor: str = "system") -> TenantConfig:
        return await self.update(tenant_id, {"enabled": True}, actor=actor)

    async def rotate_secret(self, tenant_id: str, which: str = "webhook_secret", *,
                            actor: str = "system") -> str:
        """Replace one secret with a new random value and return it (the only time it is shown).
        A Zendesk webhook's signing secret belongs to Zendesk, so it cannot be rotated here."""
        if which not in ROTATABLE:
            raise ConfigError(f"tenant {tenant_id!r}: {which}: only {', '.join(ROTATABLE)} "
                              "can be rotated")
        current = await self._current(tenant_id)
        if which == "webhook_secret" and current.vendor == "zendesk":
            raise ConfigError(f"tenant {tenant_id!r}: webhook_secret: Zendesk sets the webhook "
                              "signing secret; reset it in Zendesk and store the new one")
        value = new_secret()
        await self.update(tenant_id, {which: value}, actor=actor)
        return value

    # ---------------------------------------------------------------- internals

    async def _current(self, tenant_id: str) -> TenantConfig:
        tenant = await self.get(tenant_id)
        if tenant is None and self.directory is not None:
            tenant = self.directory.get(tenant_id)  # a tenants-file tenant: copied on first change
        if tenant is None:
            raise ConfigError(f"tenant {tenant_id!r}: not registered")
        return tenant

    async def _save(self, tenant: TenantConfig, keys: Iterable[str], actor: str) -> None:
        settings, found = _split_secrets(tenant_to_dict(tenant))
        sealed = self._box.seal(tenant.id, found)
        now = time.time()

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO registry_tenants (tenant_id, vendor, settings, secrets, enabled,"
                " created_at, updated_at) VALUES (?,?,?,?,?,?,?) ON CONFLICT(tenant_id) DO UPDATE"
                " SET settings=excluded.settings, secrets=excluded.secrets,"
                " enabled=excluded.enabled, updated_at=excluded.updated_at",
                (tenant.id, tenant.vendor, json.dumps(settings), sealed, int(tenant.enabled),
                 now, now))
            _record_change(conn, tenant.id, actor, list(keys), now)

        await self._run(lambda conn: transaction(conn, write))
        self._publish(tenant)

    def _publish(self, tenant: TenantConfig) -> None:
        if self.directory is not None:
            self.directory.put(tenant)
            self._loaded_ids.add(tenant.id)

    def _from_row(self, row: tuple[Any, ...]) -> TenantConfig:
        tenant_id, settings, sealed, enabled = row
        data = _join_secrets(json.loads(settings), self._box.open(tenant_id, sealed))
        data["enabled"] = bool(enabled)
        return tenant_from_dict(data, environ={})

    async def _run(self, fn):
        if not self._schema_ready:
            await self.store.run(lambda conn: conn.executescript(SCHEMA))
            self._schema_ready = True
        return await self.store.run(fn)


def _record_change(conn: sqlite3.Connection, tenant_id: str, actor: str, keys: list[str],
                   at: float) -> None:
    conn.execute("INSERT INTO registry_changes (tenant_id, actor, keys, at) VALUES (?,?,?,?)",
                 (tenant_id, actor, json.dumps(sorted(keys)), at))
