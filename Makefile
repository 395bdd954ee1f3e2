# tokenward — the same commands locally and in CI.
#   make run    create/refresh .venv, initialise ./tokenward-data if needed, serve on 127.0.0.1:8080
#   make test   create/refresh .venv with dev tools, then ruff, mypy --strict and pytest
#   make lint   ruff + mypy only
#   make bench  benchmark scripts in bench/
#   make dist   build the wheel and sdist into dist/ (docs/deployment.md)
#   make screenshots  PNGs of every portal page into docs/screenshots/ (needs /usr/bin/chromium)

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SERVER_NAME ?= localhost
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: run test lint bench dist screenshots clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# Stamps: reinstall when pyproject.toml changes.
$(VENV)/.run-installed: pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	@touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[dev]'
	@touch $@ $(VENV)/.run-installed

run: $(VENV)/.run-installed
	$(BIN)/tokenward init --server-name $(SERVER_NAME) --exist-ok
	$(BIN)/tokenward serve

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy
	$(BIN)/codespell src tests docs README.md

test: lint
	$(BIN)/pytest -q

bench: $(VENV)/.dev-installed
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

dist: $(VENV)/.dev-installed
	rm -rf dist
	$(BIN)/python -m build --outdir dist .

screenshots: $(VENV)/.dev-installed
	TOKENWARD_SCREENSHOTS=docs/screenshots $(BIN)/pytest -q tests/ui/test_browser.py tests/ui/test_authenticator.py

clean:
	rm -rf $(VENV) dist .mypy_cache .ruff_cache .pytest_cache .hypothesis
