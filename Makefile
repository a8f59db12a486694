# backlog-operator: `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXAMPLE_DIR ?= .work/example

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test,lint]"
	@touch $(STAMP)

.PHONY: install
install: $(STAMP) ## Create .venv and install the package with its test and lint tools.

.PHONY: run
run: $(STAMP) ## Run an example goal locally: makes an example repository, then `backlogctl run`.
	@bash examples/local/make-example-repo.sh $(EXAMPLE_DIR)
	$(BIN)/backlogctl run $(EXAMPLE_DIR)/goal.yaml

.PHONY: test
test: $(STAMP) lint ## Lint, then the tests (unit, git, operator; cluster tests skip without kind).
	$(BIN)/pytest

.PHONY: lint
lint: $(STAMP) ## ruff, mypy, the import contracts and the function-length check.
	$(BIN)/ruff check operator tests benchmarks
	$(BIN)/ruff format --check operator tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m backlog_operator.tooling.shape operator/backlog_operator

.PHONY: fmt
fmt: $(STAMP) ## Format and autofix with ruff.
	$(BIN)/ruff format operator tests benchmarks
	$(BIN)/ruff check --fix operator tests benchmarks

.PHONY: crds
crds: $(STAMP) ## Regenerate crds/ and docs/reference.md from the pydantic models.
	$(BIN)/backlogctl crds --output crds --reference docs/reference.md

.PHONY: manifests
manifests: crds ## Regenerate manifests/install.yaml from kustomize/default.
	kubectl kustomize kustomize/default > manifests/install.yaml

.PHONY: bench
bench: $(STAMP) ## Run the benchmarks and print their figures.
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

.PHONY: e2e
e2e: $(STAMP) ## Cluster tests on kind (skipped with a message without Docker or kind).
	$(BIN)/pytest -m cluster tests/cluster

.PHONY: clean
clean: ## Remove the virtualenv and local work folders.
	rm -rf $(VENV) .work .mypy_cache .ruff_cache
