# The project's tasks. `make demo` and `make test` are the README's two commands:
# each sets everything up from a fresh clone (venv, Python packages, Kafka jars).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup demo dev test lint unit bench wheel-test

$(BIN)/orchestrator-state: pyproject.toml
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/orchestrator-state
	$(BIN)/orchestrator-state services jars

demo: setup
	$(BIN)/orchestrator-state demo

dev: setup
	$(BIN)/orchestrator-state dev

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

unit: setup
	$(BIN)/python -m pytest tests/unit -q

test: lint
	$(BIN)/python -m pytest
	$(BIN)/python tests/wheel/check_wheel.py

# The built wheel installed into a new venv and used from a user's project (not the checkout).
wheel-test: setup
	$(BIN)/python tests/wheel/check_wheel.py

bench: setup
	$(BIN)/orchestrator-state bench append
	$(BIN)/orchestrator-state bench project
	$(BIN)/orchestrator-state bench checkpoint
	$(BIN)/orchestrator-state bench restore
