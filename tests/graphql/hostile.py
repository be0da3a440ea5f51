"""What the hostile-input tests share: the hostile values of issue 7, a fingerprint of every
table, and a small seeded world to aim at.

The fuzzer (test_fuzz.py) draws its custom-scalar values from the same lists the table
(test_hostile_inputs.py) names one by one, so a class of input found by one is tried by both.
"""

import base64
import hashlib
from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import SQLModel

from app.accounts.models import Account, Mode
from app.config import Settings
from app.db import Database
from app.models import import_all_models
from tests.conftest import make_key
from tests.offsets_fixtures import SeededCatalog, fulfil, gid, place_order, seed_catalog

# Columns a read may legitimately write: the key's last use is recorded on every request, and
# with it the data version of the key's account and mode (app/data_versions.py).
VOLATILE_COLUMNS = {("api_key", "last_used_at"), ("data_version", "version")}

# Decimal strings that must be refused in microseconds, before any arithmetic.
HUGE_DECIMALS = ("1e999999", "1E+1000000", "1e400", "-1e999999", "9" * 5_000)
NON_FINITE_DECIMALS = ("NaN", "-NaN", "sNaN", "Infinity", "-Infinity", "inf")
ODD_DECIMALS = ("-0", "0E-1000000", "1e-999999", "0.0000000000000000000000001", "1.005", "")
HOSTILE_DECIMALS = HUGE_DECIMALS + NON_FINITE_DECIMALS + ODD_DECIMALS
# Integers beyond every 64-bit column and JSON number range.
HUGE_INTEGERS = (2**63, 2**64, 18_446_744_073_709_551_616, 10**400)

# Date-times: without a zone, extreme years with offsets, and not dates at all.
NAIVE_DATETIME = "2026-01-01T00:00:00"
HOSTILE_DATETIMES = (
    NAIVE_DATETIME,
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00-00:01",
    "2026-13-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "not a date",
    "",
)
HOSTILE_DATES = ("0001-01-01", "9999-12-31", "2026-02-30", "10000-01-01", "-0001-01-01", "")

# Text a database or a serialiser may choke on.
LONE_SURROGATE = "\ud800"
NUL = "\u0000"
HOSTILE_TEXTS = (
    NUL,
    f"a{NUL}b",
    "x" * 20_000,
    "\u202e\u200b\ufeff",
    "'; DROP TABLE offset_order; --",
)
HOSTILE_URLS = (
    "http://[::1/",
    "http://example.com:99999/",
    "http://example.com:-1/",
    "http://[::ffff:127.0.0.1]/",
    "http://169.254.169.254/latest/meta-data/",
    "javascript:alert(1)",
    "file:///etc/passwd",
    "http://",
    "",
)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# Global ids that decode to none of our types: each must read as "not found", never an error.
FOREIGN_IDS = (
    b64("Query:x"),
    b64("Foo:bar"),
    b64("Mass:x"),
    b64("Order:not-a-uuid"),
    b64("Order:"),
    b64(":"),
    "not base64!!",
    "====",
    "",
)


def deep_json(depth: int) -> str:
    """A JSON text nested `depth` arrays deep."""
    return "[" * depth + "]" * depth


def deep_object(depth: int) -> dict[str, object]:
    value: dict[str, object] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


async def fingerprint(db: Database) -> dict[str, tuple[int, str]]:
    """Per table: its row count and a hash of all its rows (volatile columns left out).
    Comparing two fingerprints tells whether anything was written, and where."""
    import_all_models()
    prints: dict[str, tuple[int, str]] = {}
    async with db.session() as session:
        connection = await session.connection()
        for table in SQLModel.metadata.sorted_tables:
            columns = [c for c in table.columns if (table.name, c.name) not in VOLATILE_COLUMNS]
            rows = (await connection.execute(select(*columns))).all()
            digest = hashlib.sha256(repr(sorted(repr(tuple(row)) for row in rows)).encode())
            prints[table.name] = (len(rows), digest.hexdigest()[:16])
    return prints


def changed_tables(before: dict[str, tuple[int, str]], after: dict[str, tuple[int, str]]) -> dict:  # type: ignore[type-arg]
    return {
        name: (before.get(name), after.get(name))
        for name in sorted(set(before) | set(after))
        if before.get(name) != after.get(name)
    }


@dataclass
class World:
    """A seeded account: catalog, one PLACED and one FULFILLED order, an admin and a plain key,
    and the global ids of what was seeded (for the fuzzer to aim at)."""

    account: Account
    catalog: SeededCatalog
    admin_key: str
    plain_key: str
    global_ids: list[str]


async def seed_world(db: Database, settings: Settings, account: Account) -> World:
    catalog = await seed_catalog(db, account)
    fulfilled = await place_order(db, account, 1_000, description="fulfilled")
    await fulfil(db, settings)
    placed = await place_order(db, account, 5_000_000, description="more than the stock")
    _, admin_key = await make_key(db, account, Mode.TEST, admin=True)
    plain_row, plain_key = await make_key(db, account, Mode.TEST)
    global_ids = [
        gid("Order", fulfilled.id),
        gid("Order", placed.id),
        catalog.portfolio_gid,
        catalog.cheap_gid,
        catalog.premium_gid,
        gid("Project", catalog.forest),
        gid("Project", catalog.dac),
        *(gid("CreditBatch", batch) for batch in catalog.batches.values()),
        # Not the admin key's own: revoking it would turn the rest of a fuzz run into 401s.
        gid("ApiKey", plain_row.id),
        gid("Account", account.id),
        # A real row id under the wrong type name.
        gid("Bundle", fulfilled.id),
    ]
    return World(account, catalog, admin_key, plain_key, global_ids)
