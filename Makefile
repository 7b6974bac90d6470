# Vitalis — entry points. `make help` lists them.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --warn-undefined-variables --no-builtin-rules

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
RUN := $(UV) run --frozen --no-sync
BUF := node_modules/.bin/buf
PROTO_SOURCES := $(shell find protos -name '*.proto' 2>/dev/null)

.PHONY: help
help: ## List the entry points.
	@grep -E '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

$(CURDIR)/.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet "uv==$(UV_VERSION)"

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm install --no-audit --no-fund --loglevel=error
	@touch $@

.PHONY: install
install: .venv/.synced gen/.stamp ## Create the Python environment and generate code from the contracts.

gen/.stamp: .venv/.synced tools/gen_protos.py $(PROTO_SOURCES)
	$(RUN) python tools/gen_protos.py
	@touch $@

.PHONY: protos
protos: .venv/.synced ## Generate stubs, type stubs and descriptors into gen/; re-render the gateway's Kubernetes copy.
	$(RUN) python tools/gen_protos.py
	@touch gen/.stamp
	$(RUN) python -m vitalis_gateway render --target kubernetes

.PHONY: gateway
gateway: install ## Render the Envoy configuration and the OpenAPI document into gen/gateway/.
	$(RUN) python -m vitalis_gateway render

.PHONY: run
run: install ## Start the whole platform (embedded PostgreSQL and Redis unless DATABASE_URL/REDIS_URL are set).
	$(RUN) vitalis run

.PHONY: migrate
migrate: install ## Apply every service's schema migrations to DATABASE_URL.
	$(RUN) vitalis migrate

.PHONY: test
test: test-core test-security test-chaos ## Run the whole test suite: core, then security, then chaos.

.PHONY: test-core
test-core: install ## Unit, integration and end-to-end tests (everything but security and chaos).
	$(RUN) pytest -m "not security and not chaos"

.PHONY: test-security
test-security: install ## The adversarial suite against the running platform, with its figures.
	$(RUN) pytest -m security

.PHONY: test-chaos
test-chaos: install ## The fault-injection suite (kills, outages, poison events), with its figures.
	$(RUN) pytest -m chaos

.PHONY: lint
lint: install node_modules/.installed ## buf lint and format, ruff check and format, mypy --strict.
	$(BUF) lint
	$(BUF) format protos --diff --exit-code
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy

.PHONY: fmt
fmt: install node_modules/.installed ## Format protos and Python in place.
	$(BUF) format protos -w
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

.PHONY: breaking
breaking: install node_modules/.installed ## buf breaking against the latest release tag (skipped until one exists).
	@tag=$$(git tag --list 'v*' --sort=-v:refname | head -n1); \
	if [ -z "$$tag" ]; then echo "no release tag yet: contracts may still change"; exit 0; fi; \
	echo "checking contracts against $$tag"; \
	against=$$(mktemp -d); trap 'rm -rf "$$against"' EXIT; \
	git archive "$$tag" protos buf.yaml | tar -x -C "$$against"; \
	mkdir -p "$$against/gen" && cp -r gen/third_party "$$against/gen/"; \
	$(BUF) breaking --against "$$against"

.PHONY: k8s-validate
k8s-validate: install ## Render every kustomize overlay and validate it against the Kubernetes schemas.
	$(RUN) python -m vitalis_deploy.validate

.PHONY: bench
bench: install ## Benchmarks B1-B8 against references in the same run: prints the table, writes bench/results/ (BENCH_ARGS=--help).
	$(RUN) python -m bench $${BENCH_ARGS:-}

.PHONY: clean
clean: ## Remove generated code and local run data.
	rm -rf gen .vitalis .pytest_cache .mypy_cache .ruff_cache
