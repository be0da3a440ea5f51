"""The `carbon-gateway` command line: serve, migrate, seed, manage accounts and keys."""

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from app.config import Settings
from app.db import Database, DatabaseConfigError
from app.errors import DomainError

if TYPE_CHECKING:
    from app.demo import DemoKey

T = TypeVar("T")

cli = typer.Typer(help="Carbon Gateway: estimate emissions and offset them.", no_args_is_help=True)
accounts_cli = typer.Typer(help="Manage accounts.", no_args_is_help=True)
keys_cli = typer.Typer(help="Manage API keys.", no_args_is_help=True)
cli.add_typer(accounts_cli, name="accounts")
cli.add_typer(keys_cli, name="keys")


class KeyMode(StrEnum):
    test = "test"
    live = "live"


def fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


def run_with_database(work: Callable[[Database, Settings], Awaitable[T]]) -> T:
    """Run `work` against the configured database, turning setup and domain errors into
    one-line messages and exit code 1 instead of tracebacks."""
    settings = Settings()

    async def main() -> T:
        db = Database.from_url(settings.database_url, pool=settings.database_pool)
        try:
            await db.check()
            return await work(db, settings)
        finally:
            await db.dispose()

    try:
        return asyncio.run(main())
    except DatabaseConfigError as error:
        raise fail(str(error)) from None
    except DomainError as error:
        raise fail(error.message) from None


async def _migrate(db: Database, settings: Settings) -> None:
    from app.migrations.runner import migrate

    await migrate(settings.database_url)


async def _seed(db: Database, settings: Settings, *, only_if_empty: bool) -> list[str]:
    from app import demo

    async with db.transaction() as session:
        if only_if_empty and not await demo.is_empty(session):
            keys = await demo.usable_demo_keys(session, settings.secret_key.get_secret_value())
            return _describe_keys(keys, seeded=False)
        keys = await demo.seed_demo(session, settings.secret_key.get_secret_value())
    return _describe_keys(keys, seeded=True)


def _describe_keys(keys: "list[DemoKey]", *, seeded: bool) -> list[str]:
    if not keys and not seeded:
        return []  # a database without the demo account (or with its keys revoked)
    lines = ["Demo data seeded." if seeded else "Demo account (slug: demo) keys:"]
    for key in keys:
        role = "admin" if key.admin else "standard"
        lines.append(f"  {key.mode.value.lower():4} {role:8} {key.key}")
    return lines


@cli.command()
def migrate() -> None:
    """Apply database migrations up to the latest."""
    run_with_database(_migrate)
    typer.echo("Database is up to date.")


@cli.command("seed-demo")
def seed_demo() -> None:
    """Create the demo account (slug `demo`) and its keys if missing, and print the keys."""

    async def work(db: Database, settings: Settings) -> list[str]:
        await _migrate(db, settings)
        return await _seed(db, settings, only_if_empty=False)

    for line in run_with_database(work):
        typer.echo(line)


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Server processes.")] = 1,
) -> None:
    """Migrate, seed the demo data on an empty database, and serve the API."""
    import uvicorn

    from app.observability import configure_logging

    settings = Settings()
    if settings.uses_insecure_secret and not settings.is_sqlite and not settings.debug:
        raise fail("set CG_SECRET_KEY: the default secret is only for local SQLite development.")
    if settings.trusted_documents is not None:
        from app.graphql.persisted import ManifestError, TrustedDocuments

        try:
            TrustedDocuments.load(settings.trusted_documents)
        except ManifestError as error:
            raise fail(str(error)) from None

    async def prepare(db: Database, settings: Settings) -> list[str]:
        await _migrate(db, settings)
        return await _seed(db, settings, only_if_empty=True)

    lines = run_with_database(prepare)
    configure_logging(settings.log_level)
    for line in lines:
        typer.echo(line)
    typer.echo(f"GraphiQL: http://{host}:{port}/graphql")
    from app.http_limits import PROTOCOL_PATH
    from app.websocket_writes import PROTOCOL_PATH as WEBSOCKET_PROTOCOL_PATH

    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        proxy_headers=True,
        # Slow or endless requests are cut off: header and body deadlines, a header size cap
        # (uvicorn has none of these for httptools), and uvicorn's own keep-alive timeout.
        http=PROTOCOL_PATH,
        # One write per loop turn and socket instead of one per frame (fan-out bursts).
        ws=WEBSOCKET_PROTOCOL_PATH,
        # A WebSocket message may be as large as a request body, no larger (uvicorn: 16 MiB).
        ws_max_size=settings.max_body_bytes,
        timeout_keep_alive=settings.http_keep_alive_timeout,
    )


