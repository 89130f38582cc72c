# `make serve` and `make test` set everything up from a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
TS_CHECK := clients/typescript
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install serve test lint typecheck format lock openapi bench clean

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.installed: requirements-dev.lock pyproject.toml | $(BIN)/uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python --require-hashes -r requirements-dev.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

# openapi-typescript and tsc, pinned by package-lock.json, for the frontend type check.
$(TS_CHECK)/node_modules/.installed: $(TS_CHECK)/package-lock.json
	npm ci --prefix $(TS_CHECK) --no-audit --no-fund --silent
	touch $@

install: $(VENV)/.installed $(TS_CHECK)/node_modules/.installed

# Webhooks are delivered from the server process itself, and may go to plain-http loopback
# receivers such as `crm-api webhooks listen` (production runs `crm-api worker` instead).
serve: install
	$(BIN)/crm-api migrate
	$(BIN)/crm-api demo
	CRM_WEBHOOKS_ALLOW_INSECURE=true $(BIN)/crm-api serve --with-worker --host $(HOST) --port $(PORT)

lint: install
	$(BIN)/ruff check src tests bench migrations
	$(BIN)/ruff format --check src tests bench migrations

typecheck: install
	$(BIN)/mypy

test: install lint typecheck
	$(BIN)/pytest

format: install
	$(BIN)/ruff check --fix src tests bench migrations
	$(BIN)/ruff format src tests bench migrations

# Runtime dependencies (the Docker image) and runtime + dev (everything else), hash-pinned.
lock: $(BIN)/uv
	$(BIN)/uv pip compile pyproject.toml --generate-hashes --python-version 3.11 -q -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 -q -o requirements-dev.lock

openapi: install
	$(BIN)/crm-api openapi export

clean:
	rm -rf $(VENV) $(TS_CHECK)/node_modules .pytest_cache .mypy_cache .ruff_cache
