"""schema.graphql at the repository root is the schema the code serves."""

from pathlib import Path

from app.graphql.schema import export_sdl

SCHEMA_FILE = Path(__file__).parents[1] / "schema.graphql"


def test_schema_file_matches_the_code() -> None:
    assert SCHEMA_FILE.read_text() == export_sdl(), (
        "schema.graphql is stale: run `make schema` (carbon-gateway export-schema > schema.graphql)"
    )


def test_schema_follows_the_public_conventions() -> None:
    sdl = export_sdl()
    assert "interface Node" in sdl
    assert "type PageInfo" in sdl
    for code in (
        "INVALID_INPUT",
        "NOT_FOUND",
        "FORBIDDEN",
        "ACCOUNT_SUSPENDED",
        "IDEMPOTENCY_CONFLICT",
        "ESTIMATE_ALREADY_ORDERED",
        "QUANTITY_NOT_POSITIVE",
        "ORDER_NOT_CANCELLABLE",
    ):
        assert code in sdl
