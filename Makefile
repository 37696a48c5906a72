# SPDX-License-Identifier: Apache-2.0
# riskguard-agent. On a fresh Debian 12 host, as root: `make run` or `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest
CONFIG ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

.PHONY: setup
setup: ## install apt/pip dependencies, mount tracefs, start dockerd, build the test image (idempotent)
	@bash scripts/setup-host.sh

.PHONY: run
run: setup ## run the agent in the foreground (embedded default config unless CONFIG=path)
	$(VENV)/bin/riskguard-agent run $(if $(CONFIG),--config $(CONFIG))

.PHONY: test
test: setup ## run every test: lint, unit, privileged (root, kernel, Docker), e2e; the agent image builds meanwhile
	@bash scripts/run-tests.sh

.PHONY: test-unit
test-unit: setup ## the unit tier only (no root needed once set up), on two workers (pytest-xdist)
	$(PYTEST) tests/unit -q -n 2

.PHONY: fuzz
fuzz: setup ## the property-based fuzzers (tests/unit/fuzz) with many more examples; FUZZ_EXAMPLES=N to change
	HYPOTHESIS_PROFILE=fuzz $(PYTEST) tests/unit/fuzz -q -p no:cacheprovider

.PHONY: lint
lint: setup ## ruff check + ruff format --check + mypy --strict on agent/
	$(VENV)/bin/ruff check agent tests scripts
	$(VENV)/bin/ruff format --check agent tests scripts
	$(VENV)/bin/mypy

.PHONY: bench
bench: setup ## run every benchmark in scripts/bench (ratios against a baseline measured in the same run)
	@set -e; for b in scripts/bench/*.py; do echo "== $$b"; $(PY) $$b; done

.PHONY: config
config: ## regenerate config/agent.yaml from the settings models and the pipeline tables of docs/architecture.md from agent/wiring.py
	$(VENV)/bin/riskguard-agent default-config > config/agent.yaml
	$(VENV)/bin/riskguard-agent pipeline --update docs/architecture.md

.PHONY: install
install: setup ## install as a systemd service: /opt/riskguard (venv), /etc/riskguard (config), the unit
	@bash scripts/install.sh

.PHONY: clean
clean: ## remove the venv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info .test-runs
