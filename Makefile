# Two commands on a fresh machine: `make demo` runs the whole job end to end, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint ui bench clean-data

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/payouts demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

# The benchmark: a week of REFUNDS refunds end to end, with the baselines; figures in BENCHMARKS.md.
REFUNDS ?= 100000
bench: $(STAMP)
	$(BIN)/payouts bench --refunds $(REFUNDS)

# The Dagster UI on the installation's persistent instance (http://127.0.0.1:3000).
ui: $(STAMP)
	$(BIN)/payouts ui

clean-data:
	rm -rf data/ledger.duckdb data/dagster data/inbox data/outbox data/archive data/reports data/demo-export
