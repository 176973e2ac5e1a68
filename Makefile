# Shortcuts (spec 002's targets plus test, bench and demo). Every target that
# runs Python installs the project into .venv first, so a fresh clone works.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INTERVAL ?= 2
BATCH ?= 50

.PHONY: install init seed stream counts reset demo test bench fmt lint typecheck clean

$(BIN)/oltpseed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,dev]'
	touch $@

install: $(BIN)/oltpseed

init: install
	$(BIN)/oltpseed init-db

counts: install
	$(BIN)/oltpseed counts

reset: install
	$(BIN)/oltpseed reset

# The main job on the embedded server (started on first use, reused after).
demo: install
	$(BIN)/oltpseed server start
	$(BIN)/oltpseed init-db
	$(BIN)/oltpseed counts

test: install
	$(BIN)/pytest -n 2

bench: install
	@ls bench/*.py >/dev/null 2>&1 || { echo "no benchmarks yet"; exit 0; }
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

clean:
	rm -rf $(VENV) dist build .pytest_cache .ruff_cache .mypy_cache .tox
