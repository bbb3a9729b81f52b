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

# editable_mode=compat: the package goes on sys.path through a plain path in a .pth file,
# which mypy and pyright read; setuptools' default (an import hook) hides it from both.
# setuptools calls compat "transitional": a src/ layout, whose default editable install is such
# a path, is the lasting fix (not done: every import path in the tree would move).
EDITABLE := --config-settings editable_mode=compat

$(DEMO_STAMP): setup.cfg pyproject.toml Makefile | $(BIN)/python
	$(BIN)/python -m pip install --quiet $(EDITABLE) -e .
	touch $(DEMO_STAMP)

$(STAMP): setup.cfg pyproject.toml Makefile | $(BIN)/python
	$(BIN)/python -m pip install --quiet $(EDITABLE) -e '.[test]'
	touch $(STAMP) $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/python -m comet_sync demo

# mypy --strict on the package and the examples wherever mypy runs (3.10+; the 3.9 run checks
# the suite only).
# Two test processes, a test module to each (its fixtures, a Redis or Celery workers, start once):
# most of the suite's time is spent waiting on real time, so two halve it on two cores.
PARALLEL := -n 2 --dist loadfile

test: $(STAMP)
	$(BIN)/ruff check .
	if [ -x $(BIN)/mypy ]; then $(BIN)/mypy; fi
	$(BIN)/python -m pytest -q $(PARALLEL)

# The edit-test loop: everything but the tests marked slow (processes, real-time scenarios).
# CI runs the whole suite (`make test`).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" $(PARALLEL)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python benchmarks/overhead.py

clean:
	rm -rf $(VENV) .venv39 *.egg-info .pytest_cache .ruff_cache
