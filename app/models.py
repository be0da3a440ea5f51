"""Imports every domain's tables so that SQLModel.metadata is complete (migrations, tests)."""

import importlib

MODEL_MODULES = (
    "app.accounts.models",
    "app.emissions.models",
    "app.catalog.models",
    "app.offsets.models",
    "app.events.models",
    "app.data_versions",
)


def import_all_models() -> None:
    for module in MODEL_MODULES:
        importlib.import_module(module)
