# Two commands do everything on a fresh Debian machine: `make demo` and `make test`.
# Everything else here is what they are made of.

SHELL := /bin/bash
PYTHON ?= python3
TOOLS := .tools
UV := $(shell command -v uv 2>/dev/null || echo $(TOOLS)/bin/uv)
VENV := .venv
BIN := $(VENV)/bin
# Debian packages the test suite talks to as real peers (binary -> package).
PEERS := sipp:sip-tester baresip:baresip chromium:chromium espeak-ng:espeak-ng sox:sox \
	rtpengine:rtpengine-daemon linphonec:linphone-cli dnsmasq:dnsmasq-base
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test env peers lint typecheck contracts pytest bench clean help

help:
	@echo "make demo   - set up, migrate, load the demo account and serve it"
	@echo "make test   - set up (incl. Debian test peers) and run the whole suite"

$(TOOLS)/bin/uv:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv

# Bytecode is compiled here, not left to the first import: where PYTHONDONTWRITEBYTECODE is set
# (as on our CI machines) Python never caches it, and every process — each `zvonar` command,
# each test worker and subprocess — compiled ~1,000 modules again: 13 s to import the app
# instead of 4 s. Both steps only compile what changed.
env: $(UV)
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	$(BIN)/python -m compileall -q src

peers:
	@missing=""; for pair in $(PEERS); do \
	  cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$cmd >/dev/null 2>&1 || test -x /usr/sbin/$$cmd || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing test peers:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

demo: env
	$(BIN)/zvonar --data-dir $${ZVONAR_DATA_DIR:-var/demo} demo

lint: env
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: env
	$(BIN)/mypy

contracts: env
	$(BIN)/lint-imports

# Two pytest-xdist workers: the suite mostly waits on peers and timers, so two halve its time
# on two cores. Each worker has its own port ranges and PostgreSQL database
# (tests/support/workers.py). PYTEST_WORKERS=0 runs it in this one process.
PYTEST_WORKERS ?= 2

pytest: env peers
	$(BIN)/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

test: env peers lint typecheck contracts pytest

bench: env
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache
	find src -name __pycache__ -type d -prune -exec rm -rf {} +
