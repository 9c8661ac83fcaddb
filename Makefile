# The two commands a newcomer needs: `make run` and `make test`. Everything else is detail.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8000

.PHONY: run test test-prereqs install lint format clean openapi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

install: $(STAMP)

## Migrate the SQLite default (data/corpus.db), load seeds/, serve on http://127.0.0.1:$(PORT)
## (8000 unless `make run PORT=18100`)
run: $(STAMP)
	$(BIN)/corpus migrate
	$(BIN)/corpus ingest seeds/
	$(BIN)/corpus serve --host 127.0.0.1 --port $(PORT)

## The whole suite, on SQLite and on the local PostgreSQL (PG_ADMIN_URL to point elsewhere)
test: $(STAMP) test-prereqs
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site  # not --quiet: it hides the warnings --strict fails on

## Chromium, its driver, Node's packages and a running PostgreSQL: installed or started if missing
test-prereqs:
	scripts/test-prereqs

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) data site .pytest_cache .mypy_cache .ruff_cache

## Regenerate openapi.json, the committed contract that tests/test_openapi.py checks
openapi: $(STAMP)
	$(BIN)/python -c 'from app.api.openapi import render; from app.main import create_app; open("openapi.json", "w").write(render(create_app()))'