@accounts_cli.command("create")
def accounts_create(
    name: Annotated[str, typer.Argument(help="Display name.")],
    slug: Annotated[str, typer.Option("--slug", help="Unique short name, e.g. acme.")],
) -> None:
    """Create an account."""
    from app.accounts import service

    async def work(db: Database, _settings: Settings) -> str:
        async with db.transaction() as session:
            account = await service.create_account(session, name, slug)
        return f"Created account {account.slug} ({account.id})."

    typer.echo(run_with_database(work))


def _set_status(slug: str, status_name: str) -> None:
    from app.accounts import service
    from app.accounts.models import AccountStatus

    async def work(db: Database, _settings: Settings) -> str:
        async with db.transaction() as session:
            account = await service.set_account_status(session, slug, AccountStatus(status_name))
        return f"Account {account.slug} is {account.status.value}."

    typer.echo(run_with_database(work))


@accounts_cli.command("suspend")
def accounts_suspend(slug: str) -> None:
    """Suspend an account: it can still read, but cannot create orders."""
    _set_status(slug, "SUSPENDED")


@accounts_cli.command("activate")
def accounts_activate(slug: str) -> None:
    """Re-activate a suspended account."""
    _set_status(slug, "ACTIVE")


@keys_cli.command("create")
def keys_create(
    account: Annotated[str, typer.Option("--account", help="The account's slug.")],
    mode: Annotated[KeyMode, typer.Option("--mode", help="test or live.")],
    admin: Annotated[bool, typer.Option("--admin", help="Grant the admin role.")] = False,
    name: Annotated[str, typer.Option("--name", help="A label for the key.")] = "CLI key",
) -> None:
    """Create an API key and print only the key, so scripts can capture it."""
    from app.accounts import service
    from app.accounts.models import Mode

    async def work(db: Database, _settings: Settings) -> str:
        async with db.transaction() as session:
            owner = await service.get_account_by_slug(session, account)
            _key, plain = await service.create_api_key(
                session, owner.id, Mode(mode.value.upper()), name=name, is_admin=admin
            )
        return plain

    typer.echo(run_with_database(work))


@cli.command()
def worker() -> None:
    """Run the fulfilment worker and outbox relay on their own (CG_RUN_WORKER=false on servers)."""
    from app.background import Background
    from app.observability import configure_logging

    settings = Settings()
    configure_logging(settings.log_level)

    async def work(db: Database, settings: Settings) -> None:
        await _migrate(db, settings)
        # The worker's state changes are relayed from here too, so subscribers see them.
        background = Background(db, settings, run_worker=True)
        if not background.broker.reaches_other_processes:
            logging.getLogger(__name__).info(
                "no CG_REDIS_URL: servers find this worker's events at their outbox poll "
                "(within 0.2 s) instead of at once"
            )
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signal_number, background.stop)
        await background.run_until_stopped()

    run_with_database(work)


@cli.command("export-schema")
def export_schema() -> None:
    """Print the GraphQL schema (SDL)."""
    from app.graphql.schema import export_sdl

    sys.stdout.write(export_sdl())


def main() -> None:
    cli()
