# tokenward — the same commands locally and in CI.
#   make run    create/refresh .venv, initialise ./tokenward-data if needed, serve on 127.0.0.1:8080
#   make test   create/refresh .venv with dev tools, then ruff, mypy --strict and pytest
#   make lint   ruff, mypy, codespell and the import contracts (.importlinter)
#   make bench  benchmark scripts in bench/
#   make fuzz   every parser of untrusted input under atheris, FUZZ_SECONDS (60) each (docs/security.md)
#   make dist   build the wheel and sdist into dist/ (docs/deployment.md)
#   make screenshots  PNGs of every portal page into docs/screenshots/ (needs /usr/bin/chromium)

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SERVER_NAME ?= localhost
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: run test lint bench fuzz dist screenshots clean

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
	$(BIN)/mypy bench
	$(BIN)/codespell src tests docs README.md
	PYTHONPATH=src $(BIN)/lint-imports --no-cache  # .importlinter: layers import downward only

# Most tests wait on subprocesses, databases and browsers rather than on the CPU, so four
# workers finish well before one even on two cores; each test file stays on one worker
# (module fixtures such as a running server are made once). TEST_WORKERS=0 runs in-process.
TEST_WORKERS ?= 4

test: lint
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

bench: $(VENV)/.dev-installed
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= $(shell $(BIN)/python -c "from tests.fuzz.targets import TARGETS; print(*TARGETS)" 2>/dev/null)
fuzz: $(VENV)/.dev-installed
	@mkdir -p .fuzz; for target in $(FUZZ_TARGETS); do echo "== fuzz $$target ($(FUZZ_SECONDS) s)"; \
		$(BIN)/python -m tests.fuzz.run_atheris $$target $(FUZZ_SECONDS) >.fuzz/$$target.log 2>&1 \
			|| { tail -n 60 .fuzz/$$target.log; echo "fuzz: $$target crashed (input in .fuzz/crash-$$target-*)"; exit 1; }; \
		grep -E '^(Done|stat::new_units)' .fuzz/$$target.log; done

dist: $(VENV)/.dev-installed
	rm -rf dist
	$(BIN)/python -m build --outdir dist .

screenshots: $(VENV)/.dev-installed
	TOKENWARD_SCREENSHOTS=docs/screenshots $(BIN)/pytest -q tests/ui/test_browser.py tests/ui/test_authenticator.py

clean:
	rm -rf $(VENV) dist .mypy_cache .ruff_cache .pytest_cache .hypothesis .fuzz
