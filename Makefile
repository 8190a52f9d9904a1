# Two commands for a new machine: `make run` installs and starts the hub, `make test` installs
# the test dependencies and runs the suite. Both keep everything in ./.venv (no root needed).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test install install-test bench-intake bench-pipeline clean

run: install
	$(BIN)/hub run

test: install-test
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

bench-intake: install-test
	$(BIN)/python bench/intake.py

bench-pipeline: install-test
	$(BIN)/python bench/pipeline.py

clean:
	rm -rf $(VENV) instance .pytest_cache
