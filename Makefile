# backlog-operator: `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXAMPLE_DIR ?= .work/example

# The image. IMG names what `make image` builds and what `make deploy` / `make install-bundle`
# write into kustomize; by default the released version of pyproject.toml.
VERSION := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' pyproject.toml)
IMG ?= backlog-operator:$(VERSION)
# The base of both Dockerfile stages; empty keeps the Dockerfile's default.
BASE_IMAGE ?=
# Docker where a Docker engine answers, else buildah (daemonless).
BUILDER ?= $(shell docker info >/dev/null 2>&1 && echo docker || echo buildah)
# buildah's storage: overlay where the kernel mounts it (layers shared: a cached rebuild takes
# seconds), else vfs, which works wherever buildah does but copies every layer whole (each
# build and each container then costs minutes, and layer caching more than it saves).
BUILDAH_STORAGE_DRIVER ?= $(shell buildah --storage-driver overlay images >/dev/null 2>&1 && echo overlay || echo vfs)
BUILDAH_LAYERS ?= $(if $(filter vfs,$(BUILDAH_STORAGE_DRIVER)),false,true)
BUILDAH := buildah --storage-driver $(BUILDAH_STORAGE_DRIVER)
# A build trusts the certificate authorities this machine trusts (a proxy's included) when the
# machine keeps them where Debian does, which is also where the image's base looks for them.
BUILD_TRUST := $(if $(wildcard /etc/ssl/certs/ca-certificates.crt),--volume /etc/ssl/certs:/etc/ssl/certs:ro)
MANAGER_KUSTOMIZATION := kustomize/manager/kustomization.yaml
STAND_IN_BASE ?= backlog-stand-in-base:bookworm
ARCHIVE ?= .work/backlog-operator.tar

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

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

# GitHub's own descriptions, which tests hold the project to (tests/fixtures/npm): its REST API's
# OpenAPI description, example webhook payloads and their schemas. Installed with npm where it
# exists; without npm, the tests that read them skip with a message.
NPM_FIXTURES := .work/npm/.installed
$(NPM_FIXTURES): tests/fixtures/npm/package.json tests/fixtures/npm/package-lock.json
	@if command -v npm >/dev/null; then \
	  mkdir -p .work/npm && cp tests/fixtures/npm/package.json tests/fixtures/npm/package-lock.json .work/npm/ && \
	  npm ci --prefix .work/npm --no-audit --no-fund --silent && touch $@; \
	else echo "note: npm not found; tests on GitHub's OpenAPI description and webhook payloads will skip"; fi

.PHONY: fixtures
fixtures: $(NPM_FIXTURES) ## Install GitHub's OpenAPI description and webhook examples (npm) for the tests.

.PHONY: test
test: $(STAMP) lint fixtures ## Lint, then the tests (image tests skip without buildah, cluster tests without kind).
	BUILDAH_STORAGE_DRIVER=$(BUILDAH_STORAGE_DRIVER) $(BIN)/pytest

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

.PHONY: image
image: ## Build the image IMG (Docker, else buildah); BASE_IMAGE=... replaces the base.
	$(if $(filter docker,$(BUILDER)),docker build,$(BUILDAH) bud --isolation chroot \
		--layers=$(BUILDAH_LAYERS) --pull=false $(BUILD_TRUST)) \
		$(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) --tag $(IMG) .

.PHONY: image-archive
image-archive: ## Save the image IMG as a Docker archive, ARCHIVE (for `kind load image-archive`).
	@mkdir -p $(dir $(ARCHIVE))
	$(if $(filter docker,$(BUILDER)),docker save --output $(ARCHIVE) $(IMG),$(BUILDAH) push \
		$(IMG) docker-archive:$(ARCHIVE):$(IMG))

.PHONY: stand-in-base
stand-in-base: ## Make a base image from this machine's Debian sources (where no registry is reachable).
	BUILDAH_STORAGE_DRIVER=$(BUILDAH_STORAGE_DRIVER) .ci/stand-in-base $(STAND_IN_BASE)

.PHONY: chaos
chaos: $(STAMP) ## Only the crash-consistency test (part of `make test`): the operator SIGKILLed 15 times while 100 goals run.
	$(BIN)/pytest -p no:randomly tests/operator/test_chaos.py

.PHONY: test-image
test-image: $(STAMP) ## Only the image tests: build the image, run a goal's three steps from it.
	BUILDAH_STORAGE_DRIVER=$(BUILDAH_STORAGE_DRIVER) $(BIN)/pytest -m image tests/image

.PHONY: set-image
set-image: ## Write IMG into kustomize (the operator's image; the worker image follows it).
	@img='$(IMG)'; \
	case "$$img" in \
	  *@*) name="$${img%%@*}"; key=digest; value="$${img#*@}" ;; \
	  *) last="$${img##*/}"; key=newTag; \
	     case "$$last" in *:*) name="$${img%:*}"; value="$${last##*:}" ;; \
	       *) echo "IMG=$$img needs a tag or a digest" >&2; exit 2 ;; esac ;; \
	esac; \
	sed -i -E -e '/^  - name: backlog-operator$$/,/^[^ ]/{' \
	  -e "s|^    newName: .*|    newName: $$name|" \
	  -e "s|^    (newTag\|digest): .*|    $$key: $$value|" -e '}' $(MANAGER_KUSTOMIZATION); \
	grep -q "^    $$key: $$value$$" $(MANAGER_KUSTOMIZATION) || { echo "could not set $$img" >&2; exit 1; }

.PHONY: install-bundle
install-bundle: set-image ## Set IMG in kustomize and render manifests/install.yaml with it.
	kubectl kustomize kustomize/default > manifests/install.yaml

.PHONY: deploy
deploy: set-image ## Set IMG in kustomize and apply the bundle to the current kubectl context.
	kubectl kustomize kustomize/default | kubectl apply -f -

.PHONY: e2e
e2e: $(STAMP) ## Cluster tests on kind (skipped with a message without Docker or kind).
	$(BIN)/pytest -m cluster tests/cluster

.PHONY: clean
clean: ## Remove the virtualenv and local work folders.
	rm -rf $(VENV) .work .mypy_cache .ruff_cache
