# `make run` and `make test` each create .venv on first use; nothing else needs installing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The GraphiQL bundle (graphiql/ -> app/static/graphiql): rebuilt only when its sources or
# lockfile change; `npm ci` only when the lockfile does.
NODE_STAMP := graphiql/node_modules/.installed-stamp
GRAPHIQL_STAMP := app/static/graphiql/.built-stamp
GRAPHIQL_SOURCES := graphiql/build.mjs $(shell find graphiql/src -type f 2>/dev/null)
# The JavaScript clients the conformance tests drive (tests/e2e/test_js_clients.py).
CLIENTS := tests/clients
CLIENTS_STAMP := $(CLIENTS)/node_modules/.installed-stamp

.PHONY: install graphiql js-clients run test test-sqlite lint format schema bench bench-speed clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

$(NODE_STAMP): graphiql/package.json graphiql/package-lock.json
	cd graphiql && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(GRAPHIQL_STAMP): $(NODE_STAMP) $(GRAPHIQL_SOURCES)
	cd graphiql && npm run --silent build
	touch $@

graphiql: $(GRAPHIQL_STAMP) ## build the self-hosted GraphiQL bundle

# Reinstalled only when the lockfile changes. Without npm the JS client tests skip, except
# under CI=true, where they must run.
$(CLIENTS_STAMP): $(CLIENTS)/package-lock.json
	@if command -v npm >/dev/null; then \
		npm ci --prefix $(CLIENTS) --no-audit --no-fund && touch $@; \
	elif [ "$$CI" = "true" ]; then \
		echo "npm is required under CI=true (JavaScript client tests)" >&2; exit 1; \
	else \
		echo "npm not found: the JavaScript client tests will skip"; \
	fi

js-clients: $(CLIENTS_STAMP) ## the JS GraphQL clients for the conformance tests

run: install graphiql ## serve on http://127.0.0.1:8000 with SQLite, demo data and GraphiQL
	$(BIN)/carbon-gateway serve

test: install graphiql js-clients ## the whole suite, on SQLite and PostgreSQL
	$(BIN)/python -m pytest

test-sqlite: install graphiql js-clients
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

bench: install ## the benchmarks: speed side by side, customer-order items/s, fulfilment latency, fan-out, the read floor
	$(BIN)/python -m bench.speed
	$(BIN)/python -m bench.customer_orders
	$(BIN)/python -m bench.order_latency
	$(BIN)/python -m bench.fanout
	$(BIN)/python -m bench.read_floor

bench-speed: install ## issue 10's reads and writes side by side (needs /usr/bin/wrk)
	$(BIN)/python -m bench.speed

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache graphiql/node_modules app/static/graphiql $(CLIENTS)/node_modules
