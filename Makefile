# Shortcuts (spec 002's targets plus test, bench and demo). Every target that
# runs Python installs the project into .venv first, so a fresh clone works.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INTERVAL ?= 2
BATCH ?= 50

.PHONY: install init seed stream pause resume counts reset check demo test bench fmt lint typecheck clean

$(BIN)/oltpseed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,dev,ui]'
	touch $@

install: $(BIN)/oltpseed

init: install
	$(BIN)/oltpseed init-db

seed: install
	$(BIN)/oltpseed seed --profile $${PROFILE:-MEDIUM}

stream: install
	$(BIN)/oltpseed stream --interval $${INTERVAL:-2} --batch-size $${BATCH:-50}

pause: install
	$(BIN)/oltpseed pause

resume: install
	$(BIN)/oltpseed resume

counts: install
	$(BIN)/oltpseed counts

check: install
	$(BIN)/oltpseed check

reset: install
	$(BIN)/oltpseed reset

# The main job on the embedded server (started on first use, reused after):
# seed both domains at MEDIUM (or PROFILE=...), stream changes for DURATION
# seconds (default 20) with a JSON ledger, then check every data rule.
demo: install
	$(BIN)/oltpseed server start
	$(BIN)/oltpseed seed --profile $${PROFILE:-MEDIUM}
	$(BIN)/oltpseed stream --duration $${DURATION:-20} --interval 1 --report logs/stream-report.json
	$(BIN)/oltpseed check

test: install
	$(BIN)/pytest -n 2

bench: install
	$(BIN)/python bench/generate.py
	$(BIN)/python bench/seed.py
	$(BIN)/python bench/stream.py
	$(BIN)/python bench/cdc.py

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
