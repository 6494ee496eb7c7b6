# Two commands on a fresh machine:  `make serve`  and  `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: venv serve test lint typecheck pytest bench bench-quick node-deps system-redis browser-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	touch $(STAMP)

venv: $(STAMP)

## Start the service on the embedded in-memory backend.
serve: $(STAMP)
	$(BIN)/hypercorn --config hypercorn.toml --bind $(HOST):$(PORT) app:serve

node-deps:
	cd tests/node && npm ci --no-audit --no-fund --silent

## redis-server for the Redis store's tests: installed with apt-get when missing (CI runs as
## root on a fresh machine); without root it must already be installed.
system-redis:
	@command -v redis-server >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" -ne 0 ]; then \
	    echo "redis-server is missing: apt-get install redis-server (as root)" >&2; exit 1; \
	  fi; \
	  apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    redis-server >/dev/null; \
	}

## Debian's chromium and chromedriver for the playground's browser tests: installed with
## apt-get when missing (CI runs as root on a fresh machine); nothing to do when present.
CHROMIUM_BINS := /usr/bin/chromium /usr/bin/chromedriver
browser-deps:
	@for bin in $(CHROMIUM_BINS); do [ -x $$bin ] || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "The browser tests need Debian's chromium and chromium-driver:" \
	         "sudo apt-get install chromium chromium-driver" >&2; exit 1; \
	  fi; \
	  echo "Installing chromium and chromium-driver with apt-get..."; \
	  log=$$(mktemp); \
	  if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive \
	         apt-get install -y -q chromium chromium-driver; } >$$log 2>&1; then \
	    cat $$log >&2; rm -f $$log; exit 1; \
	  fi; \
	  rm -f $$log; \
	fi

## Lint, type-check and run the whole test suite (unit, end-to-end, real clients, a browser).
test: $(STAMP) system-redis node-deps browser-deps lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check
	$(BIN)/ruff format --check

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m benchmarks

bench-quick: $(STAMP)
	$(BIN)/python -m benchmarks --quick

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache tests/node/node_modules
