# The table of contents of the project: `make help` lists what you can run.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export LOYALTY_DATABASE_URL ?= sqlite:///var/loyalty.db
export LOYALTY_RULES_DIR ?= rules

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements-dev.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON) on PATH"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.lock
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

fuzz: install ## schemathesis, the body and rule-file fuzz targets with many randomised cases (FUZZ_EXAMPLES=300)
	LOYALTY_FUZZ_EXAMPLES=$(or $(FUZZ_EXAMPLES),300) $(BIN)/pytest tests/e2e/test_openapi.py tests/service/test_body_fuzz.py tests/rules/test_rule_file_fuzz.py -n 2 -p no:cacheprovider

kube-rules: install ## Regenerate deploy/k8s/rules.yaml (the rules ConfigMaps) from rules/
	$(BIN)/python deploy/k8s/rules_configmap.py rules > deploy/k8s/rules.yaml

lint: install ## ruff check, ruff format --check, mypy
	$(BIN)/ruff check service tests bench
	$(BIN)/ruff format --check service tests bench
	$(BIN)/mypy

fmt: install ## Format the code
	$(BIN)/ruff check --fix service tests bench
	$(BIN)/ruff format service tests bench

bench: install var ## Measure speed (not part of make test); writes var/bench/
	@command -v wrk >/dev/null || (apt-get update && apt-get install -y wrk)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean: ## Remove the virtual environment and local data
	rm -rf $(VENV) var

.PHONY: fuzz kube-rules help install migrate migration run scheduler check-rules test lint fmt bench clean
