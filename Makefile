# The two commands a newcomer needs: `make demo` and `make test`. Both set up what they need first:
# system packages (scripts/system-deps.sh), a virtual environment in .venv, and the project in it.
VENV ?= .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
# Run a second time on PostgreSQL by `make test` (docs/hub.md, "The store on SQLite or PostgreSQL").
STORE_SUITE ?= tests/hub tests/logistics

.PHONY: demo test lint setup clean system-test pi-vm-test

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
	scripts/postgres-test-server.sh
	$(MAKE) lint
	$(PY) -m pytest -q -ra $(PYTEST_ARGS)
	HUB_TEST_STORE=postgresql $(PY) -m pytest -q -ra $(STORE_SUITE)
	$(MAKE) system-test

# The hub and an agent installed by the install scripts on a real systemd (Debian bookworm in systemd-nspawn),
# docs/deploy.md "Proven on a real systemd". Needs root; without it (or without nspawn) it says why and skips.
system-test:
	@if [ "$$(id -u)" -eq 0 ]; then scripts/system-deps.sh --system-test; fi
	python3 -m tests.system

# The same on arm64 in a full qemu-system-aarch64 VM (about 20x slower than a Pi under emulation; not in CI).
pi-vm-test:
	@if [ "$$(id -u)" -eq 0 ]; then scripts/system-deps.sh --pi-vm; fi
	python3 -m tests.system.pi_vm

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
