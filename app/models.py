"""Imports every domain's tables so that SQLModel.metadata is complete (migrations, tests)."""


def import_all_models() -> None:
    import app.accounts.models  # noqa: F401
