# Two commands: `make demo` and `make test`. Each sets up .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The demo needs the package alone: a first `make demo` does not wait for the test tools.
DEMO_STAMP := $(VENV)/.installed-demo

.PHONY: demo test test-fast lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(DEMO_STAMP): setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $(DEMO_STAMP)

$(STAMP): setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP) $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/python -m comet_sync demo

# mypy --strict on the package and the examples wherever mypy runs (3.10+; the 3.9 run checks
# the suite only).
test: $(STAMP)
	$(BIN)/ruff check .
	if [ -x $(BIN)/mypy ]; then $(BIN)/mypy; fi
	$(BIN)/python -m pytest -q

# The edit-test loop: everything but the tests marked slow (processes, real-time scenarios).
# CI runs the whole suite (`make test`).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python benchmarks/overhead.py

clean:
	rm -rf $(VENV) .venv39 *.egg-info .pytest_cache .ruff_cache
