# The two commands of the README: `make demo` and `make test`.
# Each creates the virtual environment (.venv) and installs what it needs.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-console test lint typecheck bench bench-redis bench-cluster bench-scale bench-feed bench-outbox bench-idempotent clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench,outbox]'
	touch $(STAMP)

# The shop as a web app, with its live dashboard (prints the URL; Ctrl+C to stop).
demo: $(STAMP)
	$(BIN)/python -m examples.shop_demo

# A day at the till in the console, with a summary at the end.
demo-console: $(STAMP)
	$(BIN)/python -m examples.shop_demo.console

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m benchmarks.local

bench-redis: $(STAMP)
	$(BIN)/python -m benchmarks.redis

bench-cluster: $(STAMP)
	$(BIN)/python -m benchmarks.cluster

bench-scale: $(STAMP)
	$(BIN)/python -m benchmarks.scale

bench-feed: $(STAMP)
	$(BIN)/python -m benchmarks.feed

bench-outbox: $(STAMP)
	$(BIN)/python -m benchmarks.outbox

bench-idempotent: $(STAMP)
	$(BIN)/python -m benchmarks.idempotent

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
