"""The `carbon-gateway` command line against real databases."""

import asyncio
from pathlib import Path

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from app.accounts.keys import hash_api_key
from app.accounts.models import Account, AccountStatus, ApiKey, Mode
from app.cli import cli
from app.db import Database

runner = CliRunner()


@pytest.fixture
def cli_env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CG_DATABASE_URL", database_url)
    monkeypatch.setenv("CG_SECRET_KEY", "cli-test-secret")
    return database_url


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def load(database_url: str, model: type, **where: object) -> list:  # type: ignore[type-arg]
    """Rows as the CLI left them; the CLI runs its own event loop, so these tests are sync."""

    async def query() -> list:  # type: ignore[type-arg]
        db = Database.from_url(database_url)
        try:
            async with db.session() as session:
                return list((await session.exec(select(model).filter_by(**where))).all())
        finally:
            await db.dispose()

    return asyncio.run(query())


def test_accounts_create_suspend_activate(cli_env: str) -> None:
    code, out, _ = invoke("accounts", "create", "Acme Ltd", "--slug", "acme")
    assert code == 0, out
    assert "acme" in out
    code, _, err = invoke("accounts", "create", "Acme again", "--slug", "acme")
    assert code == 1
    assert "already exists" in err
    assert invoke("accounts", "suspend", "acme")[0] == 0
    [account] = load(cli_env, Account, slug="acme")
    assert account.status is AccountStatus.SUSPENDED
    assert invoke("accounts", "activate", "acme")[0] == 0
    [account] = load(cli_env, Account, slug="acme")
    assert account.status is AccountStatus.ACTIVE
    code, _, err = invoke("accounts", "suspend", "ghost")
    assert code == 1
    assert "No account" in err


def test_keys_create_prints_only_the_key(cli_env: str) -> None:
    invoke("accounts", "create", "Acme Ltd", "--slug", "acme")
    code, out, _ = invoke("keys", "create", "--account", "acme", "--mode", "live", "--admin")
    assert code == 0
    key = out.strip()
    assert out == key + "\n"
    assert key.startswith("cg_live_")
    [stored] = load(cli_env, ApiKey, key_hash=hash_api_key(key))
    assert stored.is_admin
    assert stored.mode is Mode.LIVE
    code, _, err = invoke("keys", "create", "--account", "ghost", "--mode", "test")
    assert code == 1
    assert "No account" in err
    assert invoke("keys", "create", "--account", "acme", "--mode", "prod")[0] == 2


def test_seed_demo_is_idempotent_and_prints_working_keys(cli_env: str) -> None:
    first = invoke("seed-demo")
    second = invoke("seed-demo")
    assert first[0] == 0
    assert second[0] == 0
    keys = [line.split()[-1] for line in first[1].splitlines() if "cg_" in line]
    assert len(keys) == 4
    assert keys == [line.split()[-1] for line in second[1].splitlines() if "cg_" in line]
    [account] = load(cli_env, Account, slug="demo")
    stored = load(cli_env, ApiKey, account_id=account.id)
    assert {key.key_hash for key in stored} == {hash_api_key(key) for key in keys}


def test_migrate_reports_an_unreachable_database_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CG_DATABASE_URL", "postgresql+asyncpg://nobody@127.0.0.1:1/none")
    code, _, err = invoke("migrate")
    assert code == 1
    assert err.startswith("error: Cannot reach the database")
    assert "Traceback" not in err


def test_migrate_reports_an_unknown_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CG_DATABASE_URL", "oracle://scott@localhost/orcl")
    code, _, err = invoke("migrate")
    assert code == 1
    assert "Unsupported database 'oracle'" in err


def test_migrate_is_idempotent(cli_env: str) -> None:
    assert invoke("migrate") == (0, "Database is up to date.\n", "")
    assert invoke("migrate")[0] == 0


def test_export_schema_prints_the_sdl() -> None:
    code, out, _ = invoke("export-schema")
    assert code == 0
    assert "type Query" in out
    assert "viewer: Viewer!" in out


def test_serve_refuses_the_default_secret_outside_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CG_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1/test")
    monkeypatch.delenv("CG_SECRET_KEY", raising=False)
    code, _, err = invoke("serve")
    assert code == 1
    assert "CG_SECRET_KEY" in err


def test_serve_refuses_a_trusted_documents_manifest_it_cannot_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text('{"format": "apollo-persisted-query-manifest", "version": 2}')
    monkeypatch.setenv("CG_TRUSTED_DOCUMENTS", str(manifest))
    code, _, err = invoke("serve")
    assert code == 1
    assert "an Apollo manifest needs version 1" in err
