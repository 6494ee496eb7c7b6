# Two commands on a fresh machine:  `make serve`  and  `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: venv serve test lint typecheck pytest bench bench-quick bench-distributed node-deps system-deps clean

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

## Debian packages the tests need, as command:package: redis-server (the Redis store's tests),
## chromium and chromedriver (the playground's browser tests). Installed with one apt-get when
## any is missing (CI runs as root on a fresh machine); without root they must be installed.
SYSTEM_DEPS := redis-server:redis-server /usr/bin/chromium:chromium /usr/bin/chromedriver:chromium-driver
system-deps:
	@missing=""; \
	for dep in $(SYSTEM_DEPS); do \
	  command -v $${dep%%:*} >/dev/null 2>&1 || missing="$$missing $${dep##*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "The tests need Debian packages:$$missing (as root: apt-get install$$missing)" >&2; \
	    exit 1; \
	  fi; \
	  echo "Installing$$missing with apt-get..."; \
	  log=$$(mktemp); \
	  if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive \
	         apt-get install -y -q $$missing; } >$$log 2>&1; then \
	    cat $$log >&2; rm -f $$log; exit 1; \
	  fi; \
	  rm -f $$log; \
	fi

## Lint, type-check and run the whole test suite (unit, end-to-end, real clients, a browser).
test: $(STAMP) system-deps node-deps lint typecheck pytest

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

# The Redis backend against the in-memory one, one worker against two (needs redis-server:
# make system-deps installs it).
bench-distributed: $(STAMP)
	$(BIN)/python -m benchmarks --distributed

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache tests/node/node_modules
