"""Apply migrations programmatically, so the CLI and tests need no alembic.ini."""

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # '%' is ConfigParser's interpolation character; URL-encoded passwords contain it.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade_to_head(database_url: str) -> None:
    """Blocking: call from sync code, or through `migrate` from async code."""
    command.upgrade(alembic_config(database_url), "head")


async def migrate(database_url: str) -> None:
    # env.py runs its own event loop, so it goes to a thread when one is already running.
    await asyncio.to_thread(upgrade_to_head, database_url)
