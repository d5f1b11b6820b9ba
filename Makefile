PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.installed-docs
FLOORS := .venv-floors

.PHONY: test demo install lint typecheck pytest slow bench docs test-floors clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e ".[dev,docs]"
	touch $(DOCS_STAMP)

install: $(STAMP)

lint: install
	$(BIN)/python -m ruff check persidict tests benchmarks examples scripts

typecheck: install
	$(BIN)/python -m mypy

pytest: install
	$(BIN)/python -m pytest -q

test: lint typecheck pytest

slow: install
	$(BIN)/python -m pytest -q -m slow

# The test suite (slow tests excluded) against the lowest versions pyproject.toml allows: every
# direct dependency at its floor (uv's lowest-direct resolution), in a venv of its own.
test-floors: install
	rm -rf $(FLOORS)
	$(BIN)/uv venv -q --python $(PY) $(FLOORS)
	$(BIN)/uv pip install -q --python $(FLOORS)/bin/python --resolution lowest-direct -e ".[test]"
	$(BIN)/uv pip list --python $(FLOORS)/bin/python 2>/dev/null \
		| grep -iE '^(attrs|cattrs|click|jsonpickle|joblib|lz4|typing.extensions|boto3|botocore|lmdb|hypothesis|pytest|pytest-timeout|moto|numpy|mypy) '
	$(FLOORS)/bin/python -m pytest -q

# The documentation site, into site/: figures drawn from benchmarks/results, warnings are errors.
docs: $(DOCS_STAMP)
	$(BIN)/python scripts/plot_benchmarks.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --quiet

demo: install
	$(BIN)/python examples/tour.py

bench: install
	$(BIN)/python benchmarks/bench_files.py
	$(BIN)/python benchmarks/bench_lmdb.py
	$(BIN)/python benchmarks/bench_s3.py
	$(BIN)/python benchmarks/bench_wrappers.py
	$(BIN)/python benchmarks/bench_local.py
	$(BIN)/python benchmarks/bench_keys.py
	$(BIN)/python benchmarks/bench_copy.py
	$(BIN)/python benchmarks/bench_batch_s3.py
	$(BIN)/python benchmarks/bench_aio.py
	$(BIN)/python benchmarks/bench_startup.py

clean:
	rm -rf $(VENV) $(FLOORS) site docs/img
