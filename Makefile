# Two commands a new user needs: `make run` and `make test`. Everything is installed from
# pyproject.toml into .venv, so a fresh machine needs only Python 3.11+ and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DATA   ?= var
HOST   ?= 127.0.0.1
PORT   ?= 8000
WORKERS ?= 1

.PHONY: run test lint typecheck pytest bench load stress clean install install-dev install-bench \
	cli-catalog

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamp files make re-runs fast while still reinstalling when pyproject.toml changes.
$(VENV)/.run-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[server]'
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[server,dev]'
	touch $@ $(VENV)/.run-installed

$(VENV)/.bench-installed: pyproject.toml $(VENV)/.dev-installed
	$(BIN)/python -m pip install --quiet -e '.[server,dev,bench]'
	touch $@

install: $(VENV)/.run-installed
install-dev: $(VENV)/.dev-installed
install-bench: $(VENV)/.bench-installed

run: install
	@test -f $(DATA)/server/network-id || $(BIN)/refcheck-server init --data-dir $(DATA) --demo --base-url http://$(HOST):$(PORT)
	$(BIN)/refcheck-server serve --data-dir $(DATA) --host $(HOST) --port $(PORT) --workers $(WORKERS)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install-dev
	$(BIN)/mypy

pytest: install-dev
	@command -v chromium >/dev/null 2>&1 || echo "Chromium is not installed: the console's browser tests (tests/console) are skipped (apt-get install -y chromium)"
	$(BIN)/pytest

test: lint typecheck pytest

# Protocol v2 at 1,000,000 entries, SQLite then PostgreSQL (127.0.0.1:5432, or
# REFCHECK_BENCH_PG_URL), then checks per second over HTTP against the crypto bound:
# loadtests/README.md. `python -m loadtests.bench --quick` is a smoke run.
bench: install-dev
	$(BIN)/python -m protocol.bench
	$(BIN)/python -m loadtests.bench
	$(BIN)/python -m loadtests.http_throughput

load: install-dev
	$(BIN)/python -m loadtests.run

# Bursts of 100, 300 and 1,000 concurrent requests against `refcheck-server serve --workers 2`,
# SQLite then PostgreSQL (127.0.0.1:5432, or REFCHECK_BENCH_PG_URL): loadtests/README.md.
stress: install-dev
	$(BIN)/python -m loadtests.stress

# The `refcheck` CLI's messages: re-extract the template, merge it into the .po files and
# compile them (client_sdk/cli/catalogs.py); translate what came in empty, then run it again.
cli-catalog: install-dev
	$(BIN)/python -m client_sdk.cli.catalogs

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
