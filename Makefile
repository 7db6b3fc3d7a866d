# make up · make test · make lint · make bench · make down · make clean-data
# Every target sets up the pinned tools it needs first (_dev-env/scripts/dev-setup.bash): `make
# up` only what `tilt up` runs, the others the test-only tools too. With the tools cached that
# takes a second or two.

REPO := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
include $(REPO)/_dev-env/versions.env

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV ?= $(or $(CONCEPTOR_VENV),$(REPO)/.venv)
TOOLS_DIR ?= $(or $(CONCEPTOR_TOOLS_DIR),$(HOME)/.cache/conceptor/tools)
TILT := $(TOOLS_DIR)/tilt-$(TILT_VERSION)/bin/tilt
KUBE_APISERVER := $(TOOLS_DIR)/kube-apiserver-$(KUBE_APISERVER_VERSION)/bin/kube-apiserver
LOCALDEV ?= $(or $(CENTRAL_LOCALDEV_DIR),$(REPO)/.localdev)
# Extra arguments: `make up TILT_ARGS='-- --core-workers=2'`, `make test PYTEST_ARGS='-k dev_cli'`.
TILT_ARGS ?=
PYTEST_ARGS ?=

# Tilt's resources call `conceptor`, `temporal`, `caddy`, `kubectl`: the venv comes first.
export PATH := $(VENV)/bin:$(dir $(TILT)):$(PATH)
export CONCEPTOR_VENV := $(VENV)
export CONCEPTOR_TOOLS_DIR := $(TOOLS_DIR)

.PHONY: help setup setup-stack up down test lint bench clean-data

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(REPO)/Makefile | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

setup: ## install every pinned tool and the venv (skips what is already there)
	@bash $(REPO)/_dev-env/scripts/dev-setup.bash

setup-stack: ## install only what `tilt up` runs (no kube-apiserver, etcd, Chromium...)
	@bash $(REPO)/_dev-env/scripts/dev-setup.bash --stack

up: setup-stack ## start the whole stack under Tilt (dashboard: http://localhost:10350)
	@bash $(REPO)/_dev-env/scripts/reserve-ports.bash
	cd $(REPO) && $(TILT) up $(TILT_ARGS)

down: ## stop Tilt and every service, worker and API of this checkout; nothing left listening
	@bash $(REPO)/_dev-env/scripts/dev-down.bash

# kube-apiserver (minutes of building, for one test group) builds in the background while the
# groups that do not use it run; run-tests.bash runs the one that does last, once it is built.
test: ## the whole test suite (unit, integration, e2e) against real services
	@bash $(REPO)/_dev-env/scripts/dev-setup.bash --without kube-apiserver
	@if [[ -x $(KUBE_APISERVER) ]]; then pending=; else \
		pending=1; log=$(TOOLS_DIR)/.logs/dev-setup-background.log; \
		echo "make test: kube-apiserver builds in the background (log: $$log)"; \
		bash $(REPO)/_dev-env/scripts/dev-setup.bash >"$$log" 2>&1 & \
	fi; \
	CONCEPTOR_TEST_TOOLS_PENDING=$$pending bash $(REPO)/_dev-env/scripts/run-tests.bash $(PYTEST_ARGS)

lint: setup ## ruff, ruff format --check, mypy, import layers (lint-imports), shellcheck
	cd $(REPO) && $(VENV)/bin/ruff check conceptor services tests bench _dev-env/scripts
	cd $(REPO) && $(VENV)/bin/ruff format --check conceptor services tests bench _dev-env/scripts
	cd $(REPO) && $(VENV)/bin/mypy
	cd $(REPO) && $(VENV)/bin/mypy _dev-env/scripts/setup_progress.py _dev-env/scripts/cold_setup.py
	cd $(REPO) && $(VENV)/bin/lint-imports
	shellcheck $(REPO)/_dev-env/scripts/*.bash $(REPO)/.ci/run

bench: setup ## every benchmark in bench/ (tables on stdout, JSON in bench/results/)
	@cd $(REPO) && shopt -s nullglob && benches=(bench/[!_]*.py) && \
	if (( $${#benches[@]} == 0 )); then echo "no benchmarks in bench/"; exit 0; fi && \
	for b in "$${benches[@]}"; do echo "== $$b"; $(VENV)/bin/python "$$b"; done

clean-data: down ## wipe every service's data (.localdev) after stopping the stack
	rm -rf $(LOCALDEV)
	@echo "wiped $(LOCALDEV)"
