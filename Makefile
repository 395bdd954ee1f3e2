# tokenward — the same commands locally and in CI.
#   make run    create/refresh .venv, initialise ./tokenward-data if needed, serve on 127.0.0.1:8080
#   make test   create/refresh .venv with dev tools, then ruff, mypy --strict and pytest: on the sources, then
#               on the /verify hot path compiled with mypyc (hatch_build.py, .compiled/), built meanwhile
#   make compiled       .compiled/tokenward: the sources with the hot path compiled (rebuilt when they change)
#   make test-compiled  the suite on .compiled alone
#   make lint   ruff, mypy, codespell and the import contracts (.importlinter)
#   make bench  benchmark scripts in bench/
#   make fuzz   every parser of untrusted input under atheris, FUZZ_SECONDS (60) each (docs/security.md)
#   make dist   build the wheel (hot path compiled where a C compiler is there) and sdist into dist/ (docs/deployment.md)
#   make screenshots  PNGs of every portal page into docs/screenshots/ (needs /usr/bin/chromium)

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SERVER_NAME ?= localhost
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: run test test-compiled compiled lint bench fuzz dist screenshots clean

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

PYTEST := $(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile
COMPILED := .compiled
# The second run imports tokenward from the compiled copy (an absolute path: tests run programs from other
# directories); tests/conftest.py stops it unless every hot-path module is an extension there.
COMPILED_ENV := TOKENWARD_TEST_COMPILED=1 TOKENWARD_COMPILED_DIR=$(CURDIR)/$(COMPILED) PYTHONPATH=$(CURDIR)/$(COMPILED)

# The compiled copy is built while the first run waits on its databases and servers. Without a C compiler the
# second run is skipped with the reason, except under CI=true, where that fails.
test: lint
	@mkdir -p $(COMPILED); \
	if why=$$($(BIN)/python hatch_build.py --check); then \
		{ $(BIN)/python hatch_build.py $(COMPILED) >$(COMPILED)/build.log 2>&1; echo $$? >$(COMPILED)/build.status; } & \
		builder=$$!; \
	else builder=; fi; \
	$(PYTEST) || { [ -z "$$builder" ] || wait $$builder; exit 1; }; \
	if [ -z "$$builder" ]; then \
		if [ "$$CI" = true ]; then echo "make test: cannot run the compiled pass: $$why" >&2; exit 1; fi; \
		echo "make test: compiled pass skipped: $$why"; exit 0; \
	fi; \
	wait $$builder; \
	if [ "$$(cat $(COMPILED)/build.status)" != 0 ]; then cat $(COMPILED)/build.log >&2; exit 1; fi; \
	echo "== the same suite on the compiled hot path ($(COMPILED))"; \
	$(COMPILED_ENV) $(PYTEST)

compiled: $(VENV)/.dev-installed
	$(BIN)/python hatch_build.py $(COMPILED)

test-compiled: compiled
	$(COMPILED_ENV) $(PYTEST)

bench: $(VENV)/.dev-installed
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= $(shell $(BIN)/python -c "from tests.fuzz.targets import TARGETS; print(*TARGETS)" 2>/dev/null)
fuzz: $(VENV)/.dev-installed
	@mkdir -p .fuzz; for target in $(FUZZ_TARGETS); do echo "== fuzz $$target ($(FUZZ_SECONDS) s)"; \
		$(BIN)/python -m tests.fuzz.run_atheris $$target $(FUZZ_SECONDS) >.fuzz/$$target.log 2>&1 \
			|| { tail -n 60 .fuzz/$$target.log; echo "fuzz: $$target crashed (input in .fuzz/crash-$$target-*)"; exit 1; }; \
		grep -E '^(Done|stat::new_units)' .fuzz/$$target.log; done

# Without build isolation: the compiling hook needs mypy and the dependencies' types from the dev install.
# TOKENWARD_COMPILE=0 builds the pure-Python wheel, =1 fails where the hot path cannot be compiled.
dist: $(VENV)/.dev-installed
	rm -rf dist
	$(BIN)/python -m build --no-isolation --outdir dist .

screenshots: $(VENV)/.dev-installed
	TOKENWARD_SCREENSHOTS=docs/screenshots $(BIN)/pytest -q tests/ui/test_browser.py tests/ui/test_authenticator.py

clean:
	rm -rf $(VENV) dist $(COMPILED) .mypy_cache .ruff_cache .pytest_cache .hypothesis .fuzz
