# `make test` and `make run` set up .venv themselves on a fresh machine.
PYTHON ?= python3
VENV := .venv
VENV_PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV_PYTHON) -m pip install -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV_PYTHON) -m search.run $(ARGS)

test: $(STAMP)
	$(VENV_PYTHON) -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf ray_results sweeps .pytest_cache
