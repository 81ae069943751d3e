# The two commands a newcomer needs: `make demo` and `make test`. Both set up what they need first:
# system packages (scripts/system-deps.sh), a virtual environment in .venv, and the project in it.
VENV ?= .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: demo test lint setup clean

$(PY):
	scripts/system-deps.sh
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(RUN_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@ $(RUN_STAMP)

setup: $(RUN_STAMP)
	scripts/system-deps.sh

demo: setup
	$(VENV)/bin/hub-server demo $(DEMO_ARGS)

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: $(DEV_STAMP)
	scripts/system-deps.sh --browser
	$(MAKE) lint
	$(PY) -m pytest -q -ra $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
