# GloboLatte: `make dev` for the UI on local defaults, `make test` for the suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export GLOBOLATTE_HOME ?= $(CURDIR)/.globolatte
export DAGSTER_HOME ?= $(GLOBOLATTE_HOME)/dagster_home
LIVE_INTERVAL ?= 60
SERVE_PORT ?= 8765
UI_PORT ?= 3000
PYTEST_ARGS ?=

.PHONY: install dev demo test lint bench tools services clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

# Test-only services and tools: Azurite (npm, into ./node_modules), Debian chromium, checkov.
node_modules/.bin/azurite: package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

services: node_modules/.bin/azurite
	@command -v chromium >/dev/null || { echo "installing Debian chromium"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || { echo "could not install chromium: run 'sudo apt-get install chromium'"; exit 1; }; }

tools:
	@if [ -f deploy/tools/install.sh ]; then bash deploy/tools/install.sh; fi

$(DAGSTER_HOME)/dagster.yaml: deploy/local/dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp deploy/local/dagster.yaml $@

dev: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/globolatte simulate --if-empty
	@echo "Dagster UI: http://127.0.0.1:$(UI_PORT)  (simulator adds a day every $(LIVE_INTERVAL) s)"
	@echo "Scoring endpoint: http://127.0.0.1:$(SERVE_PORT)/score once the first champion is registered"
	@BIN=$(BIN) LIVE_INTERVAL=$(LIVE_INTERVAL) SERVE_PORT=$(SERVE_PORT) UI_PORT=$(UI_PORT) bash deploy/local/dev.sh

demo: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/globolatte simulate --if-empty --days 60 --customers 500
	$(BIN)/globolatte run
	$(BIN)/globolatte serve --port $(SERVE_PORT)

test: install services tools
	$(BIN)/pytest -n 2 --dist loadfile --no-loadscope-reorder -q $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check globolatte_dagster globolatte_dagster_tests benchmarks
	$(BIN)/ruff format --check globolatte_dagster globolatte_dagster_tests benchmarks

bench: install services
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf $(GLOBOLATTE_HOME)
