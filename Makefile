# The table of contents of the project: `make help` lists what you can run.
SHELL := /bin/bash
# The Python the venv is made with: PYTHON=... if given, else the first of these that runs
# and is 3.11 to 3.13 (a pyenv shim of a version that is not selected exists but fails).
SUPPORTED_PYTHON := import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))
ifeq ($(origin PYTHON),undefined)
PYTHON := $(shell for p in python3.11 python3.12 python3.13 python3; do \
	$$p -c '$(SUPPORTED_PYTHON)' >/dev/null 2>&1 && { echo $$p; break; }; done)
endif
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export LOYALTY_DATABASE_URL ?= sqlite:///var/loyalty.db
export LOYALTY_RULES_DIR ?= rules

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements-dev.lock pyproject.toml tools/install_durable_rules.py
	@test -n "$(PYTHON)" || { echo "needs Python 3.11, 3.12 or 3.13: none of python3.11," \
		"python3.12, python3.13, python3 on PATH runs as one (or give PYTHON=/path/to/python)"; exit 1; }
	@$(PYTHON) -c '$(SUPPORTED_PYTHON)' 2>/dev/null || { echo "PYTHON=$(PYTHON) is not" \
		"a Python 3.11, 3.12 or 3.13 that runs"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.lock
	$(BIN)/python tools/install_durable_rules.py
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install the pinned dependencies

var:
	mkdir -p var

migrate: install var ## Bring the database at LOYALTY_DATABASE_URL up to date
	$(BIN)/loyalty db upgrade

migration: install var ## Autogenerate a migration from service/storage/tables.py (MESSAGE="...")
	$(BIN)/python -c "from service.storage.database import make_engine; from service.storage.migrate import make_revision, upgrade; e = make_engine('sqlite:///var/migration-base.db'); upgrade(e); make_revision(e, '$(MESSAGE)')"
	rm -f var/migration-base.db

run: migrate ## Start the service on SQLite under var/ with the rules in rules/
	$(BIN)/loyalty serve

scheduler: migrate ## Start the scheduler process (run beside `make run`)
	$(BIN)/loyalty scheduler

check-rules: install ## Validate rules/ and run the cases inside the files
	$(BIN)/loyalty rules check rules

test: install ## Run the whole test suite (SQLite and PostgreSQL)
	$(BIN)/pytest -n 2 --dist loadgroup

PY ?= 3.13
TESTS ?= tests/unit tests/rules
test-py: ## Unit and rule tests on another Python, in .venv-X.Y (PY=3.13 by default, TESTS=...)
	@python=$$(tools/find-python $(PY)) || { if [ -n "$$CI" ]; then exit 1; fi; \
		echo "skipped: no Python $(PY) here"; exit 0; }; \
	echo "Python $(PY): $$python"; \
	$(MAKE) --no-print-directory install PYTHON=$$python VENV=.venv-$(PY) && \
	.venv-$(PY)/bin/pytest -n 2 --dist loadgroup $(TESTS)

fuzz: install ## schemathesis, the body and rule-file fuzz targets with many randomised cases (FUZZ_EXAMPLES=300)
	LOYALTY_FUZZ_EXAMPLES=$(or $(FUZZ_EXAMPLES),300) $(BIN)/pytest tests/e2e/test_openapi.py tests/service/test_body_fuzz.py tests/rules/test_rule_file_fuzz.py -n 2 -p no:cacheprovider

kube-rules: install ## Regenerate deploy/k8s/rules.yaml (the rules ConfigMaps) from rules/
	$(BIN)/python deploy/k8s/rules_configmap.py rules > deploy/k8s/rules.yaml

lint: install ## ruff check, ruff format --check, mypy
	$(BIN)/ruff check service tests bench tools
	$(BIN)/ruff format --check service tests bench tools
	$(BIN)/mypy

fmt: install ## Format the code
	$(BIN)/ruff check --fix service tests bench tools
	$(BIN)/ruff format service tests bench tools

bench: install var ## Measure speed (not part of make test); writes var/bench/
	@command -v wrk >/dev/null || (apt-get update && apt-get install -y wrk)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean: ## Remove the virtual environments and local data
	rm -rf $(VENV) .venv-3.* var

.PHONY: fuzz kube-rules help install migrate migration run scheduler check-rules test test-py lint fmt bench clean
