# `make run` and `make test` each create .venv on first use; nothing else needs installing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test test-sqlite lint format schema bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: install ## serve on http://127.0.0.1:8000 with SQLite, demo data and GraphiQL
	$(BIN)/carbon-gateway serve

test: install ## the whole suite, on SQLite and PostgreSQL
	$(BIN)/python -m pytest

test-sqlite: install
	$(BIN)/python -m pytest -m "not postgres"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy app

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

schema: install ## rewrite schema.graphql from the code
	$(BIN)/carbon-gateway export-schema > schema.graphql

bench: install ## the benchmarks: customer-order items/s, order fulfilment latency, live-event fan-out
	$(BIN)/python -m bench.customer_orders
	$(BIN)/python -m bench.order_latency
	$(BIN)/python -m bench.fanout

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
