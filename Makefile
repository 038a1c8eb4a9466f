# The two commands a new machine needs: `make demo` and `make test`.
# Both create .venv on first use; only Python 3.11+ and make are required.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint typecheck unit soak bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamp files re-run the install whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@ $(VENV)/.installed

# The demo ends by pointing at `serve` and `report`, so it brings the web extra along.
$(VENV)/.installed-web: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[web]'
	@touch $@ $(VENV)/.installed

demo: $(VENV)/.installed-web
	$(BIN)/aggregator demo

lint: $(VENV)/.installed-test
	$(BIN)/ruff check aggregator tests
	$(BIN)/ruff format --check aggregator tests

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

unit: $(VENV)/.installed-test
	$(BIN)/pytest -q

test: lint typecheck unit

# The long variants of tests/reliability: 100 SIGKILLs instead of 20, readers for a
# minute instead of 20 s, 10x the property examples.
soak: $(VENV)/.installed-test
	AGGREGATOR_SOAK=1 $(BIN)/pytest -q tests/reliability --durations=10

# Benchmarks print figures and write bench/results.md; BENCH=full for the large sizes.
$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	@touch $@ $(VENV)/.installed $(VENV)/.installed-test

bench: $(VENV)/.installed-bench
	BENCH=$(BENCH) $(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache data/demo.db data/demo.db-wal data/demo.db-shm
