"""The tenant registry on a real SQLite file: CRUD, encryption at rest, change audit, validation,
the tenants-file precedence, and the `careroute tenants …` commands."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pytest

from plugin.config import tenant_from_dict
from plugin.errors import ConfigError
from plugin.registry import TenantRegistry, generate_key
from plugin.registry_command import parse_assignment, register
from plugin.store import Store
from plugin.tenants import TenantDirectory

WEBHOOK_SECRET = "fd-webhook-secret-QUOKKA-4412"
API_KEY = "fd-api-key-WOMBAT-9981"
ADMIN_TOKEN = "admin-token-NUMBAT-5531"


def freshdesk_tenant(tenant_id: str = "globex", **extra):
    return tenant_from_dict({
        "id": tenant_id, "vendor": "freshdesk", "domain": f"{tenant_id}.freshdesk.com",
        "webhook_secret": WEBHOOK_SECRET, "admin_token": ADMIN_TOKEN,
        "auth": {"kind": "api_key", "key": API_KEY}, **extra})


def zendesk_tenant(tenant_id: str = "acme", **extra):
    return tenant_from_dict({
        "id": tenant_id, "vendor": "zendesk", "subdomain": tenant_id,
        "webhook_secret": "zd-secret-" + tenant_id,
        "auth": {"kind": "api_token", "email": "bot@acme.test", "token": "zd-token-x"}, **extra})


@pytest.fixture
async def store(tmp_path):
    store = await Store(tmp_path / "careroute.sqlite3").open()
    yield store
    await store.close()


def database_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in directory.glob("careroute.sqlite3*"))


async def test_add_get_all_update_disable_enable(store):
    directory = TenantDirectory()
    registry = TenantRegistry(store, secret_key=generate_key(), directory=directory)
    await registry.add(freshdesk_tenant())
    await registry.add(zendesk_tenant())
    assert [t.id for t in await registry.all()] == ["acme", "globex"]
    loaded = await registry.get("globex")
    assert loaded.auth.key.get_secret_value() == API_KEY
    assert loaded.admin_token.get_secret_value() == ADMIN_TOKEN
    assert await registry.get("nobody") is None

    updated = await registry.update("globex", {"screening": {"high": 0.7}, "tag_prefix": "cr"},
                                    actor="admin@globex")
    assert updated.screening.high == 0.7 and updated.screening.concern == 0.35
    assert updated.tag_prefix == "cr"
    assert (await registry.get("globex")).screening.high == 0.7
    # The directory the service reads follows at once (next ticket, no restart).
    assert directory.get("globex").screening.high == 0.7

    await registry.disable("globex")
    assert directory.get("globex").enabled is False
    assert (await registry.get("globex")).enabled is False
    await registry.enable("globex")
    assert directory.get("globex").enabled is True

    with pytest.raises(ConfigError, match="already registered"):
        await registry.add(freshdesk_tenant())


async def test_secrets_are_encrypted_at_rest(tmp_path):
    key = generate_key()
    store = await Store(tmp_path / "careroute.sqlite3").open()
    registry = TenantRegistry(store, secret_key=key)
    await registry.add(freshdesk_tenant())
    rotated = await registry.rotate_secret("globex", "admin_token")
    await store.close()
    raw = database_bytes(tmp_path)
    assert b"globex.freshdesk.com" in raw  # settings are readable…
    for secret in (WEBHOOK_SECRET, API_KEY, ADMIN_TOKEN, rotated):
        assert secret.encode() not in raw  # …secrets are not

    store = await Store(tmp_path / "careroute.sqlite3").open()
    try:
        assert (await TenantRegistry(store, secret_key=key).get("globex")) \
            .admin_token.get_secret_value() == rotated
        with pytest.raises(ConfigError, match="does not open"):
            await TenantRegistry(store, secret_key=generate_key()).get("globex")
        with pytest.raises(ConfigError, match="CAREROUTE_SECRET_KEY"):
            await TenantRegistry(store, secret_key=None).all()
        # Key rotation: new key first, old key still opens what is stored.
        both = TenantRegistry(store, secret_key=f"{generate_key()},{key}")
        assert (await both.get("globex")).auth.key.get_secret_value() == API_KEY
    finally:
        await store.close()


async def test_without_a_key_secrets_are_refused_unless_insecure_dev(store, tmp_path):
    with pytest.raises(ConfigError, match="without a key"):
        await TenantRegistry(store, secret_key=None).add(freshdesk_tenant())
    assert await TenantRegistry(store, secret_key=None, insecure_dev=True).all() == []
    dev = TenantRegistry(store, secret_key=None, insecure_dev=True)
    await dev.add(freshdesk_tenant())
    assert (await dev.get("globex")).auth.key.get_secret_value() == API_KEY
    with pytest.raises(ConfigError, match="Fernet key"):
        TenantRegistry(store, secret_key="not-a-key")


async def test_changes_are_audited_by_name_without_values(store):
    registry = TenantRegistry(store, secret_key=generate_key())
    await registry.add(freshdesk_tenant(), actor="installer")
    await registry.update("globex", {"screening.imminent": 0.9, "auth": {"key": "new-key-KIWI"}},
                          actor="admin@globex")
    # Restating current values is no change and leaves no row.
    await registry.update("globex", {"screening": {"imminent": 0.9, "concern": 0.35}},
                          actor="admin@globex")
    changes = await registry.changes("globex")
    assert [c["actor"] for c in changes] == ["admin@globex", "installer"]
    assert changes[0]["keys"] == ["auth.key", "screening.imminent"]
    assert changes[1]["keys"] == ["created"]
    assert changes[0]["tenant_id"] == "globex" and changes[0]["at"] <= time.time()
    rows = await store.run(lambda conn: conn.execute("SELECT * FROM registry_changes").fetchall())
    assert "new-key-KIWI" not in repr(rows) and "0.9" not in repr(rows)


async def test_validation_errors_name_tenant_and_key_and_change_nothing(store):
    registry = TenantRegistry(store, secret_key=generate_key())
    await registry.add(freshdesk_tenant())
    with pytest.raises(ConfigError) as error:
        await registry.update("globex", {"screening": {"high": 0.2}}, actor="admin")
    assert "'globex'" in error.value.reason and "screening" in error.value.reason
    with pytest.raises(ConfigError) as error:
        await registry.update("globex", {"tag_prefix": "Bad Prefix!"}, actor="admin")
    assert "'globex'" in error.value.reason and "tag_prefix" in error.value.reason
    assert "Bad Prefix" not in error.value.reason
    with pytest.raises(ConfigError, match="vendor: cannot be changed"):
        await registry.update("globex", {"vendor": "zendesk"}, actor="admin")
    with pytest.raises(ConfigError, match="not registered"):
        await registry.update("nobody", {"tag_prefix": "x"}, actor="admin")
    assert (await registry.get("globex")).screening.high == 0.60
    assert [c["keys"] for c in await registry.changes("globex")] == [["created"]]


async def test_rotate_secret_returns_a_new_value_and_refuses_zendesk_webhook_secret(store):
    registry = TenantRegistry(store, secret_key=generate_key())
    await registry.add(freshdesk_tenant())
    await registry.add(zendesk_tenant())
    first = await registry.rotate_secret("globex")
    second = await registry.rotate_secret("globex")
    assert len(first) >= 32 and first != second != WEBHOOK_SECRET
    assert (await registry.get("globex")).webhook_secret.get_secret_value() == second
    with pytest.raises(ConfigError, match="Zendesk sets"):
        await registry.rotate_secret("acme")
    assert await registry.rotate_secret("acme", "admin_token")
    with pytest.raises(ConfigError, match="can be rotated"):
        await registry.rotate_secret("globex", "auth.key")


async def test_tenants_file_wins_unless_the_registry_changed_later(store):
    file_tenant = zendesk_tenant(screening={"high": 0.5})
    registry = TenantRegistry(store, secret_key=generate_key())
    await registry.add(zendesk_tenant(screening={"high": 0.7}))
    await registry.add(freshdesk_tenant())

    directory = TenantDirectory([file_tenant])
    await registry.load_into(directory, file_modified_at=time.time() + 60)  # file edited later
    assert directory.get("acme").screening.high == 0.5
    assert directory.get("globex") is not None

    directory = TenantDirectory([file_tenant])
    await registry.load_into(directory, file_modified_at=time.time() - 60)  # admin changed later
    assert directory.get("acme").screening.high == 0.7

    directory = TenantDirectory([file_tenant])
    assert "acme" not in await registry.load_into(directory)  # file time unknown: file wins
    assert directory.get("acme").screening.high == 0.5


async def test_a_file_tenant_changed_by_an_admin_is_copied_into_the_registry(store):
    directory = TenantDirectory([zendesk_tenant()])
    registry = TenantRegistry(store, secret_key=generate_key(), directory=directory)
    await registry.update("acme", {"screening.concern": 0.3}, actor="admin")
    assert (await registry.get("acme")).screening.concern == 0.3
    assert directory.get("acme").screening.concern == 0.3


# ---------------------------------------------------------------- the CLI


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="careroute")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["tenants", *argv])
    return args.func(args)


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    monkeypatch.setenv("CAREROUTE_SECRET_KEY", generate_key())
    monkeypatch.setenv("GLOBEX_API_KEY", API_KEY)
    tenant_file = tmp_path / "globex.toml"
    tenant_file.write_text(f"""
