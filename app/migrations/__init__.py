"""Alembic migrations; `carbon-gateway migrate` applies them (see app/migrations/runner.py)."""
