"""Run the CLI as `python -m app`."""

from app.cli import main

main()