[tenant]
id = "globex"
vendor = "freshdesk"
domain = "globex.freshdesk.com"
webhook_secret = "{WEBHOOK_SECRET}"
admin_token = "{ADMIN_TOKEN}"
auth = {{ kind = "api_key", key = "env:GLOBEX_API_KEY" }}
""")
    return tmp_path, tenant_file


def test_cli_add_list_update_disable_enable(cli_env, capsys):
    data, tenant_file = cli_env
    data_dir = str(data / "data")
    assert run_cli("add", "--file", str(tenant_file), "--data-dir", data_dir) == 0
    assert run_cli("update", "globex", "--set", "screening.high=0.7", "--set", "tag_prefix=cr",
                   "--data-dir", data_dir) == 0
    assert run_cli("disable", "globex", "--data-dir", data_dir) == 0
    assert run_cli("list", "--data-dir", data_dir) == 0
    out = capsys.readouterr().out
    assert "registered globex (freshdesk)" in out
    assert "updated globex: screening.high, tag_prefix" in out
    listing = out.splitlines()[-1]
    assert "globex" in listing and "disabled" in listing and "0.35/0.70/0.85" in listing
    assert "by cli" in listing
    for secret in (WEBHOOK_SECRET, API_KEY, ADMIN_TOKEN):
        assert secret not in out
    assert run_cli("enable", "globex", "--data-dir", data_dir) == 0
    run_cli("list", "--data-dir", data_dir)
    assert "enabled" in capsys.readouterr().out.splitlines()[-1]


def test_cli_rotate_secret_prints_only_the_new_secret_once(cli_env, capsys):
    data, tenant_file = cli_env
    data_dir = str(data / "data")
    run_cli("add", "--file", str(tenant_file), "--data-dir", data_dir)
    capsys.readouterr()
    assert run_cli("rotate-secret", "globex", "--which", "admin_token", "--data-dir", data_dir) == 0
    captured = capsys.readouterr()
    new_token = captured.out.strip()
    assert len(new_token) >= 32 and ADMIN_TOKEN not in captured.out + captured.err
    assert new_token.encode() not in database_bytes(data / "data")


def test_cli_errors_are_config_errors(cli_env):
    data, tenant_file = cli_env
    data_dir = str(data / "data")
    run_cli("add", "--file", str(tenant_file), "--data-dir", data_dir)
    with pytest.raises(ConfigError, match="'globex'.*screening"):
        run_cli("update", "globex", "--set", "screening.high=2", "--data-dir", data_dir)
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        run_cli("update", "globex", "--set", "screening.high", "--data-dir", data_dir)


def test_parse_assignment_reads_toml_values():
    assert parse_assignment("screening.high=0.7") == ("screening.high", 0.7)
    assert parse_assignment("enabled=false") == ("enabled", False)
    assert parse_assignment("actions.high.tags=[\"a\", \"b\"]") == ("actions.high.tags", ["a", "b"])
    assert parse_assignment("tag_prefix=acme") == ("tag_prefix", "acme")
    assert parse_assignment("trained_group_id=42") == ("trained_group_id", 42)


async def test_a_partial_change_keeps_the_defaults_beside_it(store):
    registry = TenantRegistry(store, secret_key=generate_key())
    await registry.add(zendesk_tenant())
    updated = await registry.update("acme", {"actions.imminent.auto_reply": True,
                                             "auto_reply": {"enabled": True}}, actor="admin")
    imminent = updated.actions.imminent
    assert imminent.auto_reply and imminent.note and imminent.priority == "urgent"
    assert imminent.route_to_trained_group and updated.actions.high.note
    assert [c["keys"] for c in await registry.changes("acme", limit=1)] == \
        [["actions.imminent.auto_reply", "auto_reply.enabled"]]
    # A new kind of auth replaces the old one instead of mixing their fields.
    oauth = {"kind": "oauth", "access_token": "a" * 20, "client_id": "c", "client_secret": "s"}
    assert (await registry.update("acme", {"auth": oauth}, actor="admin")).auth.kind == "oauth"
    again = await registry.update("acme", {"auth": {"access_token": "b" * 20}}, actor="admin")
    assert again.auth.client_id == "c" and again.auth.access_token.get_secret_value() == "b" * 20


def test_cli_new_key_prints_a_usable_key(capsys, tmp_path):
    assert run_cli("new-key") == 0
    key = capsys.readouterr().out.strip()
    TenantRegistry(Store(tmp_path / "x.sqlite3"), secret_key=key)  # accepted as a Fernet key
    assert key != generate_key()


async def test_reloading_keeps_unchanged_tenant_objects(store):
    directory = TenantDirectory()
    registry = TenantRegistry(store, secret_key=generate_key(), directory=directory)
    await registry.add(freshdesk_tenant())
    before = directory.get("globex")
    assert await registry.load_into() == []
    assert directory.get("globex") is before  # the worker's cached client stays valid
