PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo install lint typecheck pytest slow bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/python -m ruff check persidict tests benchmarks examples

typecheck: install
	$(BIN)/python -m mypy

pytest: install
	$(BIN)/python -m pytest -q

test: lint typecheck pytest

slow: install
	$(BIN)/python -m pytest -q -m slow

demo: install
	$(BIN)/python examples/tour.py

bench: install
	$(BIN)/python benchmarks/bench_files.py
	$(BIN)/python benchmarks/bench_lmdb.py
	$(BIN)/python benchmarks/bench_s3.py
	$(BIN)/python benchmarks/bench_wrappers.py

clean:
	rm -rf $(VENV)
