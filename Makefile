# Two commands for a newcomer: `make demo` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench bench-aggregation clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,postgres]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/labelbot demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench: bench-aggregation
	$(BIN)/python benchmarks/answer_loop.py

bench-aggregation: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,postgres,bench]'
	$(BIN)/python benchmarks/aggregation.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
